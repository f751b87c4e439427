// Command gen writes the generated part of mxfilter's test corpus: the
// disguises an executable attachment hides behind, and the shapes of
// legitimate mail that real mail programs write, each with the verdict it
// must get. It is run by hand after a change to it,
//
//	go run ./testdata/filter/gen
//
// and the filter tests check that the committed files are what it writes.
// The golden files beside the messages (the full check results) are then
// written by go test ./filter -run TestCorpus -update; the verdicts listed
// here were written before the code that meets them and are checked
// against the golden files, so that -update cannot bless a wrong verdict.
package main

import (
	"archive/zip"
	"bytes"
	"encoding/base64"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

const (
	refused  = "554 5.7.1 attachment type refused: "
	accepted = "250 2.0.0 message accepted"
	tooDeep  = "554 5.7.1 archive nested deeper than 3 levels: "
	badMIME  = "554 5.6.0 malformed MIME structure: "
	badAddr  = "554 5.6.0 malformed address in "
)

// A case is one message and the start of the reply it must get.
type message struct {
	name, want string
	text       string
}

func main() {
	out := flag.String("out", "testdata/filter/corpus", "directory to write the corpus to")
	flag.Parse()
	var all []message
	all = append(all, disguises()...)
	all = append(all, legitimate()...)
	all = append(all, stillRefused()...)
	sort.Slice(all, func(i, j int) bool { return all[i].name < all[j].name })
	var manifest strings.Builder
	manifest.WriteString("# written by go run ./testdata/filter/gen: NAME<TAB>the reply it must start with\n")
	for _, m := range all {
		if err := os.WriteFile(filepath.Join(*out, m.name+".eml"), []byte(m.text), 0o644); err != nil {
			log.Fatal(err)
		}
		fmt.Fprintf(&manifest, "%s\t%s\n", m.name, m.want)
	}
	if err := os.WriteFile(filepath.Join(*out, "GENERATED"), []byte(manifest.String()), 0o644); err != nil {
		log.Fatal(err)
	}
}

// header is the top of every generated message; extra fields replace the
// defaults of the same name.
func header(id string, fields ...string) string {
	def := []string{
		"From: Alice <alice@example.org>",
		"To: bob@example.test",
		"Date: Mon, 1 Jan 2024 10:00:00 +0000",
		"Message-ID: <" + id + "@example.org>",
		"Subject: " + id,
		"MIME-Version: 1.0",
	}
	for _, f := range fields {
		name, _, _ := strings.Cut(f, ":")
		replaced := false
		for i, d := range def {
			if strings.HasPrefix(d, name+":") {
				def[i], replaced = f, true
			}
		}
		if !replaced {
			def = append(def, f)
		}
	}
	return strings.Join(def, "\n") + "\n"
}

// withPart is a multipart/mixed message with a text part and one more
// part with the given header lines and body.
func withPart(id string, partHeader []string, body string) string {
	return header(id, `Content-Type: multipart/mixed; boundary="b"`) + "\n--b\nContent-Type: text/plain\n\nsee attached\n--b\n" +
		strings.Join(partHeader, "\n") + "\n\n" + body + "\n--b--\n"
}

func b64(data []byte) string {
	s := base64.StdEncoding.EncodeToString(data)
	var lines []string
	for len(s) > 76 {
		lines, s = append(lines, s[:76]), s[76:]
	}
	return strings.Join(append(lines, s), "\n")
}

// zipOf is a zip holding the named files (a name ending in "/" is a
// directory); the content of a file is its name unless given in inner.
func zipOf(names []string, inner map[string][]byte) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, n := range names {
		w, err := zw.Create(n)
		if err != nil {
			log.Fatal(err)
		}
		if c, ok := inner[n]; ok {
			w.Write(c)
		} else if !strings.HasSuffix(n, "/") {
			w.Write([]byte("content of " + n))
		}
	}
	if err := zw.Close(); err != nil {
		log.Fatal(err)
	}
	return buf.Bytes()
}

func exeBody() string { return b64([]byte("MZ\x90\x00 not really a program")) }

// disguises are executables that --block-attachments must find.
func disguises() []message {
	var ms []message
	add := func(name, want string, partHeader []string, body string) {
		ms = append(ms, message{"disguise-" + name, want, withPart(name, partHeader, body)})
	}
	octet := "Content-Type: application/octet-stream"
	cte := "Content-Transfer-Encoding: base64"
	// RFC 2231 names in the charsets mailers use for them: their bytes for
	// ".exe" are ASCII whatever the charset.
	for _, cs := range []struct{ name, charset, encoded string }{
		{"iso-8859-1", "iso-8859-1", "r%E9sum%E9.exe"},
		{"koi8-r", "koi8-r", "%F3%DE%C5%D4.exe"},
		{"windows-1251", "windows-1251", "%D1%F7%E5%F2.exe"},
		{"gb2312", "gb2312", "%B7%A2%C6%B1.exe"},
		{"empty-charset", "", "invoice.exe"},
		{"utf8-alias", "utf8", "invoice.exe"},
		{"upper-case", "ISO-8859-15", "INVOICE.EXE"},
	} {
		add("rfc2231-"+cs.name, refused, []string{octet, "Content-Disposition: attachment; filename*=" + cs.charset + "''" + cs.encoded, cte}, exeBody())
	}
	add("rfc2231-language", refused, []string{octet, "Content-Disposition: attachment; filename*=iso-8859-1'fr'facture.exe", cte}, exeBody())
	add("rfc2231-continuation", refused, []string{octet, "Content-Disposition: attachment;\n filename*0*=iso-8859-1''fac%E9ture;\n filename*1=.e;\n filename*2*=xe", cte}, exeBody())
	add("rfc2231-name-param", refused, []string{octet + "; name*=koi8-r''%F3%DE%C5%D4.scr", cte}, exeBody())
	add("rfc2231-utf-16", refused, []string{octet, "Content-Disposition: attachment; filename*=utf-16le''e%00v%00i%00l%00.%00e%00x%00e%00", cte}, exeBody())
	add("rfc2231-nul", refused, []string{octet, "Content-Disposition: attachment; filename*=utf-8''evil.exe%00.pdf", cte}, exeBody())
	add("rfc2231-koi8-r-zip", refused+"setup.exe in ", []string{octet, "Content-Disposition: attachment; filename*=koi8-r''%F3%DE%C5%D4.zip", cte}, b64(zipOf([]string{"readme.txt", "setup.exe"}, nil)))
	add("rfc2047-koi8-r", refused, []string{octet + `; name="=?koi8-r?B?8d7F1C5leGU=?="`, cte}, exeBody())
	// Several names on one part: every one is judged.
	add("names-type-vs-disposition", refused+"x.exe", []string{octet + `; name="x.exe"`, `Content-Disposition: attachment; filename="report.pdf"`, cte}, exeBody())
	add("names-plain-vs-extended", refused+"evil.exe", []string{octet, `Content-Disposition: attachment; filename="report.pdf"; filename*=utf-8''evil.exe`, cte}, exeBody())
	add("names-filename-twice", refused+"evil.exe", []string{octet, `Content-Disposition: attachment; filename="a.txt"; filename="evil.exe"`, cte}, exeBody())
	add("names-name-twice", refused+"evil.exe", []string{octet + `; name="a.txt"; name="evil.exe"`, cte}, exeBody())
	add("names-two-dispositions", refused+"evil.exe", []string{octet, `Content-Disposition: attachment; filename="a.txt"`, `Content-Disposition: attachment; filename="evil.exe"`, cte}, exeBody())
	// Parameters mime.ParseMediaType gives up on.
	add("params-comment-before", refused+"evil.exe", []string{octet, `Content-Disposition: attachment (a report); filename=(the file)evil.exe`, cte}, exeBody())
	add("params-comment-after", refused+"evil.exe", []string{octet, `Content-Disposition: attachment; filename="evil.exe" (a report)`, cte}, exeBody())
	add("params-unterminated-quote", refused+"evil.exe", []string{octet, `Content-Disposition: attachment; filename="evil.exe`, cte}, exeBody())
	add("params-unquoted-blank", refused+"my evil.exe", []string{octet, `Content-Disposition: attachment; filename=my evil.exe`, cte}, exeBody())
	add("params-tspecials", refused+"a@b=c.exe", []string{octet, `Content-Disposition: attachment; filename=a@b=c.exe`, cte}, exeBody())
	add("params-junk-before-name", refused+"x.exe", []string{octet, "Content-Disposition: attachment; \x91filename=x.exe", cte}, exeBody())
	add("params-no-type", refused+"x.exe", []string{octet, "Content-Disposition: filename=x.exe", cte}, exeBody())
	add("name-trailing-dot-blank", refused, []string{octet, `Content-Disposition: attachment; filename="invoice.EXE. "`, cte}, exeBody())
	add("name-ntfs-stream", refused, []string{octet, `Content-Disposition: attachment; filename="invoice.exe::$DATA"`, cte}, exeBody())
	// Zips: by name, by content, inside each other.
	inner := zipOf([]string{"evil.exe"}, nil)
	add("zip-in-zip", refused+"evil.exe in inner.zip in outer.zip", []string{"Content-Type: application/zip; name=\"outer.zip\"", cte},
		b64(zipOf([]string{"readme.txt", "inner.zip"}, map[string][]byte{"inner.zip": inner})))
	add("zip-in-zip-by-content", refused+"evil.exe in data.bin in outer.zip", []string{"Content-Type: application/zip; name=\"outer.zip\"", cte},
		b64(zipOf([]string{"data.bin"}, map[string][]byte{"data.bin": inner})))
	add("zip-by-content-pdf-name", refused+"evil.exe in invoice.pdf", []string{"Content-Type: application/pdf; name=\"invoice.pdf\"", cte}, b64(inner))
	add("zip-by-content-unnamed", refused+"evil.exe in unnamed application/octet-stream part", []string{octet, cte}, b64(inner))
	add("zip-directory-then-exe", refused+"docs/run.scr in docs.zip", []string{"Content-Type: application/zip; name=\"docs.zip\"", cte}, b64(zipOf([]string{"docs/", "docs/a.txt", "docs/run.scr"}, nil)))
	var sfx bytes.Buffer
	sfx.WriteString("MZ self-extractor stub ")
	zw := zip.NewWriter(&sfx)
	zw.SetOffset(int64(sfx.Len()))
	w, _ := zw.Create("payload.exe")
	w.Write([]byte("x"))
	zw.Close()
	add("zip-prepended-data", refused+"payload.exe in bundle.zip", []string{"Content-Type: application/zip; name=\"bundle.zip\"", cte}, b64(sfx.Bytes()))
	deep := zipOf([]string{"evil.exe"}, nil)
	for _, n := range []string{"l3.zip", "l2.zip", "l1.zip"} {
		deep = zipOf([]string{n}, map[string][]byte{n: deep})
	}
	add("zip-too-deep", tooDeep+"l3.zip in l2.zip in l1.zip in top.zip", []string{"Content-Type: application/zip; name=\"top.zip\"", cte}, b64(deep))
	var many []string
	manyData := map[string][]byte{}
	for i := 0; i < 260; i++ {
		n := fmt.Sprintf("part%03d.zip", i)
		many = append(many, n)
		manyData[n] = zipOf([]string{"readme.txt"}, nil)
	}
	add("zip-many-inner", "554 5.7.1 more than 256 archives inside archives: part256.zip in many.zip", []string{"Content-Type: application/zip; name=\"many.zip\"", cte}, b64(zipOf(many, manyData)))
	// The extensions today's malware uses.
	for _, ext := range []string{"iso", "img", "vhd", "vhdx", "one", "ps1", "jar", "url", "reg", "hta", "lnk"} {
		add("ext-"+ext, refused+"file."+ext, []string{octet + "; name=\"file." + ext + "\"", cte}, exeBody())
	}
	return ms
}

// legitimate are shapes real mail programs write: all accepted.
func legitimate() []message {
	var ms []message
	add := func(name, text string) { ms = append(ms, message{"legit-" + name, accepted, text}) }
	text := "Content-Type: text/plain; charset=us-ascii\n\nHello.\n"
	for _, a := range []struct{ name, fields string }{
		{"display-name-is-address", "From: alice@example.org <alice@example.org>"},
		{"display-name-comma", "From: Doe, John <john@example.org>"},
		{"display-name-comma-quoted-too", "To: Doe, John <john@example.test>, \"Roe, Jane\" <jane@example.test>"},
		{"local-part-dots", "From: taro..yamada.@docomo.ne.jp\nTo: \"Hanako\" <.hanako@ezweb.ne.jp>"},
		{"empty-to-cc-reply-to", "To:\nCc: \nReply-To:"},
		{"ipv6-literal", "To: bob@[IPv6:2001:db8::1], carol@[192.0.2.1]"},
		{"obs-route", "To: <@relay.example.net,@mx.example.net:bob@example.test>"},
		{"obs-cfws", "To: bob @ example.test (Bob), Carol <carol (at home) @ example . test>"},
		{"obs-phrase-dots", "From: John Q. Public <john@example.org>"},
		{"group-with-members", "To: Friends: bob@example.test, carol@example.test;, dave@example.test"},
		{"obs-empty-list-items", "To: bob@example.test,, ,carol@example.test,"},
		{"encoded-display-name", "From: =?utf-8?q?Al=C3=AFce?= <alice@example.org>"},
		{"utf8-display-name", "From: Alïce <alice@example.org>"},
	} {
		add(a.name, header(a.name, strings.Split(a.fields, "\n")...)+text)
	}
	data := []byte("%PDF-1.4 a real document, more or less!\n")
	unpadded := strings.TrimRight(base64.StdEncoding.EncodeToString(data), "=")
	if len(unpadded)%4 == 0 {
		log.Fatal("gen: the unpadded base64 sample needs padding")
	}
	pdf := []string{"Content-Type: application/pdf; name=\"doc.pdf\"", "Content-Transfer-Encoding: base64"}
	add("base64-no-padding", withPart("base64-no-padding", pdf, unpadded))
	chunks := base64.StdEncoding.EncodeToString([]byte("ab")) + base64.StdEncoding.EncodeToString([]byte("cde")) + "\n" + base64.StdEncoding.EncodeToString([]byte("f"))
	add("base64-chunked-padding", withPart("base64-chunked-padding", pdf, chunks))
	add("base64-blanks", withPart("base64-blanks", pdf, " QUJD REVG \t\nR0hJ\n"))
	multi := func(id, ctype, boundary string) {
		add(id, header(id, "Content-Type: "+ctype)+"\n--"+boundary+"\nContent-Type: text/plain\n\nhello\n--"+boundary+"--\n")
	}
	multi("boundary-rfc2231-us-ascii", "multipart/mixed; boundary*=us-ascii''abc123", "abc123")
	multi("boundary-rfc2231-ansi", "multipart/mixed; boundary*=ansi-x3.4-1968''abc123", "abc123")
	multi("boundary-rfc2231-continued", "multipart/mixed; boundary*0=\"abc\"; boundary*1=\"123\"", "abc123")
	multi("boundary-comment", `multipart/mixed; boundary="abc123" (a comment)`, "abc123")
	multi("boundary-comment-unquoted", `multipart/mixed; boundary=abc123 (a comment)`, "abc123")
	multi("boundary-unquoted-specials", "multipart/alternative; boundary=----=_Part_1234_5678.1704103200000", "----=_Part_1234_5678.1704103200000")
	multi("boundary-unquoted-slash-at", "multipart/mixed; boundary=Apple-Mail/abc@def=ghi", "Apple-Mail/abc@def=ghi")
	multi("boundary-duplicate-param", `multipart/mixed; charset="us-ascii"; charset="utf-8"; boundary="abc123"`, "abc123")
	add("qp-undecodable", header("qp-undecodable", "Content-Type: text/plain; charset=iso-8859-1", "Content-Transfer-Encoding: quoted-printable")+"\ncaf=E9 =ZZ 100=\n% =\x01 done\n")
	add("zip-clean-nested", withPart("zip-clean-nested", []string{"Content-Type: application/zip; name=\"photos.zip\"", "Content-Transfer-Encoding: base64"},
		b64(zipOf([]string{"a.jpg", "more.zip"}, map[string][]byte{"more.zip": zipOf([]string{"b.jpg", "notes.txt"}, nil)}))))
	add("name-exe-in-middle", withPart("name-exe-in-middle", []string{"Content-Type: application/pdf; name=\"setup.exe.manual.pdf\"", "Content-Transfer-Encoding: base64"}, b64(data)))
	return ms
}

// stillRefused are messages no reader can make sense of.
func stillRefused() []message {
	var ms []message
	add := func(name, want, text string) { ms = append(ms, message{"refuse-" + name, want, text}) }
	text := "Content-Type: text/plain\n\nHello.\n"
	for _, a := range []struct{ name, field, value string }{
		{"unclosed-angle", "From", "Alice <alice@example.org"},
		{"unclosed-quote", "To", "\"Bob <bob@example.test>"},
		{"no-domain", "From", "alice@"},
		{"two-at", "From", "alice@example@org"},
		{"text-after-angle", "To", "<bob@example.test> and more"},
		{"bare-word", "From", "alice"},
		{"empty-from", "From", ""},
	} {
		add(a.name, badAddr+a.field+" header", header(a.name, a.field+": "+a.value)+text)
	}
	pdf := []string{"Content-Type: application/pdf; name=\"doc.pdf\"", "Content-Transfer-Encoding: base64"}
	add("base64-truncated", badMIME+"base64 content does not decode: ends with a single character", withPart("base64-truncated", pdf, "QUJDR"))
	add("base64-illegal", badMIME+"base64 content does not decode: illegal character '*' at byte 4", withPart("base64-illegal", pdf, "QUJD*REVG"))
	return ms
}
