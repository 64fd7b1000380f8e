//go:build linux

package shmlink

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Tests run the other end of a link in a separate process: the test binary
// re-executed with SHMLINK_TEST_CHILD naming a role from childRoles.
const childEnv = "SHMLINK_TEST_CHILD"

func TestMain(m *testing.M) {
	if role := os.Getenv(childEnv); role != "" {
		os.Exit(runChild(role, strings.Fields(os.Getenv(childEnv+"_ARGS"))))
	}
	os.Exit(m.Run())
}

// childRoles are the programs a child process can run. Each prints "ready"
// on stdout once its side is set up, and exits 0 on success.
var childRoles = map[string]func(args []string) error{
	"echo-server": childEchoServer,
	"echo-client": childEchoClient,
	"sink":        childSink,
	"hold":        childHold,
}

func runChild(role string, args []string) int {
	f, ok := childRoles[role]
	if !ok {
		fmt.Fprintf(os.Stderr, "unknown child role %q\n", role)
		return 2
	}
	if err := f(args); err != nil {
		fmt.Fprintf(os.Stderr, "child %s: %v\n", role, err)
		return 1
	}
	return 0
}

func ready() { fmt.Println("ready"); os.Stdout.Sync() }

// childEchoServer listens on args[0] and echoes every message of every
// client until that client closes. With a second argument n, it exits after
// serving n clients.
func childEchoServer(args []string) error {
	l, err := Listen(args[0], nil)
	if err != nil {
		return err
	}
	defer l.Close()
	ready()
	limit := -1
	if len(args) > 1 {
		limit, _ = strconv.Atoi(args[1])
	}
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	for i := 0; i != limit; i++ {
		c, err := l.AcceptLink()
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
	ready()
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
// testMessage) and answers each "?" with the number it has verified.
func childSink(args []string) error {
	c, err := Dial(context.Background(), args[0], nil)
	if err != nil {
		return err
	}
	defer c.Close()
	ready()
	n := 0
	buf := make([]byte, 1<<20)
	for {
		k, err := c.ReadMessageInto(buf)
		if err == io.EOF {
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
	ready()
	io.Copy(io.Discard, os.Stdin)
	return c.Close()
}

// child is a running child process.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan error
}

// startChild runs role in a new process with the test's link directory and
// returns once the child said it is ready.
func startChild(t testing.TB, role string, args ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+role, childEnv+"_ARGS="+strings.Join(args, " "))
	cmd.Stderr = testWriter{t}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ch := &child{cmd: cmd, stdin: stdin, done: make(chan error, 1)}
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- s
		io.Copy(io.Discard, stdout)
		ch.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		<-ch.done
	})
	select {
	case s := <-line:
		if s != "ready\n" {
			t.Fatalf("child %s did not start: %q", role, s)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("child %s not ready after 30s", role)
	}
	return ch
}

// wait waits for the child to exit and fails the test if it failed.
func (ch *child) wait(t testing.TB) {
	t.Helper()
	ch.stdin.Close()
	select {
	case err := <-ch.done:
		ch.done <- err
		if err != nil {
			t.Fatalf("child: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("child did not exit within 60s")
	}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Logf("child: %s", strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// linkDir points the link runtime directory at a fresh 0700 directory for
// this test; children inherit it through the environment.
func linkDir(t testing.TB) string {
	dir := filepath.Join(t.TempDir(), "rt")
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
