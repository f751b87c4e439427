package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// refuse is the checkless refuser (-refuser ADDR): a Go server that
// accepts, speaks the same refusal dialogue as mxfront serve (a greeting,
// EHLO, MAIL, 451 at RCPT, QUIT) and checks nothing at all, one goroutine a
// client. It is the most a Go refuser on this machine can do: each
// refusing row is given as a ratio to it.
func refuse(addr string) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fatal("refuser: %v", err)
	}
	for {
		c, err := l.Accept()
		if err != nil {
			time.Sleep(time.Millisecond)
			continue
		}
		go refuseOne(c)
	}
}

func refuseOne(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	r, w := bufio.NewReader(c), bufio.NewWriter(c)
	say := func(s string) bool {
		w.WriteString(s)
		return w.Flush() == nil
	}
	if !say("220 refuser.example.test ESMTP\r\n") {
		return
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		verb := strings.ToUpper(strings.TrimSpace(line))
		if i := strings.IndexAny(verb, " :"); i >= 0 {
			verb = verb[:i]
		}
		var reply string
		switch verb {
		case "EHLO", "HELO":
			reply = "250-refuser.example.test\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n"
		case "MAIL":
			reply = "250 2.1.0 Ok\r\n"
		case "RCPT":
			reply = "451 4.7.1 Refused: try again later\r\n"
		case "QUIT":
			say("221 2.0.0 Bye\r\n")
			return
		default:
			reply = "503 5.5.1 No\r\n"
		}
		if !say(reply) {
			return
		}
	}
}

// redis starts redis-server on a free loopback port, without persistence,
// and returns its URL; "" when it is not installed.
func redis() (string, func()) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		fmt.Fprintln(os.Stderr, "load: redis-server not installed: no Redis row")
		return "", func() {}
	}
	port := freePort()
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		fatal("redis-server: %v", err)
	}
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for i := 0; i < 200; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return "redis://" + addr, stop
		}
		time.Sleep(25 * time.Millisecond)
	}
	stop()
	fatal("redis-server does not listen on %s", addr)
	return "", nil
}
