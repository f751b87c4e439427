package filter

import (
	"fmt"
	"io"
)

// base64Reader decodes base64 content as mail readers decode it: line ends
// and blanks are skipped, the final group may lack its "=" padding, and the
// text may be several padded chunks one after another (as mailers write
// when they encode a part piece by piece). encoding/base64 refuses both,
// and refusing them refuses real mail. Any other character is a decoding
// failure: RFC 2045 lets a reader skip it, but a scanner that skips what
// the reader does not (or the reverse) is one a virus walks past.
type base64Reader struct {
	r    io.Reader
	in   [4096]byte
	out  []byte
	q    [4]byte // the group being read
	nq   int
	off  int64 // input bytes read, for the error
	err  error
	done bool
}

// base64Error is a real decoding failure, named.
type base64Error struct{ text string }

func (e *base64Error) Error() string { return e.text }

var base64Value = func() [256]byte {
	var t [256]byte
	for i := range t {
		t[i] = 0xff
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = byte(i)
	}
	return t
}()

func (b *base64Reader) Read(p []byte) (int, error) {
	for len(b.out) == 0 {
		if b.done {
			return 0, b.err
		}
		b.fill()
	}
	n := copy(p, b.out)
	b.out = b.out[n:]
	return n, nil
}

// fill decodes the next block of input into out.
func (b *base64Reader) fill() {
	n, err := b.r.Read(b.in[:])
	out := b.out[:0]
	for _, c := range b.in[:n] {
		b.off++
		if v := base64Value[c]; v != 0xff {
			b.q[b.nq] = v
			if b.nq++; b.nq == 4 {
				out = append(out, b.q[0]<<2|b.q[1]>>4, b.q[1]<<4|b.q[2]>>2, b.q[2]<<6|b.q[3])
				b.nq = 0
			}
			continue
		}
		switch c {
		case '\r', '\n', ' ', '\t':
		case '=':
			// The group ends here; more "=" after it, and a new chunk
			// after those, are read as readers read them.
			if b.nq == 1 {
				b.fail(out, "padding after a single character at byte %d", b.off-1)
				return
			}
			out = b.flush(out)
		default:
			b.fail(out, "illegal character %q at byte %d", c, b.off-1)
			return
		}
	}
	b.out = out
	if err == io.EOF {
		if b.nq == 1 {
			b.fail(out, "ends with a single character of a four-character group (truncated)")
			return
		}
		b.out = b.flush(out)
		b.done, b.err = true, io.EOF
	} else if err != nil {
		b.done, b.err = true, err
	}
}

// flush decodes a group of two or three characters (one or two bytes).
func (b *base64Reader) flush(out []byte) []byte {
	switch b.nq {
	case 2:
		out = append(out, b.q[0]<<2|b.q[1]>>4)
	case 3:
		out = append(out, b.q[0]<<2|b.q[1]>>4, b.q[1]<<4|b.q[2]>>2)
	}
	b.nq = 0
	return out
}

func (b *base64Reader) fail(out []byte, format string, a ...any) {
	b.out = out
	b.done, b.err = true, &base64Error{fmt.Sprintf(format, a...)}
}
