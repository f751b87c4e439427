package filter

import (
	"archive/zip"
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/textproto"
	"os"
	"path"
	"strings"
	"unicode/utf8"
)

// Field is one header field: its name as written and its value unfolded
// (continuation line breaks removed), bytes as they came.
type Field struct {
	Name, Value string
}

// Header is a message's or a MIME part's header section.
type Header []Field

// Get returns the first value of the named field ("" when absent).
func (h Header) Get(name string) string {
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			return f.Value
		}
	}
	return ""
}

// Has reports whether the named field is present.
func (h Header) Has(name string) bool {
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			return true
		}
	}
	return false
}

// Attachment is a named MIME part, or a file inside an attached zip.
type Attachment struct {
	Name  string // the file name, decoded
	InZip string // the name of the zip archive holding it, if any
}

// Limits bound the structure the parser accepts.
type Limits struct {
	MaxHeader int    // bytes of one header section (default 1 MiB)
	MaxDepth  int    // MIME nesting (default 20)
	MaxParts  int    // MIME parts in all (default 1000)
	TempDir   string // where attached zips are unpacked to be listed
}

func (l Limits) withDefaults() Limits {
	if l.MaxHeader <= 0 {
		l.MaxHeader = 1 << 20
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = 20
	}
	if l.MaxParts <= 0 {
		l.MaxParts = 1000
	}
	return l
}

// Structure is what one pass over the message found.
type Structure struct {
	Header        Header
	HeaderProblem string // raw control or non-UTF-8 bytes, or a broken header line
	MIMEProblem   string // the first MIME structure or encoding problem
	Attachments   []Attachment
	ZipProblems   []string // zips that could not be listed (logged, not refused)
	parts         int
}

// errParse marks a malformation of the message (as opposed to an I/O
// failure of the spool).
type errParse struct{ msg string }

func (e *errParse) Error() string { return e.msg }

func malformed(format string, a ...any) error { return &errParse{fmt.Sprintf(format, a...)} }

// Analyze reads a whole message once and reports its structure. Its error
// is an I/O failure only; malformations are in the Structure.
func Analyze(r io.Reader, lim Limits) (*Structure, error) {
	lim = lim.withDefaults()
	s := &Structure{}
	br := bufio.NewReaderSize(r, 32<<10)
	h, hp, err := readHeader(br, lim.MaxHeader)
	if err != nil {
		return nil, err
	}
	s.Header, s.HeaderProblem = h, hp
	if hp != "" && strings.HasPrefix(hp, "header section longer") {
		s.MIMEProblem = hp
		return s, nil
	}
	err = s.walk(h, br, 0, lim)
	var pe *errParse
	if errors.As(err, &pe) {
		s.MIMEProblem = pe.msg
		return s, nil
	}
	return s, err
}

// readHeader reads header lines up to the empty line (or the end).
// LF and CRLF line ends are both accepted.
func readHeader(br *bufio.Reader, max int) (Header, string, error) {
	var h Header
	problem := ""
	note := func(p string) {
		if problem == "" {
			problem = p
		}
	}
	total := 0
	for {
		line, err := readLine(br, max-total)
		if err != nil && err != io.EOF {
			return nil, "", err
		}
		total += len(line) + 1
		if total > max {
			return h, fmt.Sprintf("header section longer than %d bytes", max), nil
		}
		if len(line) == 0 {
			return h, problem, nil
		}
		if p := badHeaderBytes(line); p != "" {
			note(p)
		}
		switch {
		case line[0] == ' ' || line[0] == '\t':
			if len(h) == 0 {
				note("header starts with a continuation line")
			} else {
				h[len(h)-1].Value += " " + strings.TrimLeft(string(line), " \t")
			}
		default:
			i := bytes.IndexByte(line, ':')
			name := ""
			if i > 0 {
				name = strings.TrimRight(string(line[:i]), " \t")
			}
			if !validFieldName(name) {
				note(fmt.Sprintf("malformed header line %q", Sanitize(string(line), 40)))
			} else {
				h = append(h, Field{Name: name, Value: strings.TrimSpace(string(line[i+1:]))})
			}
		}
		if err == io.EOF {
			return h, problem, nil
		}
	}
}

// readLine returns one line without its LF or CRLF; io.EOF with the last
// unterminated line (possibly empty). A line longer than max is returned
// unfinished once it passes max, so that one endless line is never held
// whole: the caller's header limit ends the reading.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		line = append(line, frag...)
		if err == bufio.ErrBufferFull {
			if len(line) > max {
				return line, nil
			}
			continue
		}
		line = bytes.TrimSuffix(line, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		return line, err
	}
}

func validFieldName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// badHeaderBytes finds control characters (other than TAB) and 8-bit bytes
// that are not UTF-8 (RFC 6532 allows UTF-8 in headers).
func badHeaderBytes(line []byte) string {
	eight := false
	for _, c := range line {
		if (c < 0x20 && c != '\t') || c == 0x7f {
			return fmt.Sprintf("control character 0x%02x in header", c)
		}
		if c >= 0x80 {
			eight = true
		}
	}
	if eight && !utf8.Valid(line) {
		return "raw 8-bit bytes (not UTF-8) in header"
	}
	return ""
}

func (s *Structure) walk(h Header, body io.Reader, depth int, lim Limits) error {
	s.parts++
	if s.parts > lim.MaxParts {
		return malformed("more than %d MIME parts", lim.MaxParts)
	}
	if depth > lim.MaxDepth {
		return malformed("MIME nesting deeper than %d", lim.MaxDepth)
	}
	ctype, params := contentType(h)
	cte := strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding")))
	switch {
	case strings.HasPrefix(ctype, "multipart/"):
		if cte == "base64" || cte == "quoted-printable" {
			return malformed("%s part with Content-Transfer-Encoding %s", ctype, cte)
		}
		boundary := params["boundary"]
		if boundary == "" {
			return malformed("%s without a boundary", ctype)
		}
		return s.walkMultipart(body, boundary, depth, lim)
	case ctype == "message/rfc822":
		if cte == "base64" || cte == "quoted-printable" {
			return malformed("message/rfc822 part with Content-Transfer-Encoding %s", cte)
		}
		br := bufio.NewReader(body)
		inner, hp, err := readHeader(br, lim.MaxHeader)
		if err != nil {
			// The body is a MIME part: a read error here is the part's
			// own end (a missing boundary), not a spool failure.
			return malformed("message/rfc822: %v", err)
		}
		if strings.HasPrefix(hp, "header section longer") {
			return malformed("message/rfc822: %s", hp)
		}
		return s.walk(inner, br, depth+1, lim)
	}
	return s.leaf(h, ctype, params, cte, body, lim)
}

func (s *Structure) walkMultipart(body io.Reader, boundary string, depth int, lim Limits) error {
	mr := multipart.NewReader(&partHeaderGuard{r: body, delim: []byte("--" + boundary), max: lim.MaxHeader, atStart: true}, boundary)
	n := 0
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			if n == 0 {
				return malformed("multipart without any part (boundary %q not found)", Sanitize(boundary, 70))
			}
			return nil
		}
		if err != nil {
			return multipartErr(err)
		}
		n++
		if err := s.walk(mimeHeader(p.Header), p, depth+1, lim); err != nil {
			return err
		}
		// A part the walk did not read to its end must still end at a
		// boundary: reading the rest finds a missing closing boundary.
		if _, err := io.Copy(io.Discard, p); err != nil {
			return multipartErr(err)
		}
	}
}

func multipartErr(err error) error {
	var pe *errParse
	if errors.As(err, &pe) {
		return pe
	}
	return malformed("multipart: %v", err)
}

// partHeaderGuard sits under a multipart.Reader, which reads each part's
// header whole (up to a fixed 10 MB) before the walk sees it: it follows
// the boundary lines and ends the stream with a malformation once a part's
// header passes max bytes, so that no part header is held whole.
type partHeaderGuard struct {
	r        io.Reader
	delim    []byte // "--" boundary
	max      int
	atStart  bool   // the next byte starts a line
	prefix   []byte // the current line's first len(delim)+2 bytes
	lineLen  int
	inHeader bool // between a boundary line and the next empty line
	header   int  // bytes of the current part header so far
}

func (g *partHeaderGuard) Read(p []byte) (int, error) {
	n, err := g.r.Read(p)
	for i, c := range p[:n] {
		if g.atStart {
			g.atStart, g.lineLen, g.prefix = false, 0, g.prefix[:0]
		}
		g.lineLen++
		if len(g.prefix) < len(g.delim)+2 {
			g.prefix = append(g.prefix, c)
		}
		if g.inHeader {
			if g.header++; g.header > g.max {
				return i, malformed("MIME part header longer than %d bytes", g.max)
			}
		}
		if c == '\n' {
			g.endLine()
		}
	}
	return n, err
}

func (g *partHeaderGuard) endLine() {
	g.atStart = true
	switch {
	case g.inHeader && (g.lineLen == 1 || g.lineLen == 2 && g.prefix[0] == '\r'):
		g.inHeader = false // the empty line ending the part header
	case bytes.HasPrefix(g.prefix, g.delim):
		closing := bytes.HasPrefix(g.prefix[len(g.delim):], []byte("--"))
		g.inHeader, g.header = !closing, 0
	}
}

func mimeHeader(mh textproto.MIMEHeader) Header {
	var h Header
	for k, vs := range mh {
		for _, v := range vs {
			h = append(h, Field{Name: k, Value: v})
		}
	}
	return h
}

// contentType returns the lower-case media type (text/plain when absent
// or unreadable, as RFC 2045 says) and its parameters.
func contentType(h Header) (string, map[string]string) {
	v := h.Get("Content-Type")
	if v == "" {
		return "text/plain", map[string]string{}
	}
	mt, params, err := mime.ParseMediaType(v)
	if err != nil {
		// Keep what can be read: the type, and a boundary if one is there.
		mt = strings.ToLower(strings.TrimSpace(strings.SplitN(v, ";", 2)[0]))
		params = map[string]string{}
		if _, p, err2 := mime.ParseMediaType("x/y; " + boundaryParam(v)); err2 == nil {
			params = p
		}
	}
	return mt, params
}

func boundaryParam(v string) string {
	for _, p := range strings.Split(v, ";") {
		if k, _, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(strings.TrimSpace(k), "boundary") {
			return strings.TrimSpace(p)
		}
	}
	return ""
}

var wordDecoder = &mime.WordDecoder{CharsetReader: func(_ string, r io.Reader) (io.Reader, error) { return r, nil }}

// fileName is the part's file name from Content-Disposition or the
// Content-Type name parameter, RFC 2047 and RFC 2231 decoded.
func fileName(h Header, ctParams map[string]string) string {
	name := ""
	if cd := h.Get("Content-Disposition"); cd != "" {
		if _, p, err := mime.ParseMediaType(cd); err == nil {
			name = p["filename"]
		} else if i := strings.Index(asciiLower(cd), "filename="); i >= 0 {
			name = strings.Trim(strings.TrimSpace(strings.SplitN(cd[i+9:], ";", 2)[0]), `"`)
		}
	}
	if name == "" {
		name = ctParams["name"]
	}
	if d, err := wordDecoder.DecodeHeader(name); err == nil {
		name = d
	}
	return name
}

// asciiLower lower-cases A-Z only, so that an index into the result is one
// into s (strings.ToLower turns a stray 8-bit byte into three).
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func (s *Structure) leaf(h Header, ctype string, params map[string]string, cte string, body io.Reader, lim Limits) error {
	dec, err := decoder(cte, body)
	if err != nil {
		return err
	}
	name := fileName(h, params)
	if name != "" {
		s.Attachments = append(s.Attachments, Attachment{Name: name})
	}
	if isZip(name, ctype) {
		return s.listZip(name, dec, lim)
	}
	if _, err := io.Copy(io.Discard, dec); err != nil {
		return decodeErr(cte, err)
	}
	return nil
}

func decodeErr(cte string, err error) error {
	var pe *errParse
	if errors.As(err, &pe) {
		return err
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "multipart") {
		return malformed("multipart: %v", err)
	}
	var ce base64.CorruptInputError
	if errors.As(err, &ce) || strings.HasPrefix(err.Error(), "quotedprintable") {
		return malformed("%s content does not decode: %v", cte, err)
	}
	return err
}

// decoder undoes the declared transfer encoding. An unknown encoding is
// not a reason to refuse (unsure means accept): the bytes are read as they
// are.
func decoder(cte string, r io.Reader) (io.Reader, error) {
	switch cte {
	case "base64":
		return base64.NewDecoder(base64.StdEncoding, &blankStripper{r: r}), nil
	case "quoted-printable":
		return quotedprintable.NewReader(r), nil
	}
	return r, nil
}

// blankStripper drops spaces and tabs that some mailers leave in base64
// lines (the base64 decoder itself skips CR and LF).
type blankStripper struct{ r io.Reader }

func (b *blankStripper) Read(p []byte) (int, error) {
	for {
		n, err := b.r.Read(p)
		j := 0
		for _, c := range p[:n] {
			if c != ' ' && c != '\t' {
				p[j] = c
				j++
			}
		}
		if j > 0 || err != nil {
			return j, err
		}
	}
}

func isZip(name, ctype string) bool {
	return strings.EqualFold(path.Ext(cleanName(name)), ".zip") ||
		ctype == "application/zip" || ctype == "application/x-zip-compressed"
}

// cleanName lower-cases a file name and drops the trailing dots and blanks
// Windows ignores ("invoice.exe. " runs as invoice.exe).
func cleanName(name string) string {
	return strings.ToLower(strings.TrimRight(name, ". \t"))
}

// listZip unpacks the attached zip to an unlinked temporary file (a zip's
// directory is at its end) and records the names inside. A zip that cannot
// be read is noted, not refused.
func (s *Structure) listZip(name string, dec io.Reader, lim Limits) error {
	f, err := os.CreateTemp(lim.TempDir, "mxfilter-zip-")
	if err != nil {
		return err
	}
	os.Remove(f.Name())
	defer f.Close()
	n, err := io.Copy(f, dec)
	if err != nil {
		return decodeErr("base64", err)
	}
	zr, err := zip.NewReader(f, n)
	if err != nil {
		s.ZipProblems = append(s.ZipProblems, fmt.Sprintf("%s: %v", Sanitize(name, 80), err))
		return nil
	}
	for _, zf := range zr.File {
		s.Attachments = append(s.Attachments, Attachment{Name: zf.Name, InZip: name})
	}
	return nil
}
