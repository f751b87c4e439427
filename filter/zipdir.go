package filter

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// The zip walk reads an archive's central directory one entry at a time,
// judging each name as it goes and keeping none it need not: memory stays
// the same for ten entries or a million (archive/zip keeps every entry,
// about 450 bytes each, before the first can be judged).

// Bounds of the walk into archives inside archives.
const (
	maxInnerArchive = 64 << 20  // bytes one inner archive may unpack to
	maxUnpacked     = 256 << 20 // bytes all inner archives of a message may unpack to
	maxInnerOpened  = 256       // inner archives a message may have opened
	maxKeptEntries  = 256       // zip entry names kept for the log and tests
	maxKeptBlocked  = 16        // blocked zip entry names kept (one refuses)
)

var (
	sigLocal     = []byte("PK\x03\x04")
	sigEmpty     = []byte("PK\x05\x06")
	sigSpanned   = []byte("PK\x07\x08")
	sigCentral   = []byte("PK\x01\x02")
	sigEnd       = []byte("PK\x05\x06")
	sigEnd64     = []byte("PK\x06\x06")
	sigLocator64 = []byte("PK\x06\x07")
)

// zipSignature reports whether b starts the way a zip archive starts.
func zipSignature(b []byte) bool {
	return bytes.HasPrefix(b, sigLocal) || bytes.HasPrefix(b, sigEmpty) || bytes.HasPrefix(b, sigSpanned)
}

// zipEntry is what the walk needs of one central directory record.
type zipEntry struct {
	flags, method uint16
	csize, usize  uint64
	offset        uint64 // of the local header, from the archive's start
}

// zipDir locates the central directory: its offset, size and the base
// offset of the archive in the file (data prepended to an archive, as in a
// self-extracting one, shifts every offset).
func zipDir(f io.ReaderAt, size int64) (base, off, length int64, err error) {
	const maxTail = 22 + 65535
	tail := int64(maxTail)
	if tail > size {
		tail = size
	}
	buf := make([]byte, tail)
	if _, err := f.ReadAt(buf, size-tail); err != nil && err != io.EOF {
		return 0, 0, 0, err
	}
	i := bytes.LastIndex(buf, sigEnd)
	for i >= 0 && len(buf)-i < 22 {
		i = bytes.LastIndex(buf[:i], sigEnd)
	}
	if i < 0 {
		return 0, 0, 0, errors.New("not a zip archive (no end of central directory)")
	}
	end := buf[i:]
	eocd := size - tail + int64(i)
	length = int64(binary.LittleEndian.Uint32(end[12:]))
	off = int64(binary.LittleEndian.Uint32(end[16:]))
	if binary.LittleEndian.Uint16(end[10:]) == 0xffff || length == 0xffffffff || off == 0xffffffff {
		if l, o, ok := zip64Dir(f, eocd); ok {
			length, off = l, o
			eocd -= 20 + 56 // the locator and the record (without extension data)
		}
	}
	base = eocd - length - off
	if base < 0 {
		base = 0
	}
	if off+length+base > size {
		return 0, 0, 0, errors.New("central directory beyond the end of the archive")
	}
	return base, off, length, nil
}

func zip64Dir(f io.ReaderAt, eocd int64) (length, off int64, ok bool) {
	if eocd < 20 {
		return 0, 0, false
	}
	loc := make([]byte, 20)
	if _, err := f.ReadAt(loc, eocd-20); err != nil || !bytes.HasPrefix(loc, sigLocator64) {
		return 0, 0, false
	}
	rec := make([]byte, 56)
	if _, err := f.ReadAt(rec, int64(binary.LittleEndian.Uint64(loc[8:]))); err != nil || !bytes.HasPrefix(rec, sigEnd64) {
		return 0, 0, false
	}
	return int64(binary.LittleEndian.Uint64(rec[40:])), int64(binary.LittleEndian.Uint64(rec[48:])), true
}

// archiveWalk walks one archive held in a file.
type archiveWalk struct {
	s     *Structure
	lim   Limits
	f     *os.File
	size  int64
	chain string // "inner.zip in outer.zip"
	depth int    // 1 for an archive attached to the message
}

func (w *archiveWalk) problem(err error) { w.s.zipProblem(w.chain, err.Error()) }

// zipProblem notes an archive that could not be read (a few are kept).
func (s *Structure) zipProblem(chain, text string) {
	if len(s.ZipProblems) < 8 {
		s.ZipProblems = append(s.ZipProblems, Sanitize(chain, 160)+": "+text)
	}
}

// walk reads every central directory record and judges its name.
func (w *archiveWalk) walk() error {
	base, off, length, err := zipDir(w.f, w.size)
	if err != nil {
		w.problem(err)
		return nil
	}
	r := bufio.NewReaderSize(io.NewSectionReader(w.f, base+off, length), 16<<10)
	var fixed [46]byte
	name := make([]byte, 0, 256)
	for {
		if _, err := io.ReadFull(r, fixed[:4]); err == io.EOF {
			return nil
		} else if err != nil {
			w.problem(errors.New("central directory cut short"))
			return nil
		}
		if !bytes.Equal(fixed[:4], sigCentral) {
			return nil // the directory's end (digital signature or junk)
		}
		if _, err := io.ReadFull(r, fixed[4:]); err != nil {
			w.problem(errors.New("central directory cut short"))
			return nil
		}
		n := int(binary.LittleEndian.Uint16(fixed[28:]))
		extraLen := int(binary.LittleEndian.Uint16(fixed[30:]))
		commentLen := int(binary.LittleEndian.Uint16(fixed[32:]))
		name = name[:n]
		if _, err := io.ReadFull(r, name); err != nil {
			w.problem(errors.New("central directory cut short"))
			return nil
		}
		e := zipEntry{
			flags:  binary.LittleEndian.Uint16(fixed[8:]),
			method: binary.LittleEndian.Uint16(fixed[10:]),
			csize:  uint64(binary.LittleEndian.Uint32(fixed[20:])),
			usize:  uint64(binary.LittleEndian.Uint32(fixed[24:])),
			offset: uint64(binary.LittleEndian.Uint32(fixed[42:])),
		}
		if err := e.readExtra(r, extraLen); err != nil {
			w.problem(err)
			return nil
		}
		if _, err := r.Discard(commentLen); err != nil {
			w.problem(errors.New("central directory cut short"))
			return nil
		}
		if err := w.entry(string(name), e, base); err != nil {
			return err
		}
	}
}

// readExtra reads the extra field, taking the 64-bit sizes and offset
// from a Zip64 record where the 32-bit fields say so.
func (e *zipEntry) readExtra(r *bufio.Reader, n int) error {
	if n == 0 {
		return nil
	}
	extra := make([]byte, n)
	if _, err := io.ReadFull(r, extra); err != nil {
		return errors.New("central directory cut short")
	}
	for len(extra) >= 4 {
		id, size := binary.LittleEndian.Uint16(extra), int(binary.LittleEndian.Uint16(extra[2:]))
		extra = extra[4:]
		if size > len(extra) {
			break
		}
		field := extra[:size]
		extra = extra[size:]
		if id != 1 {
			continue
		}
		for _, p := range []*uint64{&e.usize, &e.csize, &e.offset} {
			if *p == 0xffffffff && len(field) >= 8 {
				*p = binary.LittleEndian.Uint64(field)
				field = field[8:]
			}
		}
	}
	return nil
}

// entry judges one name, and opens the entry when it is itself an archive.
func (w *archiveWalk) entry(name string, e zipEntry, base int64) error {
	w.s.ZipEntries++
	a := Attachment{Name: boundName(name), InZip: w.chain}
	switch {
	case w.lim.blocked(name):
		if w.s.keptBlocked < maxKeptBlocked {
			w.s.Attachments = append(w.s.Attachments, a)
			w.s.keptBlocked++
		}
	case w.s.keptEntries < maxKeptEntries:
		w.s.Attachments = append(w.s.Attachments, a)
		w.s.keptEntries++
	}
	if e.flags&1 != 0 || (e.method != 0 && e.method != 8) || e.usize < 22 {
		return nil // encrypted, compressed in a way not read here, or too small
	}
	data, err := w.entryReader(e, base)
	if err != nil {
		return nil // a broken local header: the directory named it, judged above
	}
	head := make([]byte, 4)
	if _, err := io.ReadFull(data, head); err != nil || !zipSignature(head) {
		if !isZipName(name) {
			return nil
		}
	}
	inner := a.Name + " in " + w.chain
	if w.depth >= w.lim.ArchiveDepth {
		if w.s.TooDeep == "" {
			w.s.TooDeep = inner
		}
		return nil
	}
	// Entries may share their data (a zip quine holds itself): what is
	// opened is counted, and past the count the message is refused like
	// one nested too deep, since what it hides cannot be seen.
	if w.s.innerOpened++; w.s.innerOpened > maxInnerOpened {
		if w.s.TooMany == "" {
			w.s.TooMany = inner
		}
		return nil
	}
	data, _ = w.entryReader(e, base)
	return w.s.openArchive(inner, data, w.depth+1, w.lim)
}

// entryReader returns the decompressed bytes of an entry.
func (w *archiveWalk) entryReader(e zipEntry, base int64) (io.Reader, error) {
	var lh [30]byte
	at := base + int64(e.offset)
	if _, err := w.f.ReadAt(lh[:], at); err != nil || !bytes.Equal(lh[:4], sigLocal) {
		return nil, errors.New("bad local header")
	}
	start := at + 30 + int64(binary.LittleEndian.Uint16(lh[26:])) + int64(binary.LittleEndian.Uint16(lh[28:]))
	raw := io.NewSectionReader(w.f, start, int64(e.csize))
	if e.method == 8 {
		return flate.NewReader(raw), nil
	}
	return raw, nil
}

// openArchive unpacks an archive (an attached part, or an entry of another
// archive) to an unlinked temporary file and walks it: a zip's directory
// is at its end. depth is 1 for an archive attached to the message.
func (s *Structure) openArchive(chain string, data io.Reader, depth int, lim Limits) error {
	f, err := os.CreateTemp(lim.TempDir, "mxfilter-zip-")
	if err != nil {
		return err
	}
	os.Remove(f.Name())
	defer f.Close()
	var n int64
	if depth == 1 {
		// An attached archive: as large as its part, which the message
		// bounds. A decoding error is the part's.
		if n, err = io.Copy(f, data); err != nil {
			return err
		}
	} else {
		room := int64(maxInnerArchive)
		if left := maxUnpacked - s.unpacked; left < room {
			room = left
		}
		n, err = io.Copy(f, io.LimitReader(data, room+1))
		s.unpacked += n
		switch {
		case err != nil:
			s.zipProblem(chain, err.Error())
			return nil
		case n > room:
			s.zipProblem(chain, fmt.Sprintf("unpacks to more than %d MiB, not opened", room>>20))
			return nil
		}
	}
	w := &archiveWalk{s: s, lim: lim, f: f, size: n, chain: chain, depth: depth}
	return w.walk()
}
