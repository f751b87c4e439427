package serve

import (
	"context"
	"os"
	"time"

	mxexec "github.com/mxfront/mxfront/exec"
	"github.com/mxfront/mxfront/frontend"
	"github.com/mxfront/mxfront/frontend/relay"
	"github.com/mxfront/mxfront/internal/sanitize"
)

// handover is how handle hands a passed client over: spawned on its
// connection, or, with a Relay (--inspect), relayed.
func (s *Server) handover(socket string, start time.Time, via []any) frontend.Handover {
	if s.Relay != nil {
		return &relayed{s: s, socket: socket}
	}
	return &spawn{s: s, socket: socket, start: start, via: via}
}

// relayed is serve mode's hand-over with --inspect: the relay runs the
// session in the connection's goroutine, with PROGRAM started on a
// socketpair. A relayed session counts as a child (--max-children) from
// the hand-over to its end, and as a connection until then; a shutdown
// gives it the shutdown timeout, then 421.
type relayed struct {
	s      *Server
	socket string
}

func (h *relayed) Hand(ctx context.Context, p *frontend.Passed) error {
	s := h.s
	c := p.Conn.(*serveConn)
	if err := s.admit(c); err != nil {
		return err
	}
	defer s.tally.dropChild()
	prog := relay.Program{Environ: s.Environ,
		Start: func(conn *os.File, env []string) (relay.Started, error) {
			return mxexec.Spawn(conn, s.Stderr, s.Path, s.Argv, env, s.Credential)
		},
		Exited: func(status mxexec.Status, took time.Duration) {
			if s.Observer != nil {
				s.Observer.ChildExited(status, took)
			}
		}}
	if h.socket != "" {
		prog.Extra = []string{"MXFRONT_SOCKET=" + sanitize.Text(h.socket, sanitize.MaxField)}
	}
	p.Announce()
	err := s.Relay.Session(ctx, c.Conn, p, prog)
	if err == nil {
		c.Close()
	}
	return err
}
