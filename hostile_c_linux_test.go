package shmlink

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shmlink/shmlink/internal/cpeer"
	"github.com/shmlink/shmlink/internal/testproc"
)

// The C library (c/) as the victim of the same attackers: a hostile client
// against a C server, a hostile server against a C client, handshake abuse
// against a C listener. The C side must see what the Go side sees: the
// damage reported as corruption (SHMLINK_CORRUPT), a bad handshake refused
// with the right code, no crash, no sanitizer finding, no allocation for a
// message merely claimed (cpeer.Env caps one at 64 MiB).

// startCVictim runs the C test peer (c/test/peer.c) in mode.
func startCVictim(t *testing.T, ready bool, mode string, args ...string) *testproc.Proc {
	t.Helper()
	o := testproc.Options{Name: "C " + mode, Env: cpeer.Env, WaitReady: ready}
	return o.Exec(t, cpeer.Peer(t), append([]string{mode}, args...)...)
}

// cVictimOfClient is what the C victim server must report for each
// clientDamage scenario, a line at a time: a line it must print next (its
// "timeout" lines skipped, unless the step is "=timeout"), "go" to give
// the attacker its go-ahead, "end" to let the attacker go (the victim then
// reports it lost), "attacked" to wait until the attacker has done its
// damage, "quit" to let the attacker go and wait for it to exit, "send"
// to tell a victim in send mode to send a message. "a|b" accepts either
// line.
var cVictimOfClient = map[string][]string{
	"tail-beyond":         {"corrupt"},
	"tail-unaligned":      {"corrupt"},
	"absurd-length":       {"corrupt"},
	"length-to-tail":      {"corrupt"},
	"invalid-flags":       {"corrupt"},
	"orphan-continuation": {"corrupt"},
	"begin-in-message":    {"corrupt"},
	"end-short":           {"corrupt"},
	"chunk-over-total":    {"corrupt"},
	"total-below-length":  {"corrupt"},
	"pad-overrun":         {"corrupt"},
	"tail-backwards":      {"msg 5 hello", "go", "corrupt"},
	"reserved-set":        {"msg 6 intact", "end"},
	"claim-2^40":          {"too-large", "end"},
	"claim-1GiB-stall":    {"=timeout", "end"},
	"split":               {"=timeout", "go", "msg 16 ABCDEFGHIJKLMNOP", "end"},
	"split-into":          {"=timeout", "go", "msg 16 ABCDEFGHIJKLMNOP", "end"},
	"header-rewrite":      {"msg 6 intact", "end"},
	"resize":              {"msg 6 intact", "end"},
	"unasked-taken":       {"handshake"},
	// The victim sends when told: its publish rings the data doorbell
	// the attacker made blocking, and the watchdog must free it.
	// The send itself may see the link fail, or only the next call.
	"bell-blocked": {"attacked", "send", "ok|corrupt", "corrupt"},
	// The attacker goes first: the victim, noticing that as it waits,
	// rings its own doorbell, which the attacker made blocking.
	"own-bell-blocked": {"attacked", "quit", "send", "ok|corrupt", "corrupt"},
}

// cUnguarded are the clientDamage scenarios the C library does not survive
// yet, and why.
var cUnguarded = map[string]string{}

// followSteps runs steps against the C victim v and the attacker a.
func followSteps(t *testing.T, v, a *testproc.Proc, steps []string) {
	t.Helper()
	for _, step := range steps {
		switch step {
		case "go":
			fmt.Fprintln(a.Stdin, "go")
			continue
		case "attacked":
			a.Stdout.Expect(t, "damaged")
			continue
		case "send":
			fmt.Fprintln(v.Stdin, "send")
			continue
		case "quit":
			a.Stdin.Close()
			a.Wait(t)
			continue
		case "end":
			a.Stdin.Close()
			step = "peer-lost"
		}
		exact := strings.HasPrefix(step, "=")
		line := v.Stdout.Next(t)
		for !exact && line == "timeout" {
			line = v.Stdout.Next(t)
		}
		if want := strings.TrimPrefix(step, "="); !slices.Contains(strings.Split(want, "|"), line) {
			t.Fatalf("C victim printed %q, want %q", line, want)
		}
	}
	v.Wait(t) // exit status 0: its own checks passed, no sanitizer report
}

func TestHostileClientVsC(t *testing.T) {
	dir := linkDir(t)
	if len(cVictimOfClient)+len(cUnguarded) != len(clientDamage) {
		t.Fatalf("%d C expectations and %d known gaps for %d scenarios", len(cVictimOfClient), len(cUnguarded), len(clientDamage))
	}
	for name, steps := range cVictimOfClient {
		t.Run(name, func(t *testing.T) {
			mode := "alloc"
			switch name {
			case "split-into":
				mode = "into"
			case "bell-blocked", "own-bell-blocked":
				mode = "send"
			}
			link := "victim-" + strings.ReplaceAll(name, "^", "") // a valid link name
			v := startCVictim(t, true, "victim-server", link, mode)
			a := startChild(t, "hostile-client", sockPath(dir, link), name)
			followSteps(t, v, a, steps)
		})
	}
}

func TestHostileServerVsC(t *testing.T) {
	dir := linkDir(t)
	writes := map[string]bool{"c2s-head-beyond": true, "c2s-head-unaligned": true, "c2s-head-backwards": true}
	names := []string{}
	for name := range serverDamage {
		names = append(names, name)
	}
	for name := range serverWelcome {
		names = append(names, name)
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			path := sockPath(dir, "evil-"+name)
			a := startChild(t, "hostile-server", path, name)
			mode := "read"
			if writes[name] {
				mode = "write"
			}
			v := startCVictim(t, false, "victim-client", path, itoa(hostileRing), mode)
			if _, bad := serverWelcome[name]; bad {
				followSteps(t, v, a, []string{"dial handshake"})
				return
			}
			want := "corrupt"
			if name == "junk-packet" || name == "fds-packet" {
				want = "handshake" // C fails the link on either
			}
			followSteps(t, v, a, []string{"dialed", "go", want})
		})
	}
}

func itoa(n int) string { return fmt.Sprint(n) }

// TestHandshakeAbuseVsC: every bad first packet of the handshake-abuse
// table gets the right Reject from a C listener, which goes on serving.
func TestHandshakeAbuseVsC(t *testing.T) {
	dir := linkDir(t)
	v := startCVictim(t, true, "echo-server", "abuse-c", "0")
	path := sockPath(dir, "abuse-c")
	welcomed := 0
	for name, a := range handshakeAbuses {
		t.Run(name, func(t *testing.T) {
			ch := startChild(t, "handshake-abuse", path, name)
			ch.Stdin.Close()
			err := ch.Exit(t)
			var ee *exec.ExitError
			if errors.As(err, &ee) && ee.ExitCode() == exitNoReject {
				t.Fatalf("the C listener hung up without a reject")
			}
			if err != nil {
				t.Fatalf("child: %v", err)
			}
			if a.want == accepted {
				expectCLine(t, v, fmt.Sprintf("client %d: peer-lost", welcomed))
				welcomed++
			}
		})
	}
	// Whatever came before, an honest client still gets a working link.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, "abuse-c", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.WriteMessage([]byte("still here")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if m, err := c.ReadMessage(); err != nil || string(m) != "still here" {
		t.Fatalf("got %q, %v", m, err)
	}
}

func expectCLine(t *testing.T, p *testproc.Proc, want string) {
	t.Helper()
	if line := p.Stdout.Next(t); line != want {
		t.Fatalf("C printed %q, want %q", line, want)
	}
}
