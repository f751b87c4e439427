// Command mxsink is a small inetd-style SMTP server for demos, tests and
// benchmarks: it speaks SMTP on stdin/stdout, accepts every message and
// writes it, with the envelope and the TCP*/MXFRONT_* environment it was
// given, into a spool directory (or nowhere without -spool).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

func main() {
	host := flag.String("hostname", "mxsink.local", "name in the greeting")
	spool := flag.String("spool", "", "write each message into this directory")
	flag.Parse()
	if *spool != "" {
		if err := os.MkdirAll(*spool, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "mxsink:", err)
			os.Exit(111)
		}
	}
	r := bufio.NewReader(os.Stdin)
	w := bufio.NewWriter(os.Stdout)
	s := &session{r: r, w: w, host: *host, spool: *spool}
	s.run()
	w.Flush()
}

type session struct {
	r           *bufio.Reader
	w           *bufio.Writer
	host, spool string
	helo, from  string
	rcpts       []string
	n           int
}

func (s *session) reply(format string, a ...any) {
	fmt.Fprintf(s.w, format+"\r\n", a...)
	if s.r.Buffered() == 0 {
		s.w.Flush()
	}
}

func (s *session) run() {
	s.reply("220 %s ESMTP mxsink", s.host)
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			s.helo = arg
			s.reply("250-%s\r\n250-PIPELINING\r\n250 8BITMIME", s.host)
		case "HELO":
			s.helo = arg
			s.reply("250 %s", s.host)
		case "MAIL":
			s.from, s.rcpts = arg, nil
			s.reply("250 2.1.0 Ok")
		case "RCPT":
			s.rcpts = append(s.rcpts, arg)
			s.reply("250 2.1.5 Ok")
		case "DATA":
			if len(s.rcpts) == 0 {
				s.reply("503 5.5.1 need RCPT")
				continue
			}
			s.reply("354 go ahead")
			if err := s.data(); err != nil {
				s.reply("451 4.3.0 %v", err)
				return
			}
			s.reply("250 2.0.0 Ok: queued")
		case "RSET", "NOOP":
			s.reply("250 2.0.0 Ok")
		case "QUIT":
			s.reply("221 2.0.0 Bye")
			return
		default:
			s.reply("502 5.5.1 not implemented")
		}
	}
}

func (s *session) data() error {
	var msg strings.Builder
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return err
		}
		if line == ".\r\n" || line == ".\n" {
			break
		}
		msg.WriteString(strings.TrimPrefix(line, "."))
	}
	if s.spool == "" {
		return nil
	}
	s.n++
	var head strings.Builder
	fmt.Fprintf(&head, "X-Mxsink-Helo: %s\nX-Mxsink-From: %s\nX-Mxsink-Rcpt: %s\n", s.helo, s.from, strings.Join(s.rcpts, " "))
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "TCP") || strings.HasPrefix(kv, "PROTO=") || strings.HasPrefix(kv, "MXFRONT_") {
			env = append(env, kv)
		}
	}
	sort.Strings(env)
	for _, kv := range env {
		fmt.Fprintf(&head, "X-Mxsink-Env: %s\n", kv)
	}
	name := filepath.Join(s.spool, fmt.Sprintf("%d.%d.%d.eml", time.Now().UnixNano(), os.Getpid(), s.n))
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, []byte(head.String()+msg.String()), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, name)
}
