package filter

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/textproto"
	"path"
	"sort"
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

// Attachment is one name a MIME part carries (a part may carry several),
// or a file inside an attached zip.
type Attachment struct {
	Name  string // the file name, decoded; a long one keeps its two ends
	InZip string // the archive holding it ("b.zip in a.zip"), if any
}

// Limits bound the structure the parser accepts.
type Limits struct {
	MaxHeader    int      // bytes of one header section (default 1 MiB)
	MaxDepth     int      // MIME nesting (default 20)
	MaxParts     int      // MIME parts in all (default 1000)
	ArchiveDepth int      // archives opened inside archives, the attached one counting 1 (default 3)
	TempDir      string   // where attached zips are unpacked to be listed
	Blocked      []string // extensions (".exe") looked for where not every name is kept
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
	if l.ArchiveDepth <= 0 {
		l.ArchiveDepth = 3
	}
	return l
}

func (l Limits) blocked(name string) bool { return blockedName(name, l.Blocked) }

// blockedName reports whether name ends in one of the extensions, as
// Windows reads a name: case and trailing dots and blanks do not count,
// nor does what follows a NUL or an NTFS stream name ("x.exe:s").
func blockedName(name string, blocked []string) bool {
	for _, ext := range extensions(name) {
		for _, b := range blocked {
			if ext == b {
				return true
			}
		}
	}
	return false
}

func extensions(name string) []string {
	out := []string{path.Ext(cleanName(name))}
	for _, cut := range []byte{0, ':'} {
		if i := strings.IndexByte(name, cut); i >= 0 {
			out = append(out, path.Ext(cleanName(name[:i])))
		}
	}
	return out
}

// maxName bounds a kept file name; the cut is in the middle, so that the
// extension stays.
const maxName = 255

func boundName(name string) string {
	if len(name) <= maxName {
		return name
	}
	return name[:maxName/2] + "..." + name[len(name)-maxName/2:]
}

// Structure is what one pass over the message found.
type Structure struct {
	Header        Header
	HeaderProblem string // raw control or non-UTF-8 bytes, or a broken header line
	MIMEProblem   string // the first MIME structure or encoding problem
	// Attachments holds every name of every MIME part (bounded by the
	// part count and header size) and, of the zip entries, the blocked
	// ones (up to 16) and the first 256 others.
	Attachments []Attachment
	ZipEntries  int      // entries in all the archives walked
	ZipProblems []string // archives that could not be read (logged, not refused)
	TooDeep     string   // an archive nested deeper than Limits.ArchiveDepth
	TooMany     string   // the first inner archive past the count opened
	parts       int
	keptEntries int
	keptBlocked int
	unparsed    int
	innerOpened int
	unpacked    int64 // bytes of inner archives unpacked
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
	ctype, mv := contentType(h)
	cte := strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding")))
	switch {
	case strings.HasPrefix(ctype, "multipart/"):
		if cte == "base64" || cte == "quoted-printable" {
			return malformed("%s part with Content-Transfer-Encoding %s", ctype, cte)
		}
		boundary := mv.first("boundary")
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
	return s.leaf(h, ctype, cte, body, lim)
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

// mimeHeader turns a part's header into fields, in the order of their
// names: textproto keeps them in a map, and the same message must be
// judged the same way every time (which name of a part is reported first).
func mimeHeader(mh textproto.MIMEHeader) Header {
	var h Header
	keys := make([]string, 0, len(mh))
	for k := range mh {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range mh[k] {
			h = append(h, Field{Name: k, Value: v})
		}
	}
	return h
}

// contentType returns the lower-case media type (text/plain when absent
// or unreadable, as RFC 2045 says) and its parameters.
func contentType(h Header) (string, mediaValue) {
	mv := parseMediaValue(h.Get("Content-Type"))
	if mv.Type == "" {
		mv.Type = "text/plain"
	}
	return mv.Type, mv
}

var wordDecoder = &mime.WordDecoder{CharsetReader: func(charset string, r io.Reader) (io.Reader, error) {
	b, err := io.ReadAll(io.LimitReader(r, 1<<20))
	return strings.NewReader(decodeCharset(strings.ToLower(charset), b)), err
}}

// maxUnparsed bounds the header values searched whole for a blocked
// extension because their parameters could not be read.
const maxUnparsed = 16

// partNames returns every file name a part carries: each filename and
// name parameter of each Content-Disposition and Content-Type field, RFC
// 2047 and RFC 2231 decoded. Readers disagree on which one wins, so all of
// them are judged. When a field's parameters had to be guessed at, its raw
// value is also searched for a blocked extension.
func (s *Structure) partNames(h Header, lim Limits) []string {
	var names []string
	for _, f := range h {
		if !strings.EqualFold(f.Name, "Content-Disposition") && !strings.EqualFold(f.Name, "Content-Type") {
			continue
		}
		mv := parseMediaValue(f.Value)
		for _, p := range mv.Params {
			if p.Name != "filename" && p.Name != "name" {
				continue
			}
			name := p.Value
			if d, err := wordDecoder.DecodeHeader(name); err == nil {
				name = d
			}
			if name = strings.Trim(name, "\"\t "); name != "" {
				names = append(names, name)
			}
		}
		// Only a field that speaks of a name can carry one for a reader;
		// comments carry none ("(from www.example.com)").
		if mv.Problem != "" && s.unparsed < maxUnparsed && strings.Contains(asciiLower(f.Value), "name") {
			s.unparsed++
			if n := blockedIn(stripComments(f.Value), lim.Blocked); n != "" {
				names = append(names, n)
			}
		}
	}
	return names
}

// blockedIn finds a blocked extension anywhere in a header value whose
// parameters could not be read, ending where a name could end, and
// returns the text before it up to the last delimiter.
func blockedIn(v string, blocked []string) string {
	if d, err := wordDecoder.DecodeHeader(v); err == nil {
		v = d
	}
	low := asciiLower(v)
	for _, b := range blocked {
		for i := 0; ; {
			j := strings.Index(low[i:], b)
			if j < 0 {
				break
			}
			end := i + j + len(b)
			if end == len(low) || strings.IndexByte("\"';)( \t?", low[end]) >= 0 {
				start := strings.LastIndexAny(v[:i+j], "\"'=; \t(") + 1
				return v[start:end]
			}
			i = end
		}
	}
	return ""
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

func (s *Structure) leaf(h Header, ctype string, cte string, body io.Reader, lim Limits) error {
	names := s.partNames(h, lim)
	for _, n := range names {
		if len(s.Attachments) < 4*lim.MaxParts {
			s.Attachments = append(s.Attachments, Attachment{Name: boundName(n)})
		}
	}
	br := bufio.NewReaderSize(decoder(cte, body), 512)
	head, err := br.Peek(4)
	if err != nil && err != io.EOF {
		return decodeErr(cte, err)
	}
	label := ""
	for _, n := range names {
		if isZipName(n) {
			label = n
			break
		}
	}
	if label != "" || ctype == "application/zip" || ctype == "application/x-zip-compressed" || zipSignature(head) {
		if label == "" && len(names) > 0 {
			label = names[0]
		}
		if label == "" {
			label = "unnamed " + ctype + " part"
		}
		if err := s.openArchive(boundName(label), br, 1, lim); err != nil {
			return decodeErr(cte, err)
		}
		return nil
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return decodeErr(cte, err)
	}
	return nil
}

func decodeErr(cte string, err error) error {
	var pe *errParse
	if errors.As(err, &pe) {
		return err
	}
	var be *base64Error
	if errors.As(err, &be) {
		return malformed("base64 content does not decode: %v", err)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "multipart") {
		return malformed("multipart: %v", err)
	}
	return err
}

// decoder undoes the declared transfer encoding. An unknown encoding is
// not a reason to refuse (unsure means accept): the bytes are read as they
// are. Nor is quoted-printable that does not decode: readers show it as
// it is, and so it is read to its end as it is.
func decoder(cte string, r io.Reader) io.Reader {
	switch cte {
	case "base64":
		return &base64Reader{r: r}
	case "quoted-printable":
		return &lenientQP{qp: quotedprintable.NewReader(r), raw: r}
	}
	return r
}

// lenientQP stops decoding at quoted-printable it cannot decode (a
// control character left unescaped) and reads the rest of the part as it
// is.
type lenientQP struct {
	qp  io.Reader
	raw io.Reader
	bad bool
}

func (l *lenientQP) Read(p []byte) (int, error) {
	if l.bad {
		return l.raw.Read(p)
	}
	n, err := l.qp.Read(p)
	if err != nil && strings.HasPrefix(err.Error(), "quotedprintable:") {
		l.bad = true
		return n, nil
	}
	return n, err
}

func isZipName(name string) bool {
	for _, ext := range extensions(name) {
		if ext == ".zip" {
			return true
		}
	}
	return false
}

// cleanName lower-cases a file name and drops the trailing dots and blanks
// Windows ignores ("invoice.exe. " runs as invoice.exe).
func cleanName(name string) string {
	return strings.ToLower(strings.TrimRight(name, ". \t"))
}
