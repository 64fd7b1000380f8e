//go:build linux || windows

package shmlink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/shmlink/shmlink/internal/ring"
	"github.com/shmlink/shmlink/internal/testproc"
)

// The hostile tests put a peer that breaks the protocol on purpose at the
// other end of a link: a raw peer (rawpeer_linux_test.go), written by hand
// from PROTOCOL.md. They check that the honest side fails cleanly: an error
// matching ErrCorrupt (or ErrHandshake / a Reject during setup), never a
// panic, a hang, a huge allocation or a read outside the mapping.
//
//   - hostile_test.go (below): a peer on every OS, client or server, set up
//     by the library, that then damages the shared memory;
//   - hostile_client_linux_test.go: a client that damages the shared memory
//     after a correct handshake;
//   - hostile_server_linux_test.go: a server that damages it, or answers
//     the handshake wrongly;
//   - handshake_abuse_linux_test.go: a client whose first packet or
//     descriptors are bad, against a listener.
//
// This file holds what they share, and the portable hostile peer.

const hostileRing = ring.MinRingSize

// expectFailed checks that err reports corruption and that the link is
// closed for good as a failure.
func expectFailed(t *testing.T, c *Conn, err error) {
	t.Helper()
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("err = %v, want ErrCorrupt", err)
	}
	t.Logf("error: %v", err)
	if s := c.Status(); s != StatusFailed {
		t.Errorf("status %v, want %v", s, StatusFailed)
	}
	select {
	case <-c.Done():
	default:
		t.Error("Done not closed after corruption")
	}
	if _, err := c.ReadMessage(); !errors.Is(err, ErrCorrupt) {
		t.Errorf("second read: %v, want ErrCorrupt again", err)
	}
	if err := c.WriteMessage([]byte("x")); err == nil {
		t.Error("write on a failed link succeeded")
	}
}

// readExpectCorrupt is the check for a client that damages its ring.
func readExpectCorrupt(t *testing.T, c *Conn, _ *testproc.Proc) {
	_, err := c.ReadMessage()
	expectFailed(t, c, err)
}

func readExpect(want string) func(*testing.T, *Conn, *testproc.Proc) {
	return func(t *testing.T, c *Conn, _ *testproc.Proc) {
		m, err := c.ReadMessage()
		if err != nil || string(m) != want {
			t.Fatalf("got %q, %v; want %q", m, err, want)
		}
	}
}

// checkLink runs check on a link that a subtest just opened with err.
func checkLink(t *testing.T, c *Conn, err error, ch *testproc.Proc, check func(*testing.T, *Conn, *testproc.Proc)) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	check(t, c, ch)
}

// scenario checks that a hostile child got its two arguments, a socket path
// and a scenario name, and looks the name up in scenarios.
func scenario[S any](args []string, scenarios map[string]S) (S, error) {
	var none S
	if err := childArgs(args, 2); err != nil {
		return none, err
	}
	s, ok := scenarios[args[1]]
	if !ok {
		return none, fmt.Errorf("%w %q", errScenario, args[1])
	}
	return s, nil
}

// Control block layout of a segment (PROTOCOL.md, "Memory layout"),
// restated here because a hostile peer must be able to write any field.
const (
	rawControlOff  = 1024
	rawControlSize = 512
	rawTail        = 0
	rawHead        = 128
	rawReaderSleep = 256
	rawWriterSleep = 384
)

// rawSeg is a segment as a raw peer sees it: bytes it may scribble on.
type rawSeg struct {
	mem    []byte
	layout ring.Layout
}

func (s *rawSeg) word(d ring.Direction, off int) *atomic.Uint64 {
	return (*atomic.Uint64)(unsafe.Pointer(&s.mem[rawControlOff+int(d)*rawControlSize+off]))
}

func (s *rawSeg) flag(d ring.Direction, off int) *atomic.Uint32 {
	return (*atomic.Uint32)(unsafe.Pointer(&s.mem[rawControlOff+int(d)*rawControlSize+off]))
}

// data is ring d's data area.
func (s *rawSeg) data(d ring.Direction) []byte {
	off := uint64(ring.HeaderSize)
	if d == ring.ServerToClient {
		off += s.layout.RingSize[0]
	}
	return s.mem[off : off+s.layout.RingSize[d]]
}

// putChunk writes a chunk header (and total, for a long header) at off in
// ring d's data area, and returns the bytes it occupies with its payload.
func (s *rawSeg) putChunk(d ring.Direction, off uint64, length uint32, flags byte, total uint64) uint64 {
	b := s.data(d)[off:]
	le32(b, length)
	b[4], b[5], b[6], b[7] = flags, 0, 0, 0
	hl := uint64(8)
	if flags == ring.FlagBegin {
		le64(b[8:], total)
		hl = 16
	}
	return hl + (uint64(length)+7)&^7
}

func le32(b []byte, v uint32) { b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24) }
func le64(b []byte, v uint64) { le32(b, uint32(v)); le32(b[4:], uint32(v>>32)) }

// A scribbler is an honest peer, set up by the library itself, that then
// writes garbage into the shared memory: the same hostile input on every
// OS, whatever its handshake looks like (the raw peers of
// rawpeer_linux_test.go speak the Linux handshake by hand). Each scenario
// damages the ring this side produces into, or the head of the one it
// consumes, and rings the peer, who must fail with ErrCorrupt.
var scribbles = map[string]func(s *rawSeg, mine, theirs ring.Direction) (tail bool){
	"absurd-length": func(s *rawSeg, mine, _ ring.Direction) bool {
		s.putChunk(mine, 0, 0xfffffff8, ring.FlagBegin|ring.FlagEnd, 0)
		s.word(mine, rawTail).Store(hostileRing)
		return true
	},
	"tail-past-ring": func(s *rawSeg, mine, _ ring.Direction) bool {
		s.putChunk(mine, 0, 8, ring.FlagBegin|ring.FlagEnd, 0)
		s.word(mine, rawTail).Store(2*hostileRing + 16)
		return true
	},
	"total-below-length": func(s *rawSeg, mine, _ ring.Direction) bool {
		s.word(mine, rawTail).Store(s.putChunk(mine, 0, 16, ring.FlagBegin, 8))
		return true
	},
	"invalid-flags": func(s *rawSeg, mine, _ ring.Direction) bool {
		s.word(mine, rawTail).Store(s.putChunk(mine, 0, 0, ring.FlagBegin|ring.FlagPad, 0))
		return true
	},
	"head-past-tail": func(s *rawSeg, _, theirs ring.Direction) bool {
		s.word(theirs, rawHead).Store(1 << 50)
		return false
	},
}

// childScribble: args are a link name, the side to play ("client" dials
// it, "server" listens on it and serves one client) and a scenario of
// scribbles. Once the link is up it damages the memory as the scenario
// says, rings the peer, and holds the link until stdin closes.
func childScribble(args []string) error {
	if err := childArgs(args, 3); err != nil {
		return err
	}
	damage, ok := scribbles[args[2]]
	if !ok {
		return fmt.Errorf("%w %q", errScenario, args[2])
	}
	cfg := &Config{RingSize: hostileRing}
	var c *Conn
	mine, theirs := ring.ClientToServer, ring.ServerToClient
	switch args[1] {
	case "client":
		var err error
		if c, err = Dial(context.Background(), args[0], cfg); err != nil {
			return err
		}
		testproc.Ready()
	case "server":
		l, err := Listen(args[0], cfg)
		if err != nil {
			return err
		}
		testproc.Ready()
		if c, err = l.AcceptConn(); err != nil {
			return err
		}
		l.Close()
		mine, theirs = theirs, mine
	default:
		return fmt.Errorf("side %q: want client or server", args[1])
	}
	defer c.Close()
	mem := c.ep.seg.Mem()
	layout, err := ring.Parse(mem)
	if err != nil {
		return err
	}
	s := &rawSeg{mem: mem, layout: layout}
	if damage(s, mine, theirs) {
		c.peerData.Ring()
	} else {
		c.peerSpace.Ring()
	}
	io.Copy(io.Discard, os.Stdin)
	return nil
}

// TestScribblingPeer: a peer in another process that damages the shared
// memory after an honest handshake, as a client and as a server, makes
// this side fail with ErrCorrupt: no panic, no hang, no huge allocation.
// A damaged ring this side reads shows on ReadMessage; a damaged head of
// the ring it writes shows on the next write that needs room.
func TestScribblingPeer(t *testing.T) {
	linkDir(t)
	for _, side := range []string{"client", "server"} {
		for name := range scribbles {
			t.Run(side+"/"+name, func(t *testing.T) {
				link := "scribble-" + side
				var c *Conn
				var err error
				if side == "client" {
					l, lerr := Listen(link, &Config{RingSize: hostileRing})
					if lerr != nil {
						t.Fatal(lerr)
					}
					defer l.Close()
					startChild(t, "scribble", link, side, name)
					c = acceptTest(t, l)
				} else {
					startChild(t, "scribble", link, side, name)
					c, err = Dial(context.Background(), link, &Config{RingSize: hostileRing})
				}
				checkLink(t, c, err, nil, func(t *testing.T, c *Conn, _ *testproc.Proc) {
					if name == "head-past-tail" {
						err = writeUntilError(c)
					} else {
						_, err = c.ReadMessage()
					}
					expectFailed(t, c, err)
				})
			})
		}
	}
}

// writeUntilError writes until the link fails, or a ring's worth more than
// fits: the first write that looks at the peer's head must see the damage.
func writeUntilError(c *Conn) error {
	m := make([]byte, 1000)
	for range 4 * hostileRing / len(m) {
		if err := c.WriteMessage(m); err != nil {
			return err
		}
	}
	return errors.New("wrote four rings' worth with a damaged head and no error")
}
