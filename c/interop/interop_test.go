//go:build linux

package interop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shmlink/shmlink"
	"github.com/shmlink/shmlink/internal/cpeer"
	"github.com/shmlink/shmlink/internal/testproc"
)

// rings are the ring sizes every data test runs with: the smallest, where
// every size class wraps and streams, and the default.
var rings = []int{4096, 1 << 20}

// TestBuilds: the library and the test peer compile clean (C99, -Wall
// -Wextra -Werror -pedantic) sanitized, optimized and as a shared object.
func TestBuilds(t *testing.T) {
	cpeer.Peer(t)
	cpeer.Build(t, cpeer.Optimized, "peer", "shmlink.c", "test/peer.c")
	cpeer.Library(t)
}

// TestSizes: every size class, both ring sizes, C client ↔ Go server and
// Go client ↔ C server; the receiving side checks every byte.
func TestSizes(t *testing.T) {
	linkDir(t)
	for _, ring := range rings {
		var args []string
		for _, n := range sizeClasses(ring) {
			args = append(args, itoa(n))
		}
		t.Run("c-client/ring="+itoa(ring), func(t *testing.T) {
			name := "sizes-c" + itoa(ring)
			l := listen(t, name, nil)
			p := startC(t, false, "sizes", append([]string{name, itoa(ring)}, args...)...)
			errc := make(chan error, 1)
			go func() { errc <- echo(accept(t, l)) }()
			expectLine(t, p, fmt.Sprintf("ok %d sizes", len(args)))
			p.Wait(t)
			if err := <-errc; err != nil {
				t.Fatalf("Go echo: %v", err)
			}
		})
		t.Run("c-server/ring="+itoa(ring), func(t *testing.T) {
			name := "sizes-go" + itoa(ring)
			p := startC(t, true, "echo-server", name, "1")
			c := dial(t, name, &shmlink.Config{RingSize: ring})
			checkEcho(t, c, sizeClasses(ring))
			c.Close()
			expectLine(t, p, "client 0: eof")
			p.Wait(t)
		})
	}
}

// TestCClientWaitsForServer: a C client that dials before any server
// exists waits (inotify on the name directory) and connects as soon as a
// Go server listens.
func TestCClientWaitsForServer(t *testing.T) {
	linkDir(t)
	p := startC(t, false, "echo-client", "later", "4096")
	waitFor(t, "the C client to watch the name directory", func() bool { return watching(p.Pid()) })
	l := listen(t, "later", nil)
	c := accept(t, l)
	expectLine(t, p, "ready")
	checkEcho(t, c, []int{3, 5000})
	c.Close()
	expectLine(t, p, "done: eof")
	p.Wait(t)
}

// watching reports whether process pid holds an inotify descriptor.
func watching(pid int) bool {
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, fd := range fds {
		if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); l == "anon_inode:inotify" {
			return true
		}
	}
	return false
}

// goDuplex sends n messages on c while it checks the n the C peer sends.
func goDuplex(t *testing.T, c *shmlink.Conn, ring, n, max int) {
	t.Helper()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	errc := make(chan error, 1)
	go func() {
		for seq := range uint32(n) {
			if err := c.WriteMessage(pattern(1, seq, sizeOf(seq, uint64(ring), uint64(max)))); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	for seq := range uint32(n) {
		m, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		if want := pattern(2, seq, sizeOf(seq, uint64(ring), uint64(max))); !bytes.Equal(m, want) {
			t.Fatalf("message %d: %d bytes, want %d, or content differs", seq, len(m), len(want))
		}
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
}

// TestDuplex: both directions at once, each side writing from one thread
// while it reads in another, sizes from empty to three rings.
func TestDuplex(t *testing.T) {
	linkDir(t)
	for _, ring := range rings {
		n, max := 400, 3*ring+5
		if ring > 4096 {
			n = 60
		}
		args := []string{itoa(ring), itoa(n), itoa(max)}
		t.Run("c-client/ring="+itoa(ring), func(t *testing.T) {
			name := "duplex-c" + itoa(ring)
			l := listen(t, name, nil)
			p := startC(t, false, "duplex-client", append([]string{name}, args...)...)
			goDuplex(t, accept(t, l), ring, n, max)
			expectLine(t, p, "duplex ok "+itoa(n))
			p.Wait(t)
		})
		t.Run("c-server/ring="+itoa(ring), func(t *testing.T) {
			name := "duplex-go" + itoa(ring)
			p := startC(t, true, "duplex-server", append([]string{name}, args...)...)
			goDuplex(t, dial(t, name, &shmlink.Config{RingSize: ring}), ring, n, max)
			expectLine(t, p, "duplex ok "+itoa(n))
			p.Wait(t)
		})
	}
}

// expectLost checks that the Go side of a link whose C peer was killed
// learns it: reads and writes fail with ErrPeerLost.
func expectLost(t *testing.T, c *shmlink.Conn) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	for {
		_, err := c.ReadMessage()
		if err == nil {
			continue // what the peer committed before it died
		}
		if !errors.Is(err, shmlink.ErrPeerLost) {
			t.Fatalf("read after the peer was killed: %v, want ErrPeerLost", err)
		}
		break
	}
	if err := c.WriteMessage([]byte("x")); !errors.Is(err, shmlink.ErrPeerLost) {
		t.Fatalf("write after the peer was killed: %v, want ErrPeerLost", err)
	}
	if s := c.Status(); s != shmlink.StatusPeerLost {
		t.Fatalf("status %v, want peer lost", s)
	}
}

// TestPeerLost: kill -9 of either side, in each role; the survivor, C or
// Go, reports the peer lost, whether it was idle, reading, or blocked on a
// full ring.
func TestPeerLost(t *testing.T) {
	linkDir(t)
	t.Run("go-server-killed/c-client-reading", func(t *testing.T) {
		g := startGo(t, "go-echo-server", "lost1")
		p := startC(t, true, "recv-forever", "lost1")
		g.Kill(t)
		expectLine(t, p, "peer-lost")
		p.Wait(t)
	})
	t.Run("go-server-killed/c-client-blocked-writing", func(t *testing.T) {
		g := startGo(t, "go-hold-server", "lost2")
		p := startC(t, false, "write-big", "lost2", "4096", "fill")
		expectLine(t, p, "full")
		g.Kill(t)
		expectLine(t, p, "peer-lost")
		p.Wait(t)
	})
	t.Run("go-client-killed/c-server", func(t *testing.T) {
		p := startC(t, true, "echo-server", "lost3", "1")
		g := startGo(t, "go-echo-client", "lost3", "4096")
		g.Kill(t)
		expectLine(t, p, "client 0: peer-lost")
		p.Wait(t)
	})
	t.Run("c-client-killed/go-server", func(t *testing.T) {
		l := listen(t, "lost4", nil)
		p := startC(t, true, "recv-forever", "lost4")
		c := accept(t, l)
		p.Kill(t)
		expectLost(t, c)
	})
	t.Run("c-server-killed/go-client", func(t *testing.T) {
		p := startC(t, true, "echo-server", "lost5", "0")
		c := dial(t, "lost5", nil)
		checkEcho(t, c, []int{10})
		p.Kill(t)
		expectLost(t, c)
	})
	t.Run("c-writer-killed-mid-message", func(t *testing.T) {
		// A 32 MiB message through a 4 KiB ring: the reader gets "first",
		// then ErrPeerLost, never a piece of the cut-off message.
		l := listen(t, "lost6", nil)
		p := startC(t, true, "write-big", "lost6", "4096", itoa(32<<20))
		c := accept(t, l)
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if m, err := c.ReadMessage(); err != nil || string(m) != "first" {
			t.Fatalf("got %q, %v", m, err)
		}
		p.Kill(t)
		if m, err := c.ReadMessage(); !errors.Is(err, shmlink.ErrPeerLost) {
			t.Fatalf("got %d bytes, %v; want ErrPeerLost", len(m), err)
		}
	})
	t.Run("c-server-killed/go-client-blocked-writing", func(t *testing.T) {
		p := startC(t, true, "hold-server", "lost7")
		c := dial(t, "lost7", &shmlink.Config{RingSize: 4096})
		errc := make(chan error, 1)
		go func() {
			for {
				if err := c.WriteMessage(make([]byte, 1000)); err != nil {
					errc <- err
					return
				}
			}
		}()
		waitFor(t, "the writer to sleep on a full ring", func() bool { return c.Stats().Sent.Sleeps > 0 })
		p.Kill(t)
		select {
		case err := <-errc:
			if !errors.Is(err, shmlink.ErrPeerLost) {
				t.Fatalf("blocked write: %v, want ErrPeerLost", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("write still blocked 10s after the peer was killed")
		}
	})
}

// waitFor polls cond until it holds, failing the test after 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestServerRestartUnderCClient: a C client that keeps its memory sees its
// Go server killed, then stopped cleanly, and restarted each time; nothing
// it committed is lost or repeated (PROTOCOL.md, 7.1): what it sent while
// no server ran reaches the next one.
func TestServerRestartUnderCClient(t *testing.T) {
	linkDir(t)
	srv := startGo(t, "go-link-echo-server", "restart")
	p := startC(t, true, "keep-client", "restart", "65536")
	expectLine(t, p, "round 1")
	srv.Kill(t)
	expectLine(t, p, "queued")
	srv = startGo(t, "go-link-echo-server", "restart")
	expectLine(t, p, "round 2")
	srv.Stdin.Close()
	srv.Wait(t)
	expectLine(t, p, "queued")
	startGo(t, "go-link-echo-server", "restart")
	expectLine(t, p, "round 3")
	p.Wait(t)
}

// TestDeadServerMessagesReachCClient: what a Go server committed before it
// was killed is all delivered to the C client, then the loss.
func TestDeadServerMessagesReachCClient(t *testing.T) {
	linkDir(t)
	startGo(t, "go-burst-server", "burst", "200")
	p := startC(t, false, "keep-burst", "burst", "65536", "200")
	expectLine(t, p, "got 200 then lost")
	p.Wait(t)
}

// TestCServerRestartUnderGoLink: the other way round, a Go client-role
// Link keeps its memory while its C server is killed and restarted.
func TestCServerRestartUnderGoLink(t *testing.T) {
	linkDir(t)
	got := make(chan []byte, 1000)
	status := make(chan shmlink.Status, 100)
	l, err := shmlink.Open(context.Background(), "crestart", shmlink.RoleClient, shmlink.Handlers{
		OnMessage: func(m []byte) { got <- m },
		OnStatus:  func(s shmlink.Status) { status <- s },
	}, &shmlink.Config{RingSize: 65536})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	expectStatus := func(want ...shmlink.Status) {
		t.Helper()
		for _, w := range want {
			select {
			case s := <-status:
				if s != w {
					t.Fatalf("status %v, want %v", s, w)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no status %v within 10s", w)
			}
		}
	}
	expectEchoes := func(from, n int) {
		t.Helper()
		for i := from; i < from+n; i++ {
			select {
			case m := <-got:
				if !bytes.Equal(m, pattern(3, uint32(i), 300)) {
					t.Fatalf("echo %d: %d bytes, or content differs", i, len(m))
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("echo %d not received within 10s", i)
			}
		}
	}
	send := func(from, n int) {
		t.Helper()
		for i := from; i < from+n; i++ {
			if err := l.Send(pattern(3, uint32(i), 300)); err != nil {
				t.Fatal(err)
			}
		}
	}
	send(0, 40) // before any server: into the ring
	p := startC(t, true, "echo-server", "crestart", "0")
	expectStatus(shmlink.StatusConnected)
	expectEchoes(0, 40)
	p.Kill(t)
	expectStatus(shmlink.StatusPeerLost, shmlink.StatusWaiting)
	send(40, 40)
	startC(t, true, "echo-server", "crestart", "0")
	expectStatus(shmlink.StatusConnected)
	expectEchoes(40, 40)
}

// TestProbe: each side answers the other's probe, and a probe is no client.
func TestProbe(t *testing.T) {
	linkDir(t)
	l := listen(t, "probe-go", nil)
	p := startC(t, false, "probe", "probe-go")
	line := p.Stdout.Next(t)
	var pid, clients int
	var since int64
	if _, err := fmt.Sscanf(line, "pid %d clients %d since %d", &pid, &clients, &since); err != nil ||
		pid != os.Getpid() || clients != 0 || time.Since(time.Unix(0, since)) > time.Minute {
		t.Fatalf("C probe of a Go server: %q (%v)", line, err)
	}
	p.Wait(t)
	noneQueued(t, l)

	p = startC(t, true, "hold-server", "probe-c")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := shmlink.Probe(ctx, "probe-c")
	if err != nil || info.PID != p.Pid() || info.Clients != 0 || time.Since(info.Since) > time.Minute {
		t.Fatalf("Go probe of a C server: %+v, %v", info, err)
	}
	dial(t, "probe-c", nil)
	if info, err = shmlink.Probe(ctx, "probe-c"); err != nil || info.Clients != 1 {
		t.Fatalf("with one client: %+v, %v", info, err)
	}
}

// noneQueued fails if a link reached l's Accept.
func noneQueued(t *testing.T, l *shmlink.Listener) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if c, err := l.AcceptContext(ctx); err == nil {
		c.Close()
		t.Fatal("a probe reached Accept")
	}
}

// cPaths are the socket paths the C library gives names, or its errors.
func cPaths(t *testing.T, names []string) []string {
	t.Helper()
	p := testproc.Options{Env: cpeer.Env}.Exec(t, cpeer.Peer(t), append([]string{"path"}, names...)...)
	var lines []string
	for range names {
		lines = append(lines, p.Stdout.Next(t))
	}
	p.Wait(t)
	return lines
}

// goPath is the socket path Go gives name, or "invalid".
func goPath(t *testing.T, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := shmlink.Probe(ctx, name)
	switch {
	case errors.Is(err, shmlink.ErrInvalidName):
		return "invalid"
	case !errors.Is(err, shmlink.ErrNoServer):
		t.Fatalf("Go probe of %q: %v", name, err)
	case strings.HasPrefix(name, "/"):
		return name
	}
	dir, err := shmlink.RuntimeDir()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, name+".sock")
}

// TestNamesAgree: the C library resolves names to the same socket paths as
// Go, under each way of choosing the name directory, and refuses the
// names Go refuses (PROTOCOL.md, 2).
func TestNamesAgree(t *testing.T) {
	base := t.TempDir()
	long := base + "/" + strings.Repeat("n", 100-len(base)-1) // DIR of 100 bytes
	dirs := map[string][]string{
		"SHMLINK_DIR":         {"SHMLINK_DIR=" + base + "/a"},
		"SHMLINK_DIR-unclean": {"SHMLINK_DIR=" + base + "//b/./c/../d/"},
		"XDG_RUNTIME_DIR":     {"SHMLINK_DIR=", "XDG_RUNTIME_DIR=" + base + "/x"},
		"TMPDIR":              {"SHMLINK_DIR=", "XDG_RUNTIME_DIR=", "TMPDIR=" + base + "/t/"},
		"XDG_RUNTIME_DIR-rel": {"SHMLINK_DIR=", "XDG_RUNTIME_DIR=relative", "TMPDIR=" + base + "/t2"},
		"SHMLINK_DIR-100":     {"SHMLINK_DIR=" + long},
	}
	for _, d := range []string{"x", "t", "t2", "b/c"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	names := []string{"plain", "a", "ab", "a.b_c+d@e:f-g", strings.Repeat("z", 64), "/abs/path.sock",
		"", ".dot", "sl/ash", strings.Repeat("z", 65), "/not//clean", "/not/clean/", "/x/../y", "/",
		"/" + strings.Repeat("p", 106), "/" + strings.Repeat("p", 107), "sp ace", "t\xe9"}
	for env, vars := range dirs {
		t.Run(env, func(t *testing.T) {
			for _, v := range vars {
				k, val, _ := strings.Cut(v, "=")
				t.Setenv(k, val)
			}
			for i, got := range cPaths(t, names) {
				if want := goPath(t, names[i]); got != want {
					t.Errorf("%q: C says %q, Go %q", names[i], got, want)
				}
			}
		})
	}
}

// TestStaleAndInUse: a C server takes over the name a killed Go server left
// (a socket nobody listens on), refuses a live one and a file that is not
// a socket, and on close removes its socket only if it is still its own.
func TestStaleAndInUse(t *testing.T) {
	dir := linkDir(t)
	g := startGo(t, "go-echo-server", "stale")
	g.Kill(t)
	g.Exit(t)
	if _, err := os.Lstat(filepath.Join(dir, "stale.sock")); err != nil {
		t.Fatalf("a killed server's socket is gone: %v", err)
	}
	p := startC(t, true, "echo-server", "stale", "1")
	checkEcho(t, dial(t, "stale", nil), []int{5})

	l := listen(t, "live", nil)
	q := startC(t, false, "listen", "live")
	expectLine(t, q, "in-use")
	q.Wait(t)
	if _, err := shmlink.Listen("stale", nil); !errors.Is(err, shmlink.ErrAddrInUse) {
		t.Fatalf("Go Listen on a live C server's name: %v", err)
	}
	l.Close()
	p.Kill(t)

	file := filepath.Join(dir, "file.sock")
	os.WriteFile(file, []byte("keep"), 0o600)
	q = startC(t, false, "listen", "file")
	expectLine(t, q, "in-use")
	q.Wait(t)
	if b, _ := os.ReadFile(file); string(b) != "keep" {
		t.Fatal("a file that is not a socket was replaced")
	}

	// Successor: our socket removed by hand, a Go server takes the name,
	// then the C listener closes; the Go server's socket must survive.
	q = startC(t, false, "listen", "succ")
	expectLine(t, q, "ok")
	os.Remove(filepath.Join(dir, "succ.sock"))
	listen(t, "succ", nil)
	q.Stdin.Close()
	expectLine(t, q, "closed")
	q.Wait(t)
	checkEcho(t, dialEcho(t, "succ"), nil)
}

// dialEcho dials name, which must still be served.
func dialEcho(t *testing.T, name string) *shmlink.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := shmlink.Dial(ctx, name, nil)
	if err != nil {
		t.Fatalf("the successor's socket is gone: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestLimits: each side announces its largest message and the other
// refuses to send more, sending nothing.
func TestLimits(t *testing.T) {
	linkDir(t)
	p := startC(t, true, "echo-server", "limit", "1", "1000")
	c := dial(t, "limit", nil)
	if err := c.WriteMessage(make([]byte, 1001)); !errors.Is(err, shmlink.ErrMessageTooLarge) {
		t.Fatalf("1001 bytes to a C server that accepts 1000: %v", err)
	}
	checkEcho(t, c, []int{1000, 0})
	c.Close()
	expectLine(t, p, "client 0: eof")
	p.Wait(t)

	l := listen(t, "limit-go", &shmlink.Config{MaxMessageSize: 1000})
	for n, want := range map[int]string{1001: "too-large", 1000: "ok"} {
		q := startC(t, false, "send-size", "limit-go", itoa(n))
		c := accept(t, l)
		expectLine(t, q, want)
		q.Wait(t)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		m, err := c.ReadMessage()
		if n == 1000 && (err != nil || len(m) != 1000) {
			t.Fatalf("1000 bytes from C: %d bytes, %v", len(m), err)
		}
		if n == 1001 && err != io.EOF {
			t.Fatalf("after a refused send the C client sent %d bytes, %v; want nothing, then EOF", len(m), err)
		}
	}
}

// TestEventLoop: a C client that runs from poll(2) on shmlink_fd, never
// blocking, echoes messages of every size class while the Go side writes
// and reads at once; the descriptor wakes it for data, for room, and for
// the goodbye.
func TestEventLoop(t *testing.T) {
	linkDir(t)
	l := listen(t, "loop", nil)
	p := startC(t, true, "poll-echo-client", "loop", "4096")
	c := accept(t, l)
	c.SetDeadline(time.Now().Add(60 * time.Second))
	classes := sizeClasses(4096)
	classes = classes[:len(classes)-1] // all but the MiBs
	sizes := append(classes, classes...)
	errc := make(chan error, 1)
	go func() {
		for i, n := range sizes {
			if err := c.WriteMessage(pattern(1, uint32(i), n)); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	for i, n := range sizes {
		m, err := c.ReadMessage()
		if err != nil || !bytes.Equal(m, pattern(1, uint32(i), n)) {
			t.Fatalf("echo %d of %d bytes: %d bytes, %v", i, n, len(m), err)
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	c.Close()
	line := p.Stdout.Next(t)
	var polls int
	if _, err := fmt.Sscanf(line, "done: eof after "+itoa(len(sizes))+" messages, %d polls", &polls); err != nil || polls == 0 {
		t.Fatalf("C event loop: %q", line)
	}
	t.Logf("C event loop: %s", line)
	p.Wait(t)
}
