//go:build linux || windows

package shmlink

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/shmlink/shmlink/internal/sys"
	"github.com/shmlink/shmlink/internal/testproc"
)

// Tests run the other end of a link in a separate process: the test binary
// re-executed as one of the roles of roles() (roles_test.go); TestMain is
// in helpers_linux_test.go and helpers_windows_test.go.

// startChild runs role in a child process with the test's link directory
// and returns once the child said it is ready. Each role says ready
// (testproc.Ready) once its side is set up, and exits 0 on success.
func startChild(t testing.TB, role string, args ...string) *testproc.Proc {
	t.Helper()
	return testproc.Options{WaitReady: true}.Start(t, role, args...)
}

// childArgs splits a child's arguments into its fixed ones, failing on a
// count mismatch rather than indexing out of range.
func childArgs(args []string, n int) error {
	if len(args) != n {
		return fmt.Errorf("want %d arguments, got %d: %q", n, len(args), args)
	}
	return nil
}

var errScenario = errors.New("unknown scenario")

// acceptTest accepts the next link on l within 10s; the test closes it.
func acceptTest(t testing.TB, l *Listener) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := l.AcceptContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// localPair links a client and a server in this process over the link
// name, for tests of what happens inside one endpoint (locks, costs), not
// between processes; the test closes both.
func localPair(t testing.TB, name string) (client, server *Conn) {
	t.Helper()
	return localPairWith(t, name, nil, nil)
}

// localPairWith is localPair with the listener's and the dialer's Config.
func localPairWith(t testing.TB, name string, listen, dial *Config) (client, server *Conn) {
	t.Helper()
	l, err := Listen(name, listen)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	dialed := make(chan *Conn, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := Dial(ctx, name, dial)
		if err != nil {
			t.Error(err)
		}
		dialed <- c
	}()
	server = acceptTest(t, l)
	if client = <-dialed; client == nil {
		t.FailNow()
	}
	t.Cleanup(func() { client.Close() })
	return client, server
}

// noneQueued fails the test if a link is waiting for Accept on l, or
// reaches it within a few milliseconds: every client so far was to be
// refused.
func noneQueued(t testing.TB, l *Listener) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	c, err := l.AcceptContext(ctx)
	if err == nil {
		c.Close()
		t.Fatalf("a refused client reached Accept: pid %d", c.RemoteAddr().(*Addr).PID)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("accept: %v", err)
	}
}

// childEchoServer listens on args[0] and echoes every message of every
// client until that client closes. With a second argument n, it exits after
// serving n clients.
func childEchoServer(args []string) error {
	l, err := Listen(args[0], nil)
	if err != nil {
		return err
	}
	defer l.Close()
	testproc.Ready()
	limit := -1
	if len(args) > 1 {
		limit, _ = strconv.Atoi(args[1])
	}
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	for i := 0; i != limit; i++ {
		c, err := l.AcceptConn()
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := echo(c); err != nil {
				select {
				case errs <- err:
				default:
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// childEchoClient dials args[0] and echoes until the server closes.
func childEchoClient(args []string) error {
	c, err := Dial(context.Background(), args[0], nil)
	if err != nil {
		return err
	}
	testproc.Ready()
	return echo(c)
}

func echo(c *Conn) error {
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

// childSink dials args[0], checks every message it gets (as built by
// testMessage) and answers each "?" with the number it has verified; at
// the end of the stream it prints "eof N", N that number.
func childSink(args []string) error {
	c, err := Dial(context.Background(), args[0], nil)
	if err != nil {
		return err
	}
	defer c.Close()
	testproc.Ready()
	n := 0
	buf := make([]byte, 1<<20)
	for {
		k, err := c.ReadMessageInto(buf)
		if err == io.EOF {
			fmt.Println("eof", n)
			return nil
		}
		if err != nil {
			return err
		}
		if k == 1 && buf[0] == '?' {
			if err := c.WriteMessage([]byte(strconv.Itoa(n))); err != nil {
				return err
			}
			continue
		}
		if _, _, err := checkMessage(buf[:k]); err != nil {
			return err
		}
		n++
	}
}

// childHold dials args[0] and keeps the link open, idle, until stdin closes.
func childHold(args []string) error {
	c, err := Dial(context.Background(), args[0], nil)
	if err != nil {
		return err
	}
	testproc.Ready()
	io.Copy(io.Discard, os.Stdin)
	return c.Close()
}

// endpointOf is the endpoint of the plain link name in the test's link
// directory (PROTOCOL.md, 2): what Listen and Dial use for it.
func endpointOf(t testing.TB, name string) string {
	t.Helper()
	p, err := endpointPath(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// linkDir points the link runtime directory at a fresh 0700 directory for
// this test; children inherit it through the environment.
func linkDir(t testing.TB) string {
	dir := filepath.Join(testproc.TempDir(t), "rt")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv(RuntimeDirEnv, dir)
	return dir
}

// testMessage builds a message of n bytes (n >= 12) carrying writer, seq and
// a checksum of everything else, so loss, duplication, reordering and
// corruption all show. Shorter messages carry a pattern only.
func testMessage(writer, seq uint32, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(uint32(i)*31 + seq*7 + writer)
	}
	if n >= 12 {
		binary.LittleEndian.PutUint32(b, writer)
		binary.LittleEndian.PutUint32(b[4:], seq)
		binary.LittleEndian.PutUint32(b[8:], crc32.ChecksumIEEE(b[12:]))
	}
	return b
}

func checkMessage(b []byte) (writer, seq uint32, err error) {
	if len(b) < 12 {
		return 0, 0, nil
	}
	writer = binary.LittleEndian.Uint32(b)
	seq = binary.LittleEndian.Uint32(b[4:])
	if crc32.ChecksumIEEE(b[12:]) != binary.LittleEndian.Uint32(b[8:]) {
		return writer, seq, errors.New("checksum mismatch")
	}
	return writer, seq, nil
}

// openProcessWide opens what the process keeps open for good once a link
// has run: the runtime's netpoller descriptors, and the load file the wait
// policy reads (internal/sys, Runnable). A leak check that begins before
// the first link runs calls it, or it counts these as leaks.
func openProcessWide() {
	if r, w, err := os.Pipe(); err == nil {
		r.Close()
		w.Close()
	}
	sys.Runnable()
}
