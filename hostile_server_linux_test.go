package shmlink

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/shmlink/shmlink/internal/testproc"
	"github.com/shmlink/shmlink/internal/wire"
)

// A hostile server: a bad welcome, or a correct one followed by damage to
// the server→client ring it produces or to the head it keeps of the
// client→server ring, while the parent dials, reads and writes.

// serverDamage is what a hostile server does once the parent has dialled it.
var serverDamage = map[string]func(p *rawPeer) error{
	"s2c-garbage": func(p *rawPeer) error {
		b := p.seg.data(p.mine)
		for i := range 64 {
			b[i] = 0xFF
		}
		return stepThen(p, func() { p.publish(64) })
	},
	"s2c-tail-beyond": func(p *rawPeer) error { return stepThen(p, func() { p.publish(1 << 33) }) },
	"early-damage":    func(p *rawPeer) error { p.publish(1 << 33); return nil },
	// After the handshake only a BYE may come (PROTOCOL.md, 6).
	"junk-packet": func(p *rawPeer) error {
		return stepThen(p, func() { rawSend(p.sock, wire.Encode(nil, wire.Msg{Type: wire.Probe})) })
	},
	"fds-packet": func(p *rawPeer) error {
		return stepThen(p, func() { rawSend(p.sock, wire.Encode(nil, wire.Msg{Type: wire.Bye}), p.data.f) })
	},
	"c2s-head-beyond": func(p *rawPeer) error { return stepThen(p, func() { p.release(1 << 20) }) },
	"c2s-head-unaligned": func(p *rawPeer) error {
		if _, err := p.waitTail(1, time.Now().Add(10*time.Second)); err != nil {
			return err
		}
		p.release(3)
		return nil
	},
	"c2s-head-backwards": func(p *rawPeer) error {
		// Consume honestly until the parent has certainly re-read our
		// head (it wrapped the ring several times), then move it back.
		deadline := time.Now().Add(10 * time.Second)
		for h := uint64(0); h < 3*hostileRing; {
			t, err := p.waitTail(h+1, deadline)
			if err != nil {
				return err
			}
			p.release(t)
			h = t
		}
		p.release(0)
		return nil
	},
}

// stepThen does f after the parent's go-ahead: damage done before the
// parent's Dial has attached to the rings fails the Dial instead.
func stepThen(p *rawPeer, f func()) error {
	if err := p.step(); err != nil {
		return err
	}
	f()
	return nil
}

// serverWelcome are the bad welcomes a hostile server can answer with; the
// parent's Dial must fail with ErrHandshake.
var serverWelcome = map[string]func(wire.Msg) ([]byte, []*os.File){
	"welcome-pipes": func(m wire.Msg) ([]byte, []*os.File) {
		r, w, _ := os.Pipe()
		pkt, _ := goodWelcome(m)
		return pkt, []*os.File{r, w}
	},
	"welcome-no-fds": func(m wire.Msg) ([]byte, []*os.File) {
		pkt, _ := goodWelcome(m)
		return pkt, []*os.File{}
	},
	"welcome-version": func(m wire.Msg) ([]byte, []*os.File) {
		pkt, _ := goodWelcome(m)
		pkt[6] = wire.Version + 1
		return pkt, nil
	},
	"welcome-zero-limit": func(wire.Msg) ([]byte, []*os.File) {
		return wire.Encode(nil, wire.Msg{Type: wire.Welcome, PID: 1}), nil
	},
	"reject-garbage": func(wire.Msg) ([]byte, []*os.File) {
		pkt := wire.Encode(nil, wire.Msg{Type: wire.Reject, Code: 99, Reason: "x"})
		pkt[10] = 0xFF // reason length far beyond the packet
		return pkt, []*os.File{}
	},
}

// childHostileServer: args are the socket path and a serverDamage or
// serverWelcome key.
func childHostileServer(args []string) error {
	if err := childArgs(args, 2); err != nil {
		return err
	}
	damage, ok := serverDamage[args[1]]
	welcome, bad := serverWelcome[args[1]]
	if !ok && !bad {
		return fmt.Errorf("%w %q", errScenario, args[1])
	}
	if !bad {
		welcome = goodWelcome
	}
	p, err := rawAccept(args[0], welcome)
	if err != nil {
		return err
	}
	if ok {
		if err := damage(p); err != nil {
			return err
		}
	}
	return p.hold()
}

// readExpectErr gives the hostile server its go-ahead and expects the next
// read to fail with want.
func readExpectErr(want error) func(*testing.T, *Conn, *testproc.Proc) {
	return func(t *testing.T, c *Conn, ch *testproc.Proc) {
		fmt.Fprintln(ch.Stdin, "go")
		if _, err := c.ReadMessage(); !errors.Is(err, want) {
			t.Fatalf("read: %v, want %v", err, want)
		}
	}
}

func TestHostileServer(t *testing.T) {
	dir := linkDir(t)
	path := sockPath(dir, "evil")
	write := func(t *testing.T, c *Conn, ch *testproc.Proc) {
		fmt.Fprintln(ch.Stdin, "go")
		msg := make([]byte, 1000)
		for i := 0; i < 10000; i++ {
			if err := c.WriteMessage(msg); err != nil {
				expectFailed(t, c, err)
				return
			}
		}
		t.Fatal("10000 writes into a damaged ring succeeded")
	}
	read := func(t *testing.T, c *Conn, ch *testproc.Proc) {
		fmt.Fprintln(ch.Stdin, "go")
		readExpectCorrupt(t, c, ch)
	}
	checks := map[string]func(*testing.T, *Conn, *testproc.Proc){
		"s2c-garbage":     read,
		"s2c-tail-beyond": read,
		"c2s-head-beyond": write,
		"early-damage": func(t *testing.T, c *Conn, ch *testproc.Proc) {
			if c != nil {
				readExpectCorrupt(t, c, ch)
			}
		},
		"c2s-head-unaligned": write,
		"c2s-head-backwards": write,
		// Go fails the link on a packet other than BYE, and counts one
		// that carries descriptors as the peer lost.
		"junk-packet": readExpectErr(ErrHandshake),
		"fds-packet":  readExpectErr(ErrPeerLost),
	}
	for name := range serverWelcome {
		checks[name] = nil
	}
	if len(checks) != len(serverDamage)+len(serverWelcome) {
		t.Fatalf("%d checks for %d scenarios", len(checks), len(serverDamage)+len(serverWelcome))
	}
	for name, check := range checks {
		t.Run(name, func(t *testing.T) {
			os.Remove(path)
			ch := startChild(t, "hostile-server", path, name)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := Dial(ctx, path, &Config{RingSize: hostileRing})
			if check == nil {
				if !errors.Is(err, ErrHandshake) {
					t.Fatalf("dial: %v, want ErrHandshake", err)
				}
				t.Logf("error: %v", err)
				return
			}
			if name == "early-damage" && errors.Is(err, ErrCorrupt) {
				// The damage beat the Dial, which noticed it.
				t.Logf("error: %v", err)
				return
			}
			checkLink(t, c, err, ch, check)
		})
	}
}
