//go:build linux

package interop

import (
	"testing"

	"github.com/shmlink/shmlink/internal/cpeer"
	"github.com/shmlink/shmlink/internal/testproc"
)

// TestCWatchdog runs the C library's ring watchdog against the attacks
// that a review of its first version found (c/test/watchdog.c): a peer
// that races the drain so that the watchdog's own read would wait for good,
// several rings blocked at once, a child of fork, a client whose doorbells
// are full when it hands them over, a ring of a hostile peer's doorbell
// that must fail the link, and a ringer cancelled while blocked. TestHostileClientVsC (root
// package) runs the single blocked ring between a Go attacker and a C
// victim.
func TestCWatchdog(t *testing.T) {
	linkDir(t)
	for _, scenario := range []string{"race", "many", "fork", "handshake", "drop", "cancel"} {
		t.Run(scenario, func(t *testing.T) {
			p := testproc.Options{Name: "C watchdog " + scenario, Env: cpeer.Env}.Exec(t, cpeer.Watchdog(t), scenario)
			expectLine(t, p, "ok")
			p.Wait(t)
		})
	}
}
