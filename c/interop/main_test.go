//go:build linux

package interop

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/shmlink/shmlink"
	"github.com/shmlink/shmlink/internal/cpeer"
	"github.com/shmlink/shmlink/internal/testproc"
)

// Go peers that the tests kill or restart run as children: the test binary
// re-executed in one of these roles. The C peer is c/test/peer.c.
func TestMain(m *testing.M) {
	testproc.Main(m, map[string]func([]string) error{
		"go-echo-server":      goEchoServer,
		"go-echo-client":      goEchoClient,
		"go-hold-server":      goHoldServer,
		"go-link-echo-server": goLinkEchoServer,
		"go-burst-server":     goBurstServer,
		"go-bench-server":     goBenchServer,
	}, cpeer.Clean)
}

// linkDir points plain link names at a fresh 0700 directory for this test;
// children, C or Go, inherit it.
func linkDir(t testing.TB) string {
	dir := filepath.Join(t.TempDir(), "rt")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv(shmlink.RuntimeDirEnv, dir)
	return dir
}

// startC runs the C peer in mode with args. With ready set it returns once
// the peer printed "ready".
func startC(t testing.TB, ready bool, mode string, args ...string) *testproc.Proc {
	t.Helper()
	o := testproc.Options{Name: "C " + mode, Env: cpeer.Env, WaitReady: ready}
	return o.Exec(t, cpeer.Peer(t), append([]string{mode}, args...)...)
}

// startGo runs a Go peer role in a child, once it says ready.
func startGo(t testing.TB, role string, args ...string) *testproc.Proc {
	t.Helper()
	return testproc.Options{WaitReady: true}.Start(t, role, args...)
}

// finish closes the C peer's stdin and checks that it exits 0.
func finish(t testing.TB, p *testproc.Proc) {
	t.Helper()
	p.Stdin.Close()
	p.Wait(t)
}

// pattern is the test message that c/test/peer.c's gen builds: byte i is
// i*31 + seq*7 + writer, and one of 8 bytes or more starts with writer and
// seq.
func pattern(writer, seq uint32, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(uint32(i)*31 + seq*7 + writer)
	}
	if n >= 8 {
		binary.LittleEndian.PutUint32(b, writer)
		binary.LittleEndian.PutUint32(b[4:], seq)
	}
	return b
}

// sizeOf is the size of message seq in the duplex test, as peer.c's size_of
// says: every third one a size class of the ring, the others spread up to
// max.
func sizeOf(seq uint32, ring, max uint64) int {
	classes := []uint64{0, 1, 7, 8, 9, ring/2 - 16, ring/2 - 8, ring / 2, ring - 1, ring, ring + 1, 3*ring + 5}
	n := uint64(seq*2654435761) % (max + 1)
	if seq%3 == 0 {
		n = classes[(seq/3)%12]
	}
	return int(min(n, max))
}

// sizeClasses are the message sizes every link must carry, for rings of
// ring bytes: the smallest, those around the one-chunk limit (half the
// ring, header included), around the ring, many rings, a few MiB.
func sizeClasses(ring int) []int {
	return []int{0, 1, 7, 8, 9, ring/2 - 16, ring/2 - 8, ring/2 - 7, ring / 2, ring - 1, ring, ring + 1,
		3*ring + 5, 5<<20 + 3}
}

func itoa(n int) string { return strconv.Itoa(n) }

// echo sends back every message on c until the peer leaves; a clean close
// is nil.
func echo(c *shmlink.Conn) error {
	defer c.Close()
	for {
		m, err := c.ReadMessage()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := c.WriteMessage(m); err != nil {
			return err
		}
	}
}

// accept accepts the next link on l within 20s; the test closes it.
func accept(t testing.TB, l *shmlink.Listener) *shmlink.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := l.AcceptContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func listen(t testing.TB, name string, cfg *shmlink.Config) *shmlink.Listener {
	t.Helper()
	l, err := shmlink.Listen(name, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func dial(t testing.TB, name string, cfg *shmlink.Config) *shmlink.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := shmlink.Dial(ctx, name, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// goEchoServer listens on args[0] and echoes every client, one goroutine
// each, until it is killed.
func goEchoServer(args []string) error {
	l, err := shmlink.Listen(args[0], nil)
	if err != nil {
		return err
	}
	testproc.Ready()
	for {
		c, err := l.AcceptConn()
		if err != nil {
			return err
		}
		go echo(c)
	}
}

// goHoldServer listens on args[0] and never reads, until stdin closes.
func goHoldServer(args []string) error {
	l, err := shmlink.Listen(args[0], nil)
	if err != nil {
		return err
	}
	testproc.Ready()
	io.Copy(io.Discard, os.Stdin)
	return l.Close()
}

// goEchoClient dials args[0] with rings of args[1] bytes and echoes.
func goEchoClient(args []string) error {
	ring, _ := strconv.Atoi(args[1])
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := shmlink.Dial(ctx, args[0], &shmlink.Config{RingSize: ring})
	if err != nil {
		return err
	}
	testproc.Ready()
	return echo(c)
}

// goLinkEchoServer runs a server-role Link on args[0] that echoes, until
// stdin closes; then it closes cleanly.
func goLinkEchoServer(args []string) error {
	var l *shmlink.Link
	opened := make(chan struct{})
	l, err := shmlink.Open(context.Background(), args[0], shmlink.RoleServer, shmlink.Handlers{
		OnMessage: func(m []byte) { <-opened; l.Send(m) },
	}, nil)
	if err != nil {
		return err
	}
	close(opened)
	testproc.Ready()
	io.Copy(io.Discard, os.Stdin)
	return l.Close()
}

// goBurstServer sends args[1] messages to the first client, then kills
// itself: what it committed must still reach the client.
func goBurstServer(args []string) error {
	n, _ := strconv.Atoi(args[1])
	l, err := shmlink.Listen(args[0], nil)
	if err != nil {
		return err
	}
	testproc.Ready()
	c, err := l.AcceptConn()
	if err != nil {
		return err
	}
	for i := range n {
		if err := c.WriteMessage(pattern(9, uint32(i), 100)); err != nil {
			return err
		}
	}
	return syscall.Kill(os.Getpid(), syscall.SIGKILL)
}

// goBenchServer is peer.c's bench-server in Go: it echoes messages that
// start with 'E', counts the others, answers "?" with the count and 'S'
// count size with that many messages.
func goBenchServer(args []string) error {
	l, err := shmlink.Listen(args[0], nil)
	if err != nil {
		return err
	}
	testproc.Ready()
	c, err := l.AcceptConn()
	l.Close()
	if err != nil {
		return err
	}
	defer c.Close()
	buf := make([]byte, 8<<20)
	var count uint64
	for {
		n, err := c.ReadMessageInto(buf)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		m := buf[:n]
		switch {
		case n > 0 && m[0] == 'E':
			err = c.WriteMessage(m)
		case n == 1 && m[0] == '?':
			err = c.WriteMessage(binary.LittleEndian.AppendUint64(nil, count))
			count = 0
		case n == 17 && m[0] == 'S':
			k, size := binary.LittleEndian.Uint64(m[1:]), binary.LittleEndian.Uint64(m[9:])
			for range k {
				if err = c.WriteMessage(buf[:size]); err != nil {
					break
				}
			}
		default:
			count++
		}
		if err != nil {
			return err
		}
	}
}

// checkEcho sends each size over c and checks what comes back.
func checkEcho(t *testing.T, c *shmlink.Conn, sizes []int) {
	t.Helper()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	for i, n := range sizes {
		want := pattern(1, uint32(i), n)
		if err := c.WriteMessage(want); err != nil {
			t.Fatalf("size %d: write: %v", n, err)
		}
		got, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("size %d: read: %v", n, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("size %d: echo of %d bytes differs", n, len(got))
		}
	}
}

// expectLine waits for the C peer to print want.
func expectLine(t testing.TB, p *testproc.Proc, want string) {
	t.Helper()
	if got := p.Stdout.Next(t); got != want {
		t.Fatalf("%s printed %q, want %q", p, got, want)
	}
}

var errUnexpected = errors.New("unexpected")

func unexpected(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUnexpected, fmt.Sprintf(format, args...))
}
