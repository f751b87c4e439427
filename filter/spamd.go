package filter

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// SpamResult is spamd's judgement of a message.
type SpamResult struct {
	Spam      bool    // spamd's own decision (its required_score)
	Score     float64 // the message's score
	Threshold float64 // spamd's required_score
	Symbols   string  // the rules that hit, comma-separated
}

// SpamdCheck asks spamd (protocol SPAMC/1.5, command SYMBOLS) for the
// message's score. The caller knows the message size, which spamd needs
// before the body.
func SpamdCheck(ctx context.Context, addr, user string, msg io.Reader, size int64, timeout time.Duration) (SpamResult, error) {
	var res SpamResult
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := dialScanner(ctx, addr)
	if err != nil {
		return res, &scannerDown{fmt.Errorf("spamd %s: %w", addr, err)}
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	w := bufio.NewWriter(c)
	fmt.Fprintf(w, "SYMBOLS SPAMC/1.5\r\nContent-length: %d\r\n", size)
	if user != "" {
		fmt.Fprintf(w, "User: %s\r\n", user)
	}
	w.WriteString("\r\n")
	if _, err := io.Copy(w, msg); err != nil {
		return res, &scannerDown{fmt.Errorf("spamd %s: send: %w", addr, err)}
	}
	if err := w.Flush(); err != nil {
		return res, &scannerDown{fmt.Errorf("spamd %s: send: %w", addr, err)}
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	res, err = parseSpamdReply(bufio.NewReader(io.LimitReader(c, 1<<20)))
	if err != nil {
		return res, &scannerDown{fmt.Errorf("spamd %s: %w", addr, err)}
	}
	return res, nil
}

// parseSpamdReply reads "SPAMD/1.1 0 EX_OK", the headers (Spam: True ;
// 1000.0 / 5.0) and the symbol list.
func parseSpamdReply(r *bufio.Reader) (SpamResult, error) {
	var res SpamResult
	status, err := r.ReadString('\n')
	if err != nil {
		return res, fmt.Errorf("no reply: %v", err)
	}
	f := strings.Fields(status)
	if len(f) < 3 || !strings.HasPrefix(f[0], "SPAMD/") || f[1] != "0" {
		return res, fmt.Errorf("error reply %q", Sanitize(strings.TrimSpace(status), 100))
	}
	gotSpam := false
	for {
		line, err := r.ReadString('\n')
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			break
		}
		if err != nil {
			return res, fmt.Errorf("truncated reply")
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || !strings.EqualFold(k, "Spam") {
			continue
		}
		// True ; 1000.0 / 5.0
		yes, scores, ok := strings.Cut(v, ";")
		if !ok {
			return res, fmt.Errorf("bad Spam header %q", Sanitize(line, 100))
		}
		s, t, ok := strings.Cut(scores, "/")
		if !ok {
			return res, fmt.Errorf("bad Spam header %q", Sanitize(line, 100))
		}
		res.Spam = strings.EqualFold(strings.TrimSpace(yes), "true") || strings.EqualFold(strings.TrimSpace(yes), "yes")
		if res.Score, err = strconv.ParseFloat(strings.TrimSpace(s), 64); err != nil {
			return res, fmt.Errorf("bad score in %q", Sanitize(line, 100))
		}
		if res.Threshold, err = strconv.ParseFloat(strings.TrimSpace(t), 64); err != nil {
			return res, fmt.Errorf("bad threshold in %q", Sanitize(line, 100))
		}
		gotSpam = true
	}
	if !gotSpam {
		return res, fmt.Errorf("reply without a Spam header")
	}
	body, _ := io.ReadAll(r)
	res.Symbols = strings.TrimSpace(string(body))
	return res, nil
}
