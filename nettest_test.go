//go:build linux || windows

package shmlink

import (
	"context"
	"net"
	"testing"

	"golang.org/x/net/nettest"
)

// TestNetConnContract runs the net package's own conformance suite for
// net.Conn (deadlines, concurrent use, Close unblocking, io.EOF and the
// rest) over a link. nettest needs both ends in one process; the
// cross-process behaviour is tested everywhere else.
func TestNetConnContract(t *testing.T) {
	nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
		path := pathName(t, "nettest")
		l, err := Listen(path, nil)
		if err != nil {
			return nil, nil, nil, err
		}
		d, err := Dial(context.Background(), path, nil)
		if err != nil {
			l.Close()
			return nil, nil, nil, err
		}
		a, err := l.Accept()
		if err != nil {
			d.Close()
			l.Close()
			return nil, nil, nil, err
		}
		stop = func() {
			d.Close()
			a.Close()
			l.Close()
		}
		return d, a, stop, nil
	})
}
