package greylist

// SetChunks makes Bolt's Scan and Expire work in chunks of the given sizes,
// so that tests cross chunk boundaries with few records.
func SetChunks(scan, expire int) (restore func()) {
	s, e := scanChunk, expireChunk
	scanChunk, expireChunk = scan, expire
	return func() { scanChunk, expireChunk = s, e }
}
