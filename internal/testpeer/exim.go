package testpeer

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// EximOptions shapes the configuration NewExim writes.
type EximOptions struct {
	// Hostname is exim's primary_hostname (default mx.example.test).
	Hostname string
	// LocalDomain is the one domain exim accepts mail for (default
	// example.test); every other recipient is refused at RCPT.
	LocalDomain string
	// DataACL is the body of the acl_smtp_data ACL, one statement per line
	// with exim's indentation (e.g. "  deny condition = ...\n  accept");
	// empty means "  accept".
	DataACL string
	// Main is extra text for the main section (macros, options).
	Main string
}

// Exim is a self-contained exim4 configuration in a temporary directory:
// its own spool, logs in files there, no daemon, and one maildir that
// receives every message for the local domain.
type Exim struct {
	Bin     string // the exim4 binary
	Dir     string // the directory holding everything below
	Conf    string // the configuration file (exim4 -C)
	Spool   string // spool_directory
	LogDir  string // mainlog, rejectlog, paniclog
	Maildir string // where accepted mail is delivered
	User    string // exim_user: the user exim runs ACL commands and deliveries as
}

// NewExim writes the configuration and the directories, and removes them
// when the test ends.
//
// Run as root (CI), exim treats -C as untrusted and gives up root for the
// exim user, both for the receiving process's ${run} commands and for the
// delivery, so the directory is world-searchable and the spool, log and
// maildir belong to that user (Debian-exim on Debian). Programs an ACL runs
// must be readable by that user: see Install.
func NewExim(t testing.TB, opts EximOptions) *Exim {
	t.Helper()
	bin := Need(t, "exim4")
	if opts.Hostname == "" {
		opts.Hostname = "mx.example.test"
	}
	if opts.LocalDomain == "" {
		opts.LocalDomain = "example.test"
	}
	if opts.DataACL == "" {
		opts.DataACL = "  accept"
	}
	dir, err := os.MkdirTemp("", "testpeer-exim-")
	if err != nil {
		t.Fatalf("testpeer: exim: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("testpeer: exim: %v", err)
	}
	e := &Exim{
		Bin:     bin,
		Dir:     dir,
		Conf:    filepath.Join(dir, "exim.conf"),
		Spool:   filepath.Join(dir, "spool"),
		LogDir:  filepath.Join(dir, "log"),
		Maildir: filepath.Join(dir, "maildir"),
	}
	uid, gid, name := eximUser(t)
	e.User = name
	for _, d := range []string{e.Spool, e.LogDir, e.Maildir, filepath.Join(dir, "bin")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatalf("testpeer: exim: %v", err)
		}
		if os.Geteuid() == 0 {
			if err := os.Chown(d, uid, gid); err != nil {
				t.Fatalf("testpeer: exim: %v", err)
			}
		}
	}
	if err := os.WriteFile(e.Conf, []byte(e.config(opts)), 0o644); err != nil {
		t.Fatalf("testpeer: exim: %v", err)
	}
	return e
}

// eximUser picks the user exim gives its privileges to: the packaged exim
// user when running as root, the caller otherwise.
func eximUser(t testing.TB) (uid, gid int, name string) {
	t.Helper()
	var u *user.User
	var err error
	if os.Geteuid() == 0 {
		for _, n := range []string{"Debian-exim", "exim", "mail"} {
			if u, err = user.Lookup(n); err == nil {
				break
			}
		}
	} else {
		u, err = user.Current()
	}
	if err != nil || u == nil {
		t.Fatalf("testpeer: exim: no user to run exim as: %v", err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid, u.Username
}

func (e *Exim) config(o EximOptions) string {
	return fmt.Sprintf(`# written by internal/testpeer for one test
primary_hostname = %[1]s
qualify_domain = %[2]s
exim_user = %[3]s
exim_group = %[4]s
spool_directory = %[5]s
log_file_path = %[6]s/%%slog
pid_file_path = %[7]s/exim.pid
domainlist local_domains = %[2]s
host_lookup =
rfc1413_hosts =
rfc1413_query_timeout = 0s
keep_environment =
add_environment = PATH=/usr/local/bin:/usr/bin:/bin
message_size_limit = 0
acl_smtp_rcpt = acl_check_rcpt
acl_smtp_data = acl_check_data
%[9]s

begin acl

acl_check_rcpt:
  accept domains = +local_domains
  deny message = relay not permitted

acl_check_data:
%[10]s

begin routers

local:
  driver = accept
  domains = +local_domains
  transport = maildir

begin transports

maildir:
  driver = appendfile
  directory = %[8]s
  maildir_format
  create_directory
  user = %[3]s
  group = %[4]s
  mode = 0644
`, o.Hostname, o.LocalDomain, e.User, e.group(), e.Spool, e.LogDir, e.Dir, e.Maildir, o.Main, o.DataACL)
}

func (e *Exim) group() string {
	u, err := user.Lookup(e.User)
	if err != nil {
		return e.User
	}
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		return e.User
	}
	return g.Name
}

// Command returns exim4 -C CONF -bs, one SMTP session on stdin and stdout
// (as inetd would run it), with the client's address set to remoteIP
// (-oMa; root is a trusted caller) and delivery done before the session
// ends (-odi), so the maildir holds the message when the command exits.
func (e *Exim) Command(remoteIP string) *exec.Cmd {
	args := []string{"-C", e.Conf, "-odi"}
	if remoteIP != "" {
		args = append(args, "-oMa", remoteIP)
	}
	args = append(args, "-bs")
	cmd := exec.Command(e.Bin, args...)
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	return cmd
}

// Install copies the program at src into the exim directory, readable and
// executable by the exim user (a test binary directory is often private
// to root), and returns its new path.
func (e *Exim) Install(t testing.TB, src string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatalf("testpeer: exim: install: %v", err)
	}
	dst := filepath.Join(e.Dir, "bin", filepath.Base(src))
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatalf("testpeer: exim: install: %v", err)
	}
	return dst
}

// Messages returns the delivered messages (maildir new/ and cur/), oldest
// file name first.
func (e *Exim) Messages(t testing.TB) []string {
	t.Helper()
	var names []string
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(e.Maildir, sub))
		if err != nil && !os.IsNotExist(err) {
			t.Fatalf("testpeer: exim: %v", err)
		}
		for _, ent := range ents {
			names = append(names, filepath.Join(e.Maildir, sub, ent.Name()))
		}
	}
	sort.Strings(names)
	var msgs []string
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatalf("testpeer: exim: %v", err)
		}
		msgs = append(msgs, string(b))
	}
	return msgs
}

// Log returns exim's main log and reject log (empty when not written yet),
// for failure messages.
func (e *Exim) Log() string {
	var b strings.Builder
	for _, n := range []string{"mainlog", "rejectlog", "paniclog"} {
		if s, err := os.ReadFile(filepath.Join(e.LogDir, n)); err == nil {
			fmt.Fprintf(&b, "==> %s <==\n%s", n, s)
		}
	}
	return b.String()
}
