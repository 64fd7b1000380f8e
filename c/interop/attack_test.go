//go:build linux

package interop

import (
	"errors"
	"testing"
	"time"

	"github.com/shmlink/shmlink"
	"github.com/shmlink/shmlink/internal/cpeer"
	"github.com/shmlink/shmlink/internal/testproc"
)

// TestCAttacksGo turns the C library's internals against the Go side (as
// client and as server): a correct handshake, then one breach of the
// protocol. The Go side must end the link as PROTOCOL.md says: damage to
// shared memory is corruption, a claim over the limit is skipped, a packet
// other than BYE after the handshake fails the link, and one that carries
// descriptors counts as the peer lost.
func TestCAttacksGo(t *testing.T) {
	linkDir(t)
	want := map[string]error{
		"tail-beyond":    shmlink.ErrCorrupt,
		"tail-unaligned": shmlink.ErrCorrupt,
		"garbage":        shmlink.ErrCorrupt,
		"claim":          shmlink.ErrMessageTooLarge,
		"junk-packet":    shmlink.ErrHandshake,
		"fds-packet":     shmlink.ErrPeerLost,
	}
	for _, role := range []string{"client", "server"} {
		for scenario, wantErr := range want {
			t.Run(role+"/"+scenario, func(t *testing.T) {
				name := "attack-" + role + "-" + scenario
				o := testproc.Options{Name: "C attack " + scenario, Env: cpeer.Env}
				var c *shmlink.Conn
				if role == "client" {
					l := listen(t, name, nil)
					o.WaitReady = true
					o.Exec(t, cpeer.Attacker(t), role, name, scenario)
					c = accept(t, l)
				} else {
					p := o.Exec(t, cpeer.Attacker(t), role, name, scenario)
					expectLine(t, p, "listening")
					c = dial(t, name, &shmlink.Config{RingSize: 4096})
					expectLine(t, p, "ready")
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				_, err := c.ReadMessage()
				if !errors.Is(err, wantErr) {
					t.Fatalf("read: %v, want %v", err, wantErr)
				}
				t.Logf("read: %v", err)
				if errors.Is(wantErr, shmlink.ErrCorrupt) && c.Status() != shmlink.StatusFailed {
					t.Errorf("status %v, want failed", c.Status())
				}
			})
		}
	}
}
