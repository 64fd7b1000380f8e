package shmlink

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/shmlink/shmlink/internal/ring"
	"github.com/shmlink/shmlink/internal/testproc"
)

// The hostile tests put a peer that breaks the protocol on purpose at the
// other end of a link: a raw peer (rawpeer_linux_test.go), written by hand
// from PROTOCOL.md. They check that the honest side fails cleanly: an error
// matching ErrCorrupt (or ErrHandshake / a Reject during setup), never a
// panic, a hang, a huge allocation or a read outside the mapping.
//
//   - hostile_client_linux_test.go: a client that damages the shared memory
//     after a correct handshake;
//   - hostile_server_linux_test.go: a server that damages it, or answers
//     the handshake wrongly;
//   - handshake_abuse_linux_test.go: a client whose first packet or
//     descriptors are bad, against a listener.
//
// This file holds what they share.

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
