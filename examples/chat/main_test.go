package main

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/shmlink/shmlink/internal/testproc"
)

// The test runs each side as its own process, typing through a pipe: the
// test binary re-executed as the role "chat" runs main.
func TestMain(m *testing.M) {
	testproc.Main(m, map[string]func([]string) error{"chat": testproc.Program(main)})
}

// startSide runs one chat in the room, logged as name.
func startSide(t *testing.T, name string) *testproc.Proc {
	t.Helper()
	return testproc.Options{Name: name}.Start(t, "chat", "room")
}

// typeLine types line into the side's input.
func typeLine(p *testproc.Proc, line string) { io.WriteString(p.Stdin, line+"\n") }

// quit ends the side's input and checks that it exits cleanly.
func quit(t *testing.T, p *testproc.Proc) {
	t.Helper()
	p.Stdin.Close()
	p.Wait(t)
}

func TestChat(t *testing.T) {
	rt := filepath.Join(testproc.TempDir(t), "rt")
	if err := os.Mkdir(rt, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SHMLINK_DIR", rt)

	a := startSide(t, "a")
	a.Stdout.Expect(t, "waiting for a peer on room")
	b := startSide(t, "b")
	b.Stdout.Expect(t, "peer connected")
	a.Stdout.Expect(t, "peer connected")

	typeLine(a, "hello from a")
	b.Stdout.Expect(t, "peer: hello from a")
	typeLine(b, "hi from b")
	a.Stdout.Expect(t, "peer: hi from b")

	quit(t, b)
	a.Stdout.Expect(t, "peer disconnected")
	a.Stdout.Expect(t, "waiting for a peer")

	// A new peer is accepted; then the listening side is killed, and the
	// survivor reconnects to whoever listens next.
	c := startSide(t, "c")
	a.Stdout.Expect(t, "peer connected")
	c.Stdout.Expect(t, "peer connected")
	a.Kill(t)
	c.Stdout.Expect(t, "peer lost")
	c.Stdout.Expect(t, "waiting for a peer")
	d := startSide(t, "d")
	d.Stdout.Expect(t, "peer connected")
	c.Stdout.Expect(t, "peer connected")
	typeLine(d, "after the restart")
	c.Stdout.Expect(t, "peer: after the restart")

	quit(t, c)
	d.Stdout.Expect(t, "peer disconnected")
	quit(t, d)
}
