package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

const cleanMsg = "From: Alice <alice@example.org>\nTo: bob@example.test\nDate: Mon, 1 Jan 2024 10:00:00 +0000\nMessage-ID: <1@example.org>\nSubject: hi\n\nHello.\n"

// cleanEnv gives mxfilter the environment of an MTA hook: the envelope in
// MAIL_FROM and RCPT_TO, nothing that makes the client trusted.
func cleanEnv(t *testing.T, from, rcpt string) {
	t.Helper()
	for _, k := range []string{"RELAYCLIENT", "TCPREMOTEIP", "MXFRONT_HELO"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	t.Setenv("MAIL_FROM", from)
	t.Setenv("RCPT_TO", rcpt)
	t.Setenv("TMPDIR", t.TempDir())
}

// mxfilter runs the command in-process and returns stdout, stderr and the
// exit code main would exit with.
func mxfilter(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(append([]string{"mxfilter"}, args...), strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), code
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// TestCheckExitCodes: mxfilter check exits 0, 20 or 75 with the reply as
// the last line of stdout and one log line on stderr; the envelope comes
// from MAIL_FROM and RCPT_TO or from --from and --rcpt.
func TestCheckExitCodes(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing-D")
	for _, tc := range []struct {
		name  string
		msg   string
		args  []string
		code  int
		reply string
	}{
		{"clean", cleanMsg, nil, 0, "250 2.0.0 message accepted"},
		{"no From", "Date: d\n\nx\n", nil, 20, "554 5.6.0 message lacks a required header: From"},
		{"exe attachment", "From: a@example.org\nDate: d\nContent-Type: application/octet-stream; name=x.exe\n\nMZ\n", nil, 20, "554 5.7.1 attachment type refused: x.exe"},
		{"too big", cleanMsg, []string{"--max-size", "10"}, 20, "552 5.3.4 message too big for this system"},
		{"exec refuses", cleanMsg, []string{"--exec", "echo go away; exit 100"}, 20, "554 5.7.1 go away"},
		{"exec defers", cleanMsg, []string{"--exec", "echo busy; exit 111"}, 75, "451 4.3.0 busy"},
		{"clamd down", cleanMsg, []string{"--clamd", filepath.Join(t.TempDir(), "no.sock")}, 75, "451 4.3.0 content scanner unavailable, try again later"},
		{"clamd down, accept", cleanMsg, []string{"--clamd", filepath.Join(t.TempDir(), "no.sock"), "--scanner-fail", "accept"}, 0, "250 2.0.0 message accepted"},
		{"exim data missing", "", []string{"--exim-data", missing}, 75, "451 4.3.0 local error in the content filter, try again later"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cleanEnv(t, "alice@example.org", "bob@example.test carol@example.test")
			out, log, code := mxfilter(t, tc.msg, append([]string{"check"}, tc.args...)...)
			if code != tc.code || lastLine(out) != tc.reply {
				t.Fatalf("exit %d %q, want %d %q\n%s", code, out, tc.code, tc.reply, log)
			}
			if tc.name == "exim data missing" {
				if !strings.HasPrefix(log, "mxfilter: error: ") || !strings.Contains(log, "\nmxfilter: hint: ") {
					t.Errorf("stderr %q", log)
				}
				return
			}
			if strings.Count(log, "\n") != 1 || !strings.Contains(log, "from=alice@example.org rcpts=bob@example.test,carol@example.test") {
				t.Errorf("not one log line with the envelope:\n%s", log)
			}
		})
	}
	t.Run("flags over environment", func(t *testing.T) {
		cleanEnv(t, "alice@example.org", "bob@example.test")
		_, log, code := mxfilter(t, cleanMsg, "check", "--from", "<x@example.net>", "--rcpt", "y@example.net,z@example.net", "--rcpt", "w@example.net")
		if code != 0 || !strings.Contains(log, "from=x@example.net rcpts=y@example.net,z@example.net,w@example.net") {
			t.Errorf("exit %d\n%s", code, log)
		}
	})
	t.Run("bounce without Message-ID", func(t *testing.T) {
		cleanEnv(t, "", "bob@example.test")
		noID := strings.Replace(cleanMsg, "Message-ID: <1@example.org>\n", "", 1)
		if out, _, code := mxfilter(t, noID, "check", "--require-headers", "From,Date,Message-ID"); code != 0 {
			t.Errorf("bounce: exit %d %q", code, out)
		}
		if out, _, code := mxfilter(t, noID, "check", "--require-headers", "From,Date,Message-ID", "--from", "a@example.org"); code != 20 {
			t.Errorf("not a bounce: exit %d %q", code, out)
		}
	})
	t.Run("bounce as MAIL_FROM='<>'", func(t *testing.T) {
		cleanEnv(t, "<>", "bob@example.test")
		noID := strings.Replace(cleanMsg, "Message-ID: <1@example.org>\n", "", 1)
		if out, log, code := mxfilter(t, noID, "check", "--require-headers", "From,Date,Message-ID"); code != 0 || !strings.Contains(log, ` from="" `) {
			t.Errorf("MAIL_FROM='<>': exit %d %q\n%s", code, out, log)
		}
	})
	t.Run("unreadable zip warns", func(t *testing.T) {
		cleanEnv(t, "alice@example.org", "bob@example.test")
		msg := strings.Replace(cleanMsg, "Subject: hi\n", "Subject: hi\nContent-Type: application/zip; name=a.zip\n", 1)
		out, log, code := mxfilter(t, msg, "check")
		if code != 0 || !strings.HasPrefix(log, "time=") || !strings.Contains(log, " level=WARN ") || !strings.Contains(log, "attachments=unsure(unreadable zip: a.zip: ") {
			t.Errorf("exit %d %q\n%s", code, out, log)
		}
	})
	t.Run("relay client", func(t *testing.T) {
		cleanEnv(t, "alice@example.org", "bob@example.test")
		t.Setenv("RELAYCLIENT", "")
		if out, _, code := mxfilter(t, "Subject: no From\n\nx\n", "check"); code != 0 {
			t.Errorf("trusted: exit %d %q", code, out)
		}
		if out, _, code := mxfilter(t, "Subject: no From\n\nx\n", "check", "--check-relayclients"); code != 20 {
			t.Errorf("--check-relayclients: exit %d %q", code, out)
		}
	})
	t.Run("headers", func(t *testing.T) {
		cleanEnv(t, "alice@example.org", "bob@example.test")
		out, _, code := mxfilter(t, cleanMsg, "check", "--headers", "--exec", "echo 'X-Checked: yes'")
		if code != 0 || out != "X-Checked: yes\n250 2.0.0 message accepted\n" {
			t.Errorf("exit %d %q", code, out)
		}
	})
}

// TestUsageErrors: a usage error exits 100 with "mxfilter: error:" and
// "mxfilter: hint:" on stderr (two lines, not the help), nothing on
// stdout; flags after arguments are not taken as flags.
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "no subcommand: want qmail-queue or check"},
		{[]string{"judge"}, `unknown subcommand "judge"`},
		{[]string{"--clamd", "x", "check"}, "flag provided but not defined: -clamd"},
		{[]string{"check", "--nope"}, "flag provided but not defined: -nope"},
		{[]string{"check", "message.eml"}, "check takes no arguments"},
		// Flags after an argument are arguments: refused, never ignored.
		{[]string{"check", "message.eml", "--clamd", "127.0.0.1:3310"}, "check takes no arguments"},
		{[]string{"check", "--max-size", "ten"}, `invalid value "ten" for flag -max-size`},
		{[]string{"check", "--scanner-fail", "drop"}, `--scanner-fail "drop": want tempfail or accept`},
		{[]string{"check", "--action", "virus"}, `--action "virus": want CHECK=MODE with CHECK one of size, nul,`},
		{[]string{"check", "--action", "viruses=reject"}, `--action "viruses=reject": want CHECK=MODE`},
		{[]string{"check", "--action", "virus=drop"}, `--action "virus=drop": mode "drop": want off, log, tempfail or reject`},
		{[]string{"check", "--custom-error", "simscan"}, "flag provided but not defined: -custom-error"},
		{[]string{"check", "--rspamd", "https://127.0.0.1:11333"}, `--rspamd "https://127.0.0.1:11333": rspamd's workers speak plain HTTP`},
		{[]string{"check", "--archive-depth", "0"}, "--archive-depth 0: want 1 or more"},
		{[]string{"qmail-queue", "--custom-error", "qmail"}, `--custom-error "qmail": want simscan or notqmail`},
		{[]string{"qmail-queue", "--from", "a@b"}, "flag provided but not defined: -from"},
		// NEXT without --: the flags after it would be NEXT's, and the
		// message would go unscanned.
		{[]string{"qmail-queue", "/var/qmail/bin/qmail-queue", "--clamd", "127.0.0.1:3310"}, `qmail-queue: "/var/qmail/bin/qmail-queue": NEXT and its arguments come after --`},
		{[]string{"qmail-queue", "/var/qmail/bin/qmail-queue"}, "NEXT and its arguments come after --"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			cleanEnv(t, "a@example.org", "b@example.test")
			out, errs, code := mxfilter(t, cleanMsg, tc.args...)
			if code != 100 || out != "" {
				t.Errorf("exit %d, stdout %q; want 100 and nothing", code, out)
			}
			lines := strings.Split(strings.TrimRight(errs, "\n"), "\n")
			if len(lines) != 2 || !strings.HasPrefix(lines[0], "mxfilter: error: ") || !strings.Contains(lines[0], tc.want) ||
				lines[1] != "mxfilter: hint: see mxfilter --help or mxfilter(8)" {
				t.Errorf("stderr:\n%s\nwant mxfilter: error: ...%s...\nmxfilter: hint: ...", errs, tc.want)
			}
		})
	}
	// With --, NEXT's own flags are NEXT's (and a usage error would have
	// come before the message is read: here NEXT is only parsed).
	if err := nextAfterDashes([]string{"mxfilter", "qmail-queue", "--clamd", "x", "--", "next", "--flag"}, []string{"next", "--flag"}); err != nil {
		t.Errorf("NEXT after --: %v", err)
	}
}

// TestActionModes: --action CHECK=MODE for every mode (case-insensitive,
// "defer" for tempfail), the last one given winning.
func TestActionModes(t *testing.T) {
	noFrom := "Date: d\n\nx\n"
	for _, tc := range []struct {
		actions []string
		code    int
		reply   string
	}{
		{nil, 20, "554 5.6.0 message lacks a required header: From"},
		{[]string{"headers=reject"}, 20, "554 5.6.0 message lacks a required header: From"},
		{[]string{"headers=tempfail"}, 75, "451 4.6.0 message lacks a required header: From"},
		{[]string{"headers=defer"}, 75, "451 4.6.0 message lacks a required header: From"},
		{[]string{"headers=LOG"}, 0, "250 2.0.0 message accepted"},
		{[]string{"headers=off"}, 0, "250 2.0.0 message accepted"},
		{[]string{"headers=off", "headers=reject"}, 20, "554 5.6.0 message lacks a required header: From"},
		{[]string{"mime=log", "headers=tempfail"}, 75, "451 4.6.0 message lacks a required header: From"},
	} {
		cleanEnv(t, "a@example.org", "b@example.test")
		args := []string{"check"}
		for _, a := range tc.actions {
			args = append(args, "--action", a)
		}
		out, log, code := mxfilter(t, noFrom, args...)
		if code != tc.code || lastLine(out) != tc.reply {
			t.Errorf("%q: exit %d %q, want %d %q", tc.actions, code, out, tc.code, tc.reply)
		}
		if tc.actions != nil && strings.HasSuffix(tc.actions[len(tc.actions)-1], "=off") && strings.Contains(log, "headers=") {
			t.Errorf("%q: an off check ran:\n%s", tc.actions, log)
		}
	}
}

var (
	helpFlag    = regexp.MustCompile(`^\s+(--[a-z][a-z0-9-]*)`)
	helpDefault = regexp.MustCompile(`\(default: "?([^)"]*)"?\)`)
	manFlag     = regexp.MustCompile(`\*\*(--[a-z][a-z0-9-]*)\*\*`)
)

// helpFlags runs "mxfilter ARGS --help" and returns its flags and their
// defaults (false for booleans is no default).
func helpFlags(t *testing.T, args ...string) map[string]string {
	t.Helper()
	cleanEnv(t, "", "")
	t.Setenv("TMPDIR", "")
	out, errs, code := mxfilter(t, "", append(args, "--help")...)
	if code != 0 || errs != "" {
		t.Fatalf("mxfilter %s --help: exit %d\n%s", strings.Join(args, " "), code, errs)
	}
	flags := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if m := helpFlag.FindStringSubmatch(l); m != nil {
			def := ""
			if d := helpDefault.FindAllStringSubmatch(l, -1); d != nil && d[len(d)-1][1] != "false" {
				def = d[len(d)-1][1]
			}
			flags[m[1]] = def
		}
	}
	if len(flags) == 0 {
		t.Fatalf("no flags in mxfilter %s --help:\n%s", strings.Join(args, " "), out)
	}
	return flags
}

// manOptions reads the OPTIONS section of man/mxfilter.8.md: for each
// flag, the sub-heading it is under (common, qmail-queue or check) and
// the text of its entry, blanks collapsed.
func manOptions(t *testing.T) (section, entry map[string]string) {
	t.Helper()
	b, err := os.ReadFile("../../man/mxfilter.8.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	start, end := strings.Index(text, "\n# OPTIONS\n"), strings.Index(text, "\n# EXTERNAL COMMANDS\n")
	if start < 0 || end < start {
		t.Fatal("man/mxfilter.8.md: no OPTIONS section before EXTERNAL COMMANDS")
	}
	section, entry = map[string]string{}, map[string]string{}
	current := ""
	for _, para := range strings.Split(text[start:end], "\n\n") {
		switch {
		case strings.HasPrefix(para, "Common to both"):
			current = "common"
		case strings.HasPrefix(para, "**qmail-queue** only"):
			current = "qmail-queue"
		case strings.HasPrefix(para, "**check** only"):
			current = "check"
		case strings.HasPrefix(para, "**--"):
			head, _, _ := strings.Cut(para, "\n")
			for _, m := range manFlag.FindAllStringSubmatch(head, -1) {
				if _, dup := section[m[1]]; dup {
					t.Errorf("man/mxfilter.8.md: %s described twice", m[1])
				}
				section[m[1]] = current
				entry[m[1]] = strings.Join(strings.Fields(para), " ")
			}
		}
	}
	return section, entry
}

// TestHelpMatchesManPage: mxfilter --help and mxfilter(8) say the same:
// every flag of each command's --help is in the man page's OPTIONS under
// the right heading (common to both, qmail-queue only, check only) with the
// same default, and the man page describes no flag that does not exist.
func TestHelpMatchesManPage(t *testing.T) {
	top := helpFlags(t)
	qq := helpFlags(t, "qmail-queue")
	ck := helpFlags(t, "check")
	section, entry := manOptions(t)
	want := map[string]string{}
	for f := range top {
		want[f] = "common"
	}
	for f := range qq {
		want[f] = "qmail-queue"
	}
	for f := range ck {
		if want[f] == "qmail-queue" {
			want[f] = "common"
		} else {
			want[f] = "check"
		}
	}
	var names []string
	for f := range want {
		names = append(names, f)
	}
	sort.Strings(names)
	for _, f := range names {
		got, ok := section[f]
		switch {
		case !ok:
			t.Errorf("%s is in mxfilter --help but not in man/mxfilter.8.md's OPTIONS", f)
			continue
		case got != want[f]:
			t.Errorf("%s: man/mxfilter.8.md has it under %q, --help under %q", f, got, want[f])
		}
		def := qq[f]
		if def == "" {
			def = ck[f]
		}
		if def != "" && !strings.Contains(entry[f], def) {
			t.Errorf("%s: --help says default %q, man/mxfilter.8.md says: %s", f, def, entry[f])
		}
	}
	for f := range section {
		if _, ok := want[f]; !ok {
			t.Errorf("man/mxfilter.8.md describes %s, which mxfilter --help does not know", f)
		}
	}
}

// TestHelpOutput: --help goes to stdout and exits 0, for the command and
// for each subcommand; the synopsis is the man page's.
func TestHelpOutput(t *testing.T) {
	cleanEnv(t, "", "")
	for _, args := range [][]string{{"--help"}, {"-h"}, {"check", "--help"}, {"qmail-queue", "-h"}} {
		out, errs, code := mxfilter(t, "", args...)
		if code != 0 || errs != "" || !strings.Contains(out, "mxfilter") {
			t.Errorf("%q: exit %d, stderr %q", args, code, errs)
		}
	}
	out, _, _ := mxfilter(t, "", "--help")
	for _, synopsis := range []string{"mxfilter qmail-queue [flags] [-- NEXT [ARGS...]]", "mxfilter check [flags] < message"} {
		if !strings.Contains(out, synopsis) {
			t.Errorf("--help lacks the synopsis %q:\n%s", synopsis, out)
		}
	}
}
