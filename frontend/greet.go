package frontend

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// The greeting delay (--greet-delay) catches early talkers: mxfront writes
// the first line of a multi-line greeting, "220-NAME ESMTP", and then
// watches the socket for the delay without reading from it. An honest
// client waits for the last line of the greeting before it speaks (RFC 5321
// 4.3.1); spam software often does not. A client that sent something is an
// early talker. A silent one gets PROGRAM, whose own "220 ..." line ends the
// greeting; every byte the client sends after the delay is still in the
// socket for PROGRAM to read, because the watching is done with poll(2) and
// recv(2) with MSG_PEEK (FIONREAD on pipes), never with a read.

// Talk is what a client did during the greeting delay.
type Talk uint8

const (
	Silent Talk = iota // waited, as it should
	Early              // sent something before the greeting ended
	HungUp             // closed the connection (or it failed) during the delay
)

func (t Talk) String() string {
	return [...]string{"silent", "early", "hung up"}[min(int(t), 2)]
}

// greeting is the greeting, "220 NAME ESMTP"; the greeting delay writes it
// as a first line, "220-NAME ESMTP" (AppendWire with more).
func greeting(host string) Reply { return Reply{Code: 220, Text: orLocalhost(host) + " ESMTP"} }

// GreetFD writes first as the first line of a multi-line greeting on
// writeFD and watches readFD for d (chain mode: the fds are those of the
// connection, blocking or not). It returns as soon as the client talks or
// hangs up, or when d is over.
func GreetFD(readFD, writeFD int, first Reply, d time.Duration) (Talk, error) {
	if err := writeAll(writeFD, first.AppendWire(nil, true)); err != nil {
		return HungUp, fmt.Errorf("greeting: %v", err)
	}
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return Silent, nil
		}
		// Round up: a poll that wakes early would just poll again.
		ms := int((left + time.Millisecond - 1) / time.Millisecond)
		fds := []unix.PollFd{{Fd: int32(readFD), Events: unix.POLLIN | unix.POLLRDHUP}}
		n, err := unix.Poll(fds, ms)
		if err == unix.EINTR || n == 0 {
			continue
		}
		if err != nil {
			return HungUp, fmt.Errorf("greeting delay: poll: %v", err)
		}
		if t, ok := Peek(readFD); ok {
			return t, nil
		}
	}
}

// Peek tells, without consuming a byte, whether the client has sent
// something or hung up; ok is false when there is nothing to tell yet.
func Peek(fd int) (t Talk, ok bool) {
	var b [1]byte
	n, _, err := unix.Recvfrom(fd, b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	switch {
	case err == unix.ENOTSOCK:
		return peekPipe(fd)
	case err == unix.EAGAIN || err == unix.EINTR:
		return Silent, false
	case err != nil, n == 0:
		return HungUp, true
	}
	return Early, true
}

// peekPipe is peek for a pipe (chain mode with TCPREMOTEIP set): what is
// waiting is counted with FIONREAD; readable with nothing waiting is EOF.
func peekPipe(fd int) (Talk, bool) {
	n, err := unix.IoctlGetInt(fd, unix.TIOCINQ)
	if err != nil {
		return HungUp, true
	}
	if n > 0 {
		return Early, true
	}
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	if k, _ := unix.Poll(fds, 0); k > 0 && fds[0].Revents&(unix.POLLIN|unix.POLLHUP) != 0 {
		return HungUp, true
	}
	return Silent, false
}

func writeAll(fd int, b []byte) error {
	deadline := time.Now().Add(10 * time.Second)
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			// A non-blocking fd whose buffer is full: a few dozen bytes on
			// a new connection never meet this, but do not spin forever.
			if time.Now().After(deadline) {
				return err
			}
			fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
			_, _ = unix.Poll(fds, 100)
			continue
		case err != nil:
			return err
		}
		b = b[n:]
	}
	return nil
}

// greetDelayFor reports whether the client with verdict v must sit through
// the greeting delay. A trusted client and one the greylist passes (it has
// proved it retries) go straight on; so does a client refused by anything
// but greylisting (the delay could not change its fate). A greylisted one
// waits too, unless the verdict is given at the greeting (the greeting
// cannot start with 220- and end with 421): an early talker among them is
// refused for good and its greylist record forgotten.
func (c DialogueConfig) greetDelayFor(v Verdict) bool {
	if c.GreetDelay <= 0 {
		return false
	}
	switch v.Action {
	case Trusted:
		return false
	case Refuse:
		return v.Greylisted() && c.RefuseAt != AtGreeting
	}
	switch v.Greylist.State {
	case GreylistRetry, GreylistPassed:
		return false
	}
	return true
}

// earlyTalker is the verdict on a client that spoke during the delay:
// refused for good, whatever the verdict was.
func earlyTalker(v Verdict, after, delay time.Duration) Verdict {
	reasons := append(append([]string(nil), v.Reasons...),
		fmt.Sprintf("early talker: spoke %v into the greeting delay of %v", after.Round(time.Millisecond), delay))
	return Verdict{Action: Refuse, By: ByEarlyTalker, DNS: v.DNS, Greylist: v.Greylist, Reasons: reasons,
		Reply: Reply{554, StatusProtocol, "Error: protocol violation: you spoke before the greeting ended"}}
}
