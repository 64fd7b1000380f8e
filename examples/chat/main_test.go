package main

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The test runs each side as its own process, typing through a pipe: the
// test binary re-executed with asMainEnv set runs main.
const asMainEnv = "CHAT_TEST_AS_MAIN"

func init() {
	if os.Getenv(asMainEnv) == "1" {
		main()
		os.Exit(0)
	}
}

// side is one running chat.
type side struct {
	t     *testing.T
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   chan string
	done  chan error
}

func startSide(t *testing.T, name string) *side {
	cmd := exec.Command(os.Args[0], "room")
	cmd.Env = append(os.Environ(), asMainEnv+"=1", "GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = w
	err = cmd.Start()
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	s := &side{t: t, name: name, cmd: cmd, stdin: stdin, out: make(chan string, 100), done: make(chan error, 1)}
	go func() {
		defer close(s.out)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			t.Logf("%s: %s", name, sc.Text())
			s.out <- sc.Text()
		}
	}()
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-s.done
	})
	return s
}

// expect waits for the side to print a line containing want.
func (s *side) expect(want string) {
	s.t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case line, ok := <-s.out:
			if !ok {
				s.t.Fatalf("%s exited without printing %q", s.name, want)
			}
			if strings.Contains(line, want) {
				return
			}
		case <-timeout:
			s.t.Fatalf("%s did not print %q within 20s", s.name, want)
		}
	}
}

func (s *side) say(line string) { io.WriteString(s.stdin, line+"\n") }

// quit ends the side's input and checks that it exits cleanly.
func (s *side) quit() {
	s.t.Helper()
	s.stdin.Close()
	select {
	case err := <-s.done:
		s.done <- err
		if err != nil {
			s.t.Fatalf("%s: %v", s.name, err)
		}
	case <-time.After(20 * time.Second):
		s.t.Fatalf("%s did not exit within 20s of the end of its input", s.name)
	}
}

func TestChat(t *testing.T) {
	rt := filepath.Join(t.TempDir(), "rt")
	if err := os.Mkdir(rt, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SHMLINK_DIR", rt)

	a := startSide(t, "a")
	a.expect("waiting for a peer on room")
	b := startSide(t, "b")
	b.expect("peer connected")
	a.expect("peer connected")

	a.say("hello from a")
	b.expect("peer: hello from a")
	b.say("hi from b")
	a.expect("peer: hi from b")

	b.quit()
	a.expect("peer disconnected")
	a.expect("waiting for a peer")

	// A new peer is accepted; then the listening side is killed, and the
	// survivor reconnects to whoever listens next.
	c := startSide(t, "c")
	a.expect("peer connected")
	c.expect("peer connected")
	a.cmd.Process.Kill()
	c.expect("peer lost")
	c.expect("waiting for a peer")
	d := startSide(t, "d")
	d.expect("peer connected")
	c.expect("peer connected")
	d.say("after the restart")
	c.expect("peer: after the restart")

	c.quit()
	d.expect("peer disconnected")
	d.quit()
}
