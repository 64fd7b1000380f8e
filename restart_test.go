//go:build linux || windows

package shmlink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/shmlink/shmlink/internal/testproc"
)

// childLinkEchoServer runs a server-role Link on args[0] that echoes every
// message, until stdin closes; then it closes the link cleanly.
func childLinkEchoServer(args []string) error {
	var l *Link
	opened := make(chan struct{}) // l is set once this is closed
	l, err := Open(context.Background(), args[0], RoleServer, Handlers{
		OnMessage: func(m []byte) { <-opened; l.Send(m) },
	}, &Config{RingSize: testRing})
	if err != nil {
		return err
	}
	close(opened)
	testproc.Ready()
	io.Copy(io.Discard, os.Stdin)
	return l.Close()
}

// childLinkBurstServer sends args[1] messages to the first client that
// connects, then kills itself: what it committed must still reach the
// client.
func childLinkBurstServer(args []string) error {
	n, _ := strconv.Atoi(args[1])
	connected := make(chan struct{}, 1)
	l, err := Open(context.Background(), args[0], RoleServer, Handlers{
		OnStatus: func(s Status) {
			if s == StatusConnected {
				connected <- struct{}{}
			}
		},
	}, &Config{RingSize: testRing})
	if err != nil {
		return err
	}
	testproc.Ready()
	<-connected
	for i := 0; i < n; i++ {
		if err := l.Send(testMessage(9, uint32(i), 100)); err != nil {
			return err
		}
	}
	return killSelf()
}

// childLinkClientSender runs a client-role Link that sends args[1]
// messages, then waits for stdin to close.
func childLinkClientSender(args []string) error {
	n, _ := strconv.Atoi(args[1])
	l, err := Open(context.Background(), args[0], RoleClient, Handlers{}, &Config{RingSize: testRing})
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		if err := l.Send(testMessage(5, uint32(i), 64+i%3000)); err != nil {
			return err
		}
	}
	testproc.Ready()
	io.Copy(io.Discard, os.Stdin)
	return l.Close()
}

// childLinkClientFlood is childLinkClientSender that says ready first, so
// that the parent acts while the messages flow.
func childLinkClientFlood(args []string) error {
	n, _ := strconv.Atoi(args[1])
	l, err := Open(context.Background(), args[0], RoleClient, Handlers{}, &Config{RingSize: testRing})
	if err != nil {
		return err
	}
	testproc.Ready()
	for i := 0; i < n; i++ {
		if err := l.Send(testMessage(5, uint32(i), 64+i%3000)); err != nil {
			return err
		}
	}
	io.Copy(io.Discard, os.Stdin)
	return l.Close()
}

// recorder collects a Link's events for a test.
type recorder struct {
	msgs   chan []byte
	status chan Status
	errs   chan error
}

func newRecorder() *recorder {
	return &recorder{msgs: make(chan []byte, 100000), status: make(chan Status, 100), errs: make(chan error, 100)}
}

func (r *recorder) handlers() Handlers {
	return Handlers{
		OnMessage: func(m []byte) { r.msgs <- m },
		OnStatus:  func(s Status) { r.status <- s },
		OnError:   func(err error) { r.errs <- err },
	}
}

func (r *recorder) expectStatus(t testing.TB, want ...Status) {
	t.Helper()
	for _, w := range want {
		select {
		case s := <-r.status:
			if s != w {
				t.Fatalf("status %v, want %v", s, w)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no status change to %v within 10s", w)
		}
	}
}

// expectMessages reads n messages and checks they are writer w's seqs
// from, from+1, ...
func (r *recorder) expectMessages(t testing.TB, w uint32, from, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		select {
		case m := <-r.msgs:
			gw, seq, err := checkMessage(m)
			if err != nil || gw != w || seq != uint32(from+i) {
				t.Fatalf("message %d: writer %d seq %d err %v; want writer %d seq %d", i, gw, seq, err, w, from+i)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("message %d of %d not received within 10s", i, n)
		}
	}
}

// TestServerRestart runs a server restart between real processes:
// the client starts first and waits, the server appears, is killed, and
// is started again; the client reconnects by itself and nothing it
// committed is lost.
func TestServerRestart(t *testing.T) {
	linkDir(t)
	rec := newRecorder()
	l, err := Open(context.Background(), "restart", RoleClient, rec.handlers(), &Config{RingSize: testRing})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Status() != StatusWaiting {
		t.Fatalf("status %v before any server", l.Status())
	}
	// Sent before any server exists: committed to the client's ring.
	for i := 0; i < 50; i++ {
		if err := l.Send(testMessage(1, uint32(i), 200)); err != nil {
			t.Fatal(err)
		}
	}
	srv := startChild(t, "link-echo-server", "restart")
	rec.expectStatus(t, StatusConnected)
	rec.expectMessages(t, 1, 0, 50)

	srv.KillHard(t) // kill -9, under Wine too
	rec.expectStatus(t, StatusPeerLost, StatusWaiting)
	// Sent while no server runs: they wait in the ring.
	for i := 50; i < 100; i++ {
		if err := l.Send(testMessage(1, uint32(i), 200)); err != nil {
			t.Fatal(err)
		}
	}
	srv = startChild(t, "link-echo-server", "restart")
	rec.expectStatus(t, StatusConnected)
	rec.expectMessages(t, 1, 50, 50)

	// A clean stop of the server is "peer closed", and again the client
	// waits and reconnects.
	srv.Stdin.Close()
	srv.Wait(t)
	rec.expectStatus(t, StatusPeerClosed, StatusWaiting)
	startChild(t, "link-echo-server", "restart")
	rec.expectStatus(t, StatusConnected)
	if err := l.Send(testMessage(1, 100, 200)); err != nil {
		t.Fatal(err)
	}
	rec.expectMessages(t, 1, 100, 1)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	rec.expectStatus(t, StatusClosed)
}

// TestDeadServerMessagesStillReadable: what a server committed to the
// client's ring before it was killed is delivered.
func TestDeadServerMessagesStillReadable(t *testing.T) {
	linkDir(t)
	rec := newRecorder()
	l, err := Open(context.Background(), "burst", RoleClient, rec.handlers(), &Config{RingSize: testRing})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	startChild(t, "link-burst-server", "burst", "200")
	rec.expectStatus(t, StatusConnected, StatusPeerLost, StatusWaiting)
	rec.expectMessages(t, 9, 0, 200)
}

// TestServerLinkSeesClientsComeAndGo shows the server side of a lifecycle: a
// server-role link sees a client connect, its messages, its departure
// (clean or killed), and then serves the next client.
func TestServerLinkSeesClientsComeAndGo(t *testing.T) {
	linkDir(t)
	rec := newRecorder()
	l, err := Open(context.Background(), "srv", RoleServer, rec.handlers(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for round, kill := range []bool{false, true, false} {
		ch := startChild(t, "link-client-sender", "srv", "300")
		rec.expectStatus(t, StatusConnected)
		rec.expectMessages(t, 5, 0, 300)
		if kill {
			ch.Kill(t)
			rec.expectStatus(t, StatusPeerLost, StatusWaiting)
		} else {
			ch.Stdin.Close()
			ch.Wait(t)
			rec.expectStatus(t, StatusPeerClosed, StatusWaiting)
		}
		t.Logf("round %d ok", round)
	}
	// Send waits for a client; with none coming it honours its context.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := l.SendContext(ctx, []byte("x")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("send with no client: %v", err)
	}
}

func TestLinkBadName(t *testing.T) {
	for _, name := range []string{"", "a/b", "..", "x\x00y", "relative/../x", string(make([]byte, 200))} {
		if _, err := Open(context.Background(), name, RoleClient, Handlers{}, nil); err == nil {
			t.Errorf("Open(%q) succeeded", name)
		}
	}
	_ = fmt.Sprint()
}

// TestFailFast: with FailFast, Send refuses while no peer is connected
// instead of queueing, on both roles.
func TestFailFast(t *testing.T) {
	linkDir(t)
	for _, role := range []Role{RoleClient, RoleServer} {
		l, err := Open(context.Background(), "ff"+role.String(), role, Handlers{}, &Config{FailFast: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Send([]byte("x")); !errors.Is(err, ErrNoPeer) {
			t.Errorf("%v: Send with no peer: %v, want ErrNoPeer", role, err)
		}
		l.Close()
	}
}

// TestOpenWithCancelledContext: a Link whose context is already done closes
// at once, cleanly.
func TestOpenWithCancelledContext(t *testing.T) {
	linkDir(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rec := newRecorder()
	l, err := Open(ctx, "cancelled", RoleClient, rec.handlers(), nil)
	if err != nil {
		t.Fatal(err)
	}
	rec.expectStatus(t, StatusClosed)
	if err := l.Send([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Send on a closed link: %v", err)
	}
}

// TestClosingServerTakesNoMore: a server-role Link closed while its client
// floods it (Close called from outside the handlers) begins no new
// message once Close has begun: it loses at most the one it may be taking
// at that moment, and the next server gets all the rest, in order. It
// used to drop every message its reader took between the start of Close
// and the end of the listener's teardown (8 to 275 per Close here).
func TestClosingServerTakesNoMore(t *testing.T) {
	linkDir(t)
	const total, closes = 20000, 6
	// Each server's messages, by server: a handler that began before its
	// server's Close may still be running after Close returned (Link.Close
	// never waits for one), so the next server's first messages can come
	// in before that handler's, in time; in seq order, server by server,
	// they must still be one strictly increasing run.
	var mu sync.Mutex
	var got [closes + 1][]uint32
	count := 0
	progress := make(chan int, 1)
	record := func(server int) Handlers {
		return Handlers{OnMessage: func(m []byte) {
			_, seq, err := checkMessage(m)
			if err != nil {
				t.Errorf("message: %v", err)
				return
			}
			mu.Lock()
			got[server] = append(got[server], seq)
			count++
			n := count
			mu.Unlock()
			select {
			case progress <- n:
			default:
			}
		}}
	}
	waitFor := func(what string, done func(n int) bool) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			mu.Lock()
			n := count
			mu.Unlock()
			if done(n) {
				return
			}
			select {
			case <-progress:
			case <-deadline:
				t.Fatalf("%s: %d messages after 30s", what, n)
			}
		}
	}
	srv, err := Open(context.Background(), "flood", RoleServer, record(0), &Config{RingSize: testRing})
	if err != nil {
		t.Fatal(err)
	}
	ch := startChild(t, "link-client-flood", "flood", strconv.Itoa(total))
	for round := 1; round <= closes; round++ {
		waitFor("server "+strconv.Itoa(round), func(n int) bool { return n >= round*total/(closes+2) })
		if err := srv.Close(); err != nil {
			t.Fatal(err)
		}
		if srv, err = Open(context.Background(), "flood", RoleServer, record(round), &Config{RingSize: testRing}); err != nil {
			t.Fatal(err)
		}
	}
	defer srv.Close()
	waitFor("last server", func(int) bool {
		mu.Lock()
		defer mu.Unlock()
		last := got[closes]
		return len(last) > 0 && last[len(last)-1] == total-1
	})
	mu.Lock()
	defer mu.Unlock()
	var all []uint32
	for _, g := range got {
		all = append(all, g...)
	}
	for i := 1; i < len(all); i++ {
		if all[i] <= all[i-1] {
			t.Fatalf("seq %d after %d: duplicated or reordered", all[i], all[i-1])
		}
	}
	if lost := total - len(all); lost > closes {
		t.Errorf("%d messages lost to %d Closes; at most one each may be", lost, closes)
	}
	ch.Stdin.Close()
	ch.Wait(t)
}
