//go:build linux || windows

package shmlink

import (
	"context"
	"flag"
	"math/rand/v2"
	"os"
	"testing"
	"time"
)

var (
	crashRounds = flag.Int("crashloop.rounds", 16, "rounds of TestCrashLoop (hundreds for a soak)")
	crashSeed   = flag.Uint64("crashloop.seed", 0, "seed of TestCrashLoop's random choices, to replay a run; 0: a random seed, logged")
)

// TestCrashLoop mixes clean closes, kill -9 and restarts of both sides, as
// chosen by a seeded generator (-crashloop.seed replays a run's choices;
// the timing of the processes is not replayed).
// A client-role Link in this process talks to echo servers that come and
// go; a server-role Link here serves clients that come and go. Checked:
// every message arrives intact, in order and at most once; an echo server
// that exits, killed or not, loses at most the one message it was handling
// (PROTOCOL.md, "Delivery across restarts"); and nothing is left behind.
func TestCrashLoop(t *testing.T) {
	dir := linkDir(t)
	seed := *crashSeed
	for seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("seed %d: replay with -crashloop.seed=%d -crashloop.rounds=%d", seed, seed, *crashRounds)
	rng := rand.New(rand.NewPCG(seed, 7))
	openProcessWide()
	before := snapshot(t)

	// Side A: our client Link, restarted echo servers.
	recA := newRecorder()
	linkA, err := Open(context.Background(), "loopA", RoleClient, recA.handlers(), &Config{RingSize: testRing})
	if err != nil {
		t.Fatal(err)
	}
	// Side B: our server Link, clients that come and go.
	recB := newRecorder()
	linkB, err := Open(context.Background(), "loopB", RoleServer, recB.handlers(), nil)
	if err != nil {
		t.Fatal(err)
	}

	sent, kills, stops := 0, 0, 0
	var got []uint32
	checkA := func(m []byte) {
		w, seq, err := checkMessage(m)
		if err != nil || w != 2 {
			t.Fatalf("side A: corrupt echo (writer %d): %v", w, err)
		}
		if len(got) > 0 && seq <= got[len(got)-1] {
			t.Fatalf("side A: seq %d after %d: duplicated or reordered", seq, got[len(got)-1])
		}
		got = append(got, seq)
	}
	drainA := func() {
		for {
			select {
			case m := <-recA.msgs:
				checkA(m)
			default:
				return
			}
		}
	}
	for round := 0; round < *crashRounds; round++ {
		if rng.IntN(2) == 0 {
			srv := startChild(t, "link-echo-server", "loopA")
			recA.expectStatus(t, StatusConnected)
			for i := 0; i < 20; i++ {
				size := 12 + rng.IntN(3*testRing)
				if err := linkA.Send(testMessage(2, uint32(sent), size)); err != nil {
					t.Fatal(err)
				}
				sent++
			}
			if rng.IntN(2) == 0 {
				if kills%2 == 0 {
					srv.Kill(t)
				} else {
					srv.KillHard(t) // under Wine: kill -9, not TerminateProcess
				}
				kills++
				recA.expectStatus(t, StatusPeerLost, StatusWaiting)
			} else {
				srv.Stdin.Close()
				srv.Wait(t)
				stops++
				recA.expectStatus(t, StatusPeerClosed, StatusWaiting)
			}
			drainA()
		} else {
			ch := startChild(t, "link-client-sender", "loopB", "200")
			recB.expectStatus(t, StatusConnected)
			n := rng.IntN(200)
			recB.expectMessages(t, 5, 0, n)
			if rng.IntN(2) == 0 {
				ch.Kill(t)
				recB.expectStatus(t, StatusPeerLost, StatusWaiting)
			} else {
				ch.Stdin.Close()
				ch.Wait(t)
				recB.expectMessages(t, 5, n, 200-n)
				recB.expectStatus(t, StatusPeerClosed, StatusWaiting)
			}
			// A killed client's unread messages die with its memory.
			for len(recB.msgs) > 0 {
				m := <-recB.msgs
				if _, _, err := checkMessage(m); err != nil {
					t.Fatalf("side B: %v", err)
				}
			}
		}
	}
	// A last, clean server run delivers everything still in the ring; the
	// marker's echo comes after all of it.
	final := startChild(t, "link-echo-server", "loopA")
	if err := linkA.Send(testMessage(2, uint32(sent), 12)); err != nil {
		t.Fatal(err)
	}
	sent++
	deadline := time.After(20 * time.Second)
	for len(got) == 0 || got[len(got)-1] != uint32(sent-1) {
		select {
		case <-deadline:
			t.Fatalf("marker echo not received; got %d of %d", len(got), sent)
		case m := <-recA.msgs:
			checkA(m)
		}
	}
	lost := sent - len(got)
	t.Logf("%d rounds: %d messages sent on side A, %d echoed, %d lost to %d server kills and %d clean stops",
		*crashRounds, sent, len(got), lost, kills, stops)
	if lost > kills+stops {
		t.Errorf("lost %d messages to %d kills and %d stops; at most one per server exit is allowed", lost, kills, stops)
	}
	linkA.Close()
	linkB.Close()
	final.Stdin.Close()
	final.Wait(t)

	after := snapshot(t)
	if after.leaked(before) {
		t.Errorf("leaked: before %+v, after %+v", before, after)
	}
	// Killed servers leave their socket file behind (a file cannot be
	// removed by a dead process); the next Listen on the name replaces it.
	for _, name := range []string{"loopA", "loopB"} {
		l, err := Listen(name, nil)
		if err != nil {
			t.Fatalf("listen on %s after the loop: %v", name, err)
		}
		l.Close()
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		t.Errorf("left in the runtime directory: %s", e.Name())
	}
}
