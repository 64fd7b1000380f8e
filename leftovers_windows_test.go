package shmlink

import (
	"context"
	"testing"
	"time"
)

// TestNothingLeftAfterKills: on Windows every object of a link is either
// unnamed or dies with its process, so after a server and a client were
// killed the hard way (kill -9 of the Wine process, under Wine), no name
// is left: ListLinks shows none, the name can be listened on again at
// once, and this process holds no more handles than before.
func TestNothingLeftAfterKills(t *testing.T) {
	linkDir(t)
	openProcessWide()
	before := snapshot(t)
	for round := range 3 {
		// A killed server, under our client.
		srv := startChild(t, "echo-server", "left")
		c := dialTest(t, "left")
		srv.KillHard(t)
		waitDone(t, c, time.Now())
		srv.Exit(t)
		c.Close()

		// A killed client, under our server.
		l, err := Listen("left", nil)
		if err != nil {
			t.Fatalf("round %d: listen after the server was killed: %v", round, err)
		}
		cl := startChild(t, "hold", "left")
		sc := acceptTest(t, l)
		cl.KillHard(t)
		waitDone(t, sc, time.Now())
		if s := sc.Status(); s != StatusPeerLost {
			t.Fatalf("round %d: status %v after the client was killed, want peer lost", round, s)
		}
		cl.Exit(t)
		sc.Close()
		l.Close()

		links, err := ListLinks()
		if err != nil {
			t.Fatal(err)
		}
		for _, li := range links {
			t.Errorf("round %d: left behind: %+v", round, li)
		}
		if _, err := Probe(context.Background(), "left"); err == nil {
			t.Errorf("round %d: probe of a dead name answered", round)
		}
	}
	if after := snapshot(t); after.leaked(before) {
		t.Errorf("leaked: before %+v, after %+v", before, after)
	}
}
