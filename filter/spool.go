package filter

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
)

// Spool is a message kept in one unlinked temporary file: nothing of it
// stays on disk after the process ends, and it is never whole in memory.
type Spool struct {
	f    *os.File
	size int64
	nuls int64
	crlf bool // the first line ends in CRLF
}

// NewSpool copies r into an unlinked file in dir (os.TempDir when empty).
// maxSize > 0 stops reading after maxSize+1 bytes; Size then tells the
// caller the limit was passed (the rest is never read).
func NewSpool(dir string, r io.Reader, maxSize int64) (*Spool, error) {
	f, err := os.CreateTemp(dir, "mxfilter-")
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("spool: unlink: %w", err)
	}
	s := &Spool{f: f}
	if maxSize > 0 {
		r = io.LimitReader(r, maxSize+1)
	}
	w := bufio.NewWriterSize(f, 64<<10)
	buf := make([]byte, 64<<10)
	firstLine := true
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			s.nuls += int64(bytes.Count(chunk, []byte{0}))
			if firstLine {
				if i := bytes.IndexByte(chunk, '\n'); i >= 0 {
					s.crlf = i > 0 && chunk[i-1] == '\r'
					firstLine = false
				}
			}
			if _, err := w.Write(chunk); err != nil {
				f.Close()
				return nil, fmt.Errorf("spool: write: %w", err)
			}
			s.size += int64(n)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			f.Close()
			return nil, fmt.Errorf("spool: read message: %w", rerr)
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return nil, fmt.Errorf("spool: write: %w", err)
	}
	return s, nil
}

// Size is the number of bytes spooled.
func (s *Spool) Size() int64 { return s.size }

// CRLF reports whether the message's lines end in CRLF.
func (s *Spool) CRLF() bool { return s.crlf }

// Reader returns a fresh reader over the whole message; several may be
// used at once.
func (s *Spool) Reader() io.Reader { return io.NewSectionReader(s.f, 0, s.size) }

// File returns the spool file, positioned at the start, to be given to a
// child process as its standard input.
func (s *Spool) File() (*os.File, error) {
	_, err := s.f.Seek(0, io.SeekStart)
	return s.f, err
}

// Close releases the file (and with it the disk space).
func (s *Spool) Close() error { return s.f.Close() }
