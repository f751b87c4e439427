package filter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"sort"
	"strings"
	"time"
)

// rspamd is spoken over its HTTP protocol with net/http: POST /checkv2,
// the message as the body, the envelope and the connection in request
// headers, a JSON answer. No client library is needed for one request.

// RspamdEnvelope is what rspamd is told beside the message.
type RspamdEnvelope struct {
	IP, Helo, From, QueueID, Hostname, User string
	Rcpts                                   []string
}

// maxRspamdRcpts bounds the Rcpt headers of one request (rspamd itself
// reads at most max_recipients, 1024 by default).
const maxRspamdRcpts = 1000

// RspamdResult is rspamd's answer, the parts mxfilter uses.
type RspamdResult struct {
	Action      string  // reject, soft reject, greylist, add header, rewrite subject, no action
	Score       float64 // the message's score
	Required    float64 // the score of the reject action
	Symbols     []string
	SMTPMessage string   // messages.smtp_message: the reply text rspamd asks for
	Subject     string   // the new subject, for rewrite subject
	AddHeaders  []string // milter.add_headers, as "Name: value"
}

// rspamdURL turns --rspamd's address into the /checkv2 URL and the unix
// socket to dial ("" for TCP): http://HOST:PORT[/prefix], HOST:PORT, or a
// socket path (anything holding a slash that is not a URL).
func rspamdURL(addr string) (string, string) {
	switch {
	case strings.HasPrefix(addr, "http://") || strings.HasPrefix(addr, "https://"):
		return strings.TrimRight(addr, "/") + "/checkv2", ""
	case strings.HasPrefix(addr, "unix:"):
		return "http://rspamd/checkv2", strings.TrimPrefix(addr, "unix:")
	case strings.Contains(addr, "/"):
		return "http://rspamd/checkv2", addr
	}
	return "http://" + addr + "/checkv2", ""
}

// RspamdCheck posts the message to rspamd at addr and returns its answer.
// A connection failure, a timeout, an HTTP error or an answer that is not
// rspamd's is a scanner that cannot answer.
func RspamdCheck(ctx context.Context, addr string, env RspamdEnvelope, msg io.Reader, size int64, timeout time.Duration) (RspamdResult, error) {
	var res RspamdResult
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	url, sock := rspamdURL(addr)
	tr := &http.Transport{DisableKeepAlives: true, Proxy: nil}
	if sock != "" {
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, msg)
	if err != nil {
		return res, &scannerDown{fmt.Errorf("rspamd %s: %w", addr, err)}
	}
	req.ContentLength = size
	setRspamdHeaders(req.Header, env)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	var ue *neturl.Error
	if errors.As(err, &ue) {
		err = ue.Err // the dial's or the timeout's own words, without the URL
	}
	if err != nil {
		return res, &scannerDown{fmt.Errorf("rspamd %s: %w", addr, err)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return res, &scannerDown{fmt.Errorf("rspamd %s: read reply: %w", addr, err)}
	}
	if resp.StatusCode != http.StatusOK {
		return res, &scannerDown{fmt.Errorf("rspamd %s: %s: %s", addr, resp.Status, Sanitize(string(body), 120))}
	}
	res, err = parseRspamdReply(body)
	if err != nil {
		return res, &scannerDown{fmt.Errorf("rspamd %s: %w", addr, err)}
	}
	return res, nil
}

func setRspamdHeaders(h http.Header, env RspamdEnvelope) {
	set := func(name, v string, max int) {
		if v = Sanitize(v, max); v != "" {
			h.Set(name, v)
		}
	}
	set("IP", env.IP, 64)
	set("Helo", env.Helo, 255)
	set("Hostname", env.Hostname, 255)
	set("Queue-Id", env.QueueID, 64)
	set("User", env.User, 256)
	if env.From == "" {
		h.Set("From", "<>")
	} else {
		set("From", env.From, maxAddress)
	}
	for i, r := range env.Rcpts {
		if i == maxRspamdRcpts {
			break
		}
		if r = Sanitize(r, maxAddress); r != "" {
			h.Add("Rcpt", r)
		}
	}
}

// parseRspamdReply reads the JSON answer of /checkv2.
func parseRspamdReply(body []byte) (RspamdResult, error) {
	var res RspamdResult
	var r struct {
		Action        *string                    `json:"action"`
		Score         float64                    `json:"score"`
		RequiredScore float64                    `json:"required_score"`
		Symbols       map[string]json.RawMessage `json:"symbols"`
		Messages      map[string]json.RawMessage `json:"messages"`
		Subject       string                     `json:"subject"`
		Milter        struct {
			AddHeaders map[string]json.RawMessage `json:"add_headers"`
		} `json:"milter"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return res, fmt.Errorf("reply is not rspamd's JSON: %v", err)
	}
	if r.Action == nil {
		if r.Error != "" {
			return res, fmt.Errorf("error: %s", Sanitize(r.Error, 120))
		}
		return res, fmt.Errorf("reply without an action")
	}
	res.Action, res.Score, res.Required, res.Subject = *r.Action, r.Score, r.RequiredScore, r.Subject
	for name := range r.Symbols {
		res.Symbols = append(res.Symbols, name)
	}
	sort.Strings(res.Symbols)
	if raw, ok := r.Messages["smtp_message"]; ok {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			res.SMTPMessage = s
		}
	}
	var names []string
	for name := range r.Milter.AddHeaders {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !validFieldName(name) {
			continue
		}
		for _, v := range milterValues(r.Milter.AddHeaders[name]) {
			res.AddHeaders = append(res.AddHeaders, name+": "+Sanitize(v, 900))
		}
	}
	return res, nil
}

// milterValues reads a milter.add_headers value: a string, an object with
// a value, or a list of either.
func milterValues(raw json.RawMessage) []string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []string{s}
	}
	var o struct {
		Value string `json:"value"`
	}
	if json.Unmarshal(raw, &o) == nil && o.Value != "" {
		return []string{o.Value}
	}
	var list []json.RawMessage
	var out []string
	if json.Unmarshal(raw, &list) == nil {
		for _, item := range list {
			out = append(out, milterValues(item)...)
		}
	}
	return out
}
