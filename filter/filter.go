package filter

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"
)

// The checks, by the names --action and the log line use.
const (
	CheckSize        = "size"
	CheckHeaders     = "headers"
	CheckAddresses   = "addresses"
	CheckNUL         = "nul"
	CheckHeaderChars = "header-chars"
	CheckMIME        = "mime"
	CheckAttachments = "attachments"
	CheckDomains     = "domains"
	CheckVirus       = "virus"
	CheckSpam        = "spam"
	CheckRspamd      = "rspamd"
	CheckExec        = "exec"
)

// Checks lists every check in the order they run.
var Checks = []string{CheckSize, CheckNUL, CheckHeaderChars, CheckHeaders, CheckAddresses, CheckMIME,
	CheckAttachments, CheckDomains, CheckLocalAddresses, CheckVirus, CheckSpam, CheckRspamd, CheckExec}

// DefaultBlocked is the default --block-attachments list: Windows
// programs and scripts, and the containers and shortcuts malware has
// moved to since Office macros were blocked (disk images, OneNote,
// PowerShell, Java, Internet shortcuts, registry files).
var DefaultBlocked = []string{".exe", ".scr", ".pif", ".com", ".bat", ".cmd", ".vbs", ".js", ".jse",
	".wsf", ".hta", ".cpl", ".msi", ".lnk", ".iso", ".img", ".vhd", ".vhdx", ".one", ".ps1", ".jar",
	".url", ".reg"}

// Config is one mxfilter invocation's settings.
type Config struct {
	Modes            map[string]Mode // per check; a missing check has its default
	RequireHeaders   []string        // default From, Date
	BlockAttachments []string        // extensions with the dot, lower-case
	StripNUL         bool            // NUL bytes are removed on hand-over, not refused
	MaxSize          int64           // 0: no limit of mxfilter's own
	Limits           Limits

	// Scanners: each is a list of addresses tried in order (on a failure
	// to connect, a timeout or an error reply) within ScannerTimeout in
	// all.
	Clamd        []string // HOST:PORT or a unix socket path
	ClamdMaxSize int64    // larger messages are not sent to clamd (logged)

	Spamd         []string
	SpamdUser     string
	SpamdMaxSize  int64   // larger messages are not sent to spamd (logged)
	SpamThreshold float64 // 0: spamd's own required_score decides
	SpamHeaders   bool    // add X-Spam-Flag, X-Spam-Score, X-Spam-Status

	Rspamd        []string // http://HOST:PORT, HOST:PORT or a unix socket path
	RspamdMaxSize int64    // larger messages are not sent to rspamd (logged)

	ScannerFailAccept bool // a scanner that cannot answer: accept, not 451
	ScannerTimeout    time.Duration

	Exec        []string // /bin/sh -c commands
	ExecTimeout time.Duration

	HeaderDomainsExist bool
	DNSServer          string // HOST:PORT
	DNSTimeout         time.Duration

	CheckRelayClients bool // RELAYCLIENT set: judge anyway

	// LocalAddresses is --local-header-addresses' (local.go); nil: off.
	LocalAddresses *LocalAddresses

	// Observe runs every check and scanner, none skipped after a
	// refusal, and accepts every message: the report's Observed is the
	// verdict it would have given.
	Observe bool
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		Modes:            map[string]Mode{},
		RequireHeaders:   []string{"From", "Date"},
		BlockAttachments: append([]string(nil), DefaultBlocked...),
		ClamdMaxSize:     25 << 20,
		SpamdMaxSize:     512000,
		RspamdMaxSize:    20 << 20,
		ScannerTimeout:   60 * time.Second,
		ExecTimeout:      120 * time.Second,
		DNSTimeout:       5 * time.Second,
	}
}

// Mode returns the mode of a check: the configured one, or its default
// (reject; header domains only when --header-domains-exist is set).
func (c *Config) Mode(check string) Mode {
	if m, ok := c.Modes[check]; ok {
		return m
	}
	switch check {
	case CheckDomains:
		if !c.HeaderDomainsExist {
			return Off
		}
	case CheckLocalAddresses:
		if c.LocalAddresses == nil {
			return Off
		}
	case CheckVirus:
		if len(c.Clamd) == 0 {
			return Off
		}
	case CheckSpam:
		if len(c.Spamd) == 0 {
			return Off
		}
	case CheckRspamd:
		if len(c.Rspamd) == 0 {
			return Off
		}
	case CheckExec:
		if len(c.Exec) == 0 {
			return Off
		}
	case CheckNUL:
		if c.StripNUL {
			return Log
		}
	}
	return Refuse
}

// Message is one message to judge.
type Message struct {
	Spool   *Spool
	Env     Envelope
	Getenv  func(string) string // the environment mxfilter runs in
	Environ []string            // handed to --exec commands
	QueueID string              // the MTA's id of the message, when known (for rspamd's log)
}

// CheckResult is one check's outcome for the log line.
type CheckResult struct {
	Name     string
	Result   string // pass, found(...), error(...), skipped(...)
	Duration time.Duration
}

// Report is the outcome of Judge.
type Report struct {
	Verdict    Verdict
	Checks     []CheckResult
	AddHeaders []string // header lines (without line end) to add on acceptance
	Subject    string   // a new Subject (rspamd's rewrite subject), "" to keep it
	Trusted    bool     // RELAYCLIENT set: content checks skipped
	Scanners   []string // key, address pairs: the scanner address that answered
	Observed   *Verdict // with Config.Observe: the verdict that was not given
}

type judge struct {
	cfg    *Config
	msg    *Message
	rep    *Report
	st     *Structure
	ctx    context.Context
	remote string
	helo   string
}

// Judge runs the checks on the message. It never fails: an internal error
// becomes a deferral (never an acceptance of what a check refused, never a
// drop), and each check's result is in the report.
func (c *Config) Judge(ctx context.Context, m *Message) *Report {
	rep := &Report{Verdict: accepted}
	getenv := m.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
		m.Getenv = getenv
	}
	j := &judge{cfg: c, msg: m, rep: rep, ctx: ctx, remote: getenv("TCPREMOTEIP"), helo: getenv("MXFRONT_HELO")}
	if !c.CheckRelayClients && isSet(m.Environ, "RELAYCLIENT") {
		rep.Trusted = true
		rep.Checks = append(rep.Checks, CheckResult{Name: "relayclient", Result: "trusted"})
		return rep
	}
	for _, name := range Checks {
		mode := c.Mode(name)
		if mode == Off {
			continue
		}
		if rep.Verdict.Action == Reject && !c.Observe && (name == CheckVirus || name == CheckSpam || name == CheckRspamd || name == CheckExec || name == CheckDomains) {
			rep.Checks = append(rep.Checks, CheckResult{Name: name, Result: "skipped(refused already)"})
			continue
		}
		start := time.Now()
		res, v := j.run(name, mode)
		rep.Checks = append(rep.Checks, CheckResult{Name: name, Result: res, Duration: time.Since(start)})
		rep.Verdict = worse(rep.Verdict, v)
	}
	if c.Observe {
		would := rep.Verdict
		rep.Observed, rep.Verdict = &would, accepted
	}
	return rep
}

func isSet(environ []string, name string) bool {
	for _, kv := range environ {
		if k, _, ok := strings.Cut(kv, "="); ok && k == name {
			return true
		}
	}
	return false
}

// run runs one check and returns its log result and verdict.
func (j *judge) run(name string, mode Mode) (string, Verdict) {
	f, detail, err := j.safeCheck(name)
	if err != nil {
		var sd *scannerDown
		if errors.As(err, &sd) {
			if j.cfg.ScannerFailAccept {
				return fmt.Sprintf("error(%s)->accept", Sanitize(err.Error(), 600)), accepted
			}
			return fmt.Sprintf("error(%s)->tempfail", Sanitize(err.Error(), 600)),
				Verdict{Action: Tempfail, Code: 451, Enhanced: "4.3.0", Text: "content scanner unavailable, try again later"}
		}
		var tf *tempFinding
		if errors.As(err, &tf) {
			if mode == Log {
				return fmt.Sprintf("tempfail(%s)->log", Sanitize(tf.text, 200)), accepted
			}
			enhanced := tf.enhanced
			if enhanced == "" {
				enhanced = "4.3.0"
			}
			return fmt.Sprintf("tempfail(%s)", Sanitize(tf.text, 200)),
				Verdict{Action: Tempfail, Code: 451, Enhanced: enhanced, Text: replyText(tf.text)}
		}
		var uns *unsure
		if errors.As(err, &uns) {
			return fmt.Sprintf("unsure(%s)->accept", Sanitize(err.Error(), 200)), accepted
		}
		// An internal failure: defer, so that nothing a check would have
		// refused slips through and nothing is lost.
		return fmt.Sprintf("error(%s)->tempfail", Sanitize(err.Error(), 200)),
			Verdict{Action: Tempfail, Code: 451, Enhanced: "4.3.0", Text: "local error in the content filter, try again later"}
	}
	if f == nil {
		if detail != "" {
			return "pass(" + Sanitize(detail, 200) + ")", accepted
		}
		return "pass", accepted
	}
	return fmt.Sprintf("found(%s)->%s", Sanitize(f.text, 200), mode), verdictFor(mode, *f)
}

// safeCheck runs a check and turns a panic (a bug, or a message stranger
// than the code expected) into an internal error: the message is deferred
// and the one log line says why, instead of mxfilter dying without it.
func (j *judge) safeCheck(name string) (f *finding, detail string, err error) {
	defer func() {
		if p := recover(); p != nil {
			f, detail, err = nil, "", fmt.Errorf("%s: panic: %v", name, p)
		}
	}()
	return j.check(name)
}

// tempFinding is a temporary refusal that does not come from a mode: an
// --exec command that exited 111 or 71, rspamd's soft reject or greylist.
type tempFinding struct {
	text     string
	enhanced string // "" for 4.3.0
}

func (t *tempFinding) Error() string { return t.text }

// unsure is a failure that does not decide anything: the check passes.
type unsure struct{ err error }

func (u *unsure) Error() string { return u.err.Error() }

func (j *judge) structure() (*Structure, error) {
	if j.st != nil {
		return j.st, nil
	}
	lim := j.cfg.Limits
	lim.Blocked = j.cfg.BlockAttachments
	st, err := Analyze(j.msg.Spool.Reader(), lim)
	if err != nil {
		return nil, err
	}
	j.st = st
	return st, nil
}

func media(text string) *finding {
	return &finding{code: 554, enhanced: "5.6.0", text: text}
}

func policy(text string) *finding {
	return &finding{code: 554, enhanced: "5.7.1", text: text}
}

// check returns a finding, a pass (nil, detail) or an error.
func (j *judge) check(name string) (*finding, string, error) {
	switch name {
	case CheckSize:
		if j.cfg.MaxSize > 0 && j.msg.Spool.Size() > j.cfg.MaxSize {
			return &finding{code: 552, enhanced: "5.3.4", text: "message too big for this system"}, "", nil
		}
		return nil, "", nil
	case CheckNUL:
		if j.msg.Spool.nuls > 0 {
			if j.cfg.StripNUL {
				return nil, fmt.Sprintf("%d NUL bytes stripped", j.msg.Spool.nuls), nil
			}
			return media("message contains NUL bytes"), "", nil
		}
		return nil, "", nil
	}
	st, err := j.structure()
	if err != nil {
		return nil, "", err
	}
	switch name {
	case CheckHeaderChars:
		if st.HeaderProblem != "" {
			return media("malformed header: " + st.HeaderProblem), "", nil
		}
	case CheckHeaders:
		return j.requiredHeaders(st.Header), "", nil
	case CheckAddresses:
		for _, field := range []string{"From", "Sender", "Reply-To", "To", "Cc"} {
			for _, f := range st.Header {
				if !strings.EqualFold(f.Name, field) {
					continue
				}
				_, items, err := parseAddressList(f.Value)
				// To, Cc and Reply-To may be empty; From and Sender name
				// someone.
				if err != nil || items == 0 && (field == "From" || field == "Sender") {
					return media(fmt.Sprintf("malformed address in %s header", field)), "", nil
				}
			}
		}
	case CheckMIME:
		if st.MIMEProblem != "" {
			return media("malformed MIME structure: " + st.MIMEProblem), "", nil
		}
	case CheckAttachments:
		return j.attachments(st)
	case CheckDomains:
		return j.domains(st)
	case CheckLocalAddresses:
		return j.localAddresses(st)
	case CheckVirus:
		return j.virus()
	case CheckSpam:
		return j.spam()
	case CheckRspamd:
		return j.rspamd()
	case CheckExec:
		return j.exec()
	}
	return nil, "", nil
}

func (j *judge) requiredHeaders(h Header) *finding {
	for _, name := range j.cfg.RequireHeaders {
		if strings.EqualFold(name, "Message-ID") && j.msg.Env.Sender == "" {
			continue // bounces often lack one (RFC 3464 does not ask for it)
		}
		if !h.Has(name) {
			return media("message lacks a required header: " + Sanitize(name, 40))
		}
	}
	return nil
}

func (j *judge) attachments(st *Structure) (*finding, string, error) {
	for _, a := range st.Attachments {
		if blockedName(a.Name, j.cfg.BlockAttachments) {
			where := ""
			if a.InZip != "" {
				where = " in " + Sanitize(a.InZip, 160)
			}
			return policy(fmt.Sprintf("attachment type refused: %s%s", Sanitize(a.Name, 80), where)), "", nil
		}
	}
	if st.TooDeep != "" {
		depth := j.cfg.Limits.ArchiveDepth
		if depth <= 0 {
			depth = 3
		}
		return policy(fmt.Sprintf("archive nested deeper than %d levels: %s", depth, Sanitize(st.TooDeep, 160))), "", nil
	}
	if st.TooMany != "" {
		return policy(fmt.Sprintf("more than %d archives inside archives: %s", maxInnerOpened, Sanitize(st.TooMany, 160))), "", nil
	}
	if len(st.ZipProblems) > 0 {
		// Not a refusal (unsure means accept), but the operator hears
		// of it: the log line is a warning.
		return nil, "", &unsure{errors.New("unreadable zip: " + strings.Join(st.ZipProblems, "; "))}
	}
	return nil, "", nil
}

func (j *judge) domains(st *Structure) (*finding, string, error) {
	server := j.cfg.DNSServer
	if server == "" {
		server = DefaultDNSServer()
	}
	var unsureErrs []string
	for _, d := range addressDomains(st.Header, "From", "Sender", "Reply-To") {
		ok, err := DomainExists(j.ctx, server, d, j.cfg.DNSTimeout)
		if err != nil {
			unsureErrs = append(unsureErrs, err.Error())
			continue
		}
		if !ok {
			return &finding{code: 554, enhanced: "5.1.8", text: "domain in the message header does not exist: " + Sanitize(d, 100)}, "", nil
		}
	}
	if len(unsureErrs) > 0 {
		return nil, "", &unsure{errors.New(strings.Join(unsureErrs, "; "))}
	}
	return nil, "", nil
}

func (j *judge) virus() (*finding, string, error) {
	if j.cfg.ClamdMaxSize > 0 && j.msg.Spool.Size() > j.cfg.ClamdMaxSize {
		return nil, "not scanned: larger than the clamd limit", nil
	}
	var name string
	addr, err := tryInOrder(j.ctx, j.cfg.Clamd, j.cfg.ScannerTimeout, func(ctx context.Context, a string, t time.Duration) (err error) {
		name, err = ClamdScan(ctx, a, j.msg.Spool.Reader(), t)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	j.answered("clamd", addr)
	if name != "" {
		return policy("message contains a virus: " + Sanitize(name, 100)), "", nil
	}
	return nil, "", nil
}

func (j *judge) spam() (*finding, string, error) {
	if j.cfg.SpamdMaxSize > 0 && j.msg.Spool.Size() > j.cfg.SpamdMaxSize {
		return nil, "not scanned: larger than the spamd limit", nil
	}
	var res SpamResult
	addr, err := tryInOrder(j.ctx, j.cfg.Spamd, j.cfg.ScannerTimeout, func(ctx context.Context, a string, t time.Duration) (err error) {
		res, err = SpamdCheck(ctx, a, j.cfg.SpamdUser, j.msg.Spool.Reader(), j.msg.Spool.Size(), t)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	j.answered("spamd", addr)
	threshold := res.Threshold
	if j.cfg.SpamThreshold > 0 {
		threshold = j.cfg.SpamThreshold
	}
	spam := res.Score >= threshold
	if j.cfg.SpamHeaders {
		flag := "NO"
		yes := "No"
		if spam {
			flag, yes = "YES", "Yes"
		}
		j.rep.AddHeaders = append(j.rep.AddHeaders,
			"X-Spam-Flag: "+flag,
			fmt.Sprintf("X-Spam-Score: %.1f", res.Score),
			fmt.Sprintf("X-Spam-Status: %s, score=%.1f required=%.1f tests=%s", yes, res.Score, threshold, Sanitize(res.Symbols, 800)))
	}
	detail := fmt.Sprintf("score %.1f/%.1f", res.Score, threshold)
	if spam {
		return policy(fmt.Sprintf("message looks like spam (score %.1f, limit %.1f)", res.Score, threshold)), "", nil
	}
	return nil, detail, nil
}

// answered notes the scanner address that gave the answer, for the log.
func (j *judge) answered(scanner, addr string) {
	j.rep.Scanners = append(j.rep.Scanners, scanner, addr)
}

// tryInOrder asks the scanners at addrs in turn until one answers (or
// fails in a way that is not "cannot answer"): each try gets an equal
// share of what is left of total, the last one all of it.
func tryInOrder(ctx context.Context, addrs []string, total time.Duration, try func(context.Context, string, time.Duration) error) (string, error) {
	deadline := time.Now().Add(total)
	var downs []string
	for i, a := range addrs {
		left := time.Until(deadline)
		if left <= 0 {
			downs = append(downs, a+": not tried, no time left")
			continue
		}
		err := try(ctx, a, left/time.Duration(len(addrs)-i))
		var sd *scannerDown
		if err == nil || !errors.As(err, &sd) {
			return a, err
		}
		downs = append(downs, err.Error())
	}
	return "", &scannerDown{errors.New(strings.Join(downs, "; "))}
}

func (j *judge) rspamd() (*finding, string, error) {
	size := j.msg.Spool.Size()
	if j.cfg.RspamdMaxSize > 0 && size > j.cfg.RspamdMaxSize {
		return nil, "not scanned: larger than the rspamd limit", nil
	}
	getenv := j.msg.Getenv
	env := RspamdEnvelope{IP: j.remote, Helo: j.helo, From: j.msg.Env.Sender, Rcpts: j.msg.Env.Recipients,
		QueueID: j.msg.QueueID, Hostname: getenv("TCPREMOTEHOST"), User: getenv("AUTH_AS")}
	if env.Helo == "" {
		env.Helo = getenv("EHLO_DOMAIN")
	}
	var res RspamdResult
	addr, err := tryInOrder(j.ctx, j.cfg.Rspamd, j.cfg.ScannerTimeout, func(ctx context.Context, a string, t time.Duration) (err error) {
		res, err = RspamdCheck(ctx, a, env, j.msg.Spool.Reader(), size, t)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	j.answered("rspamd", addr)
	spam := res.Action != "no action" && res.Action != "greylist"
	if j.cfg.SpamHeaders {
		flag, yes := "NO", "No"
		if spam {
			flag, yes = "YES", "Yes"
		}
		j.rep.AddHeaders = append(j.rep.AddHeaders,
			"X-Spam-Flag: "+flag,
			fmt.Sprintf("X-Spam-Score: %.1f", res.Score),
			fmt.Sprintf("X-Spam-Status: %s, score=%.1f required=%.1f action=%s tests=%s", yes, res.Score, res.Required,
				Sanitize(res.Action, 20), Sanitize(strings.Join(res.Symbols, ","), 800)))
	}
	j.rep.AddHeaders = append(j.rep.AddHeaders, res.AddHeaders...)
	detail := fmt.Sprintf("%s, score %.1f/%.1f", Sanitize(res.Action, 20), res.Score, res.Required)
	text := res.SMTPMessage
	switch res.Action {
	case "reject":
		if text == "" {
			text = fmt.Sprintf("message looks like spam (score %.1f, limit %.1f)", res.Score, res.Required)
		}
		return policy(text), "", nil
	case "soft reject", "greylist":
		if text == "" {
			text = "message deferred by the spam filter, try again later"
		}
		return nil, "", &tempFinding{text: text, enhanced: "4.7.1"}
	case "rewrite subject":
		if res.Subject != "" {
			j.rep.Subject = Sanitize(res.Subject, 900)
		}
		fallthrough
	case "add header":
		j.rep.AddHeaders = append(j.rep.AddHeaders, "X-Spam: Yes")
		return nil, detail, nil
	case "no action":
		return nil, detail, nil
	}
	return nil, "", &unsure{fmt.Errorf("rspamd %s: unknown action %q", addr, Sanitize(res.Action, 40))}
}

// replyCode strips "554 5.7.1 " or "554-" from a command's reply text.
var replyCode = regexp.MustCompile(`^[245]\d\d[ -]([245]\.\d{1,3}\.\d{1,3} )?`)

func (j *judge) exec() (*finding, string, error) {
	rcpts, err := WriteRecipients(j.cfg.Limits.TempDir, j.msg.Env)
	if err != nil {
		return nil, "", err
	}
	defer os.Remove(rcpts)
	environ := append(append([]string(nil), j.msg.Environ...), CommandEnv(j.msg.Env, j.remote, j.helo, rcpts)...)
	for _, command := range j.cfg.Exec {
		res, err := RunCommand(j.ctx, command, environ, j.msg.Spool.Reader(), j.cfg.ExecTimeout)
		if err != nil {
			return nil, "", fmt.Errorf("%v", err)
		}
		text := replyCode.ReplaceAllString(res.Reply, "")
		switch res.Exit {
		case 0:
			j.rep.AddHeaders = append(j.rep.AddHeaders, res.Headers...)
			continue
		case 100, 31, 20:
			if text == "" {
				text = "message refused by local policy"
			}
			return policy(text), "", nil
		case 111, 71, 75:
			if text == "" {
				text = "message deferred by local policy, try again later"
			}
			return nil, "", &tempFinding{text: text}
		case 99:
			return nil, "", fmt.Errorf("exec %q exited 99 (qmail-qfilter's silent drop): mxfilter never drops mail; use 100 to refuse", command)
		default:
			return nil, "", fmt.Errorf("exec %q exited %d", command, res.Exit)
		}
	}
	return nil, "", nil
}
