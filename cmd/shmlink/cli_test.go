package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The tests run the command as separate processes: the test binary
// re-executed with asMainEnv set runs main instead of the tests, so the
// race detector and coverage see the command's code too.
const asMainEnv = "SHMLINK_CMD_TEST_AS_MAIN"

func init() {
	if os.Getenv(asMainEnv) == "1" {
		main()
	}
}

// childEnv is the environment of a command run by a test. Under the race
// detector it drops the detector's default one-second sleep at exit, which
// would dominate the run time.
func childEnv() []string {
	return append(os.Environ(), asMainEnv+"=1", "GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0")
}

// cliDir gives the test its own link directory; the commands inherit it.
func cliDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rt")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SHMLINK_DIR", dir)
}

// proc is a running shmlink command.
type proc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout chan string // lines, unless stdout went to a file
	stderr chan string
	done   chan error // receives the exit once; see wait
}

// start runs shmlink with args. If out is not nil the command's stdout goes
// there, else its lines come on p.stdout.
func start(t *testing.T, in io.Reader, out *os.File, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = childEnv()
	p := &proc{cmd: cmd, done: make(chan error, 1)}
	var err error
	if in != nil {
		cmd.Stdin = in
	} else if p.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	// Our own pipes rather than cmd's: Wait must not close them before
	// every line is read.
	var ours []*os.File
	if out != nil {
		cmd.Stdout = out
	} else {
		r, w := pipe(t)
		cmd.Stdout, ours = w, append(ours, w)
		p.stdout = lines(t, "stdout", r)
	}
	r, w := pipe(t)
	cmd.Stderr, ours = w, append(ours, w)
	p.stderr = lines(t, "stderr", r)
	err = cmd.Start()
	for _, f := range ours {
		f.Close() // the child has them now
	}
	if err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		p.wait(t)
	})
	return p
}

func pipe(t *testing.T) (r, w *os.File) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	return r, w
}

// lines delivers the lines read from r, logging them, and closes the
// channel and r at the end of r.
func lines(t *testing.T, what string, r *os.File) chan string {
	ch := make(chan string, 1024)
	go func() {
		defer close(ch)
		defer r.Close()
		s := bufio.NewScanner(r)
		s.Buffer(make([]byte, 64<<10), 1<<30)
		for s.Scan() {
			t.Logf("%s: %.100q", what, s.Text())
			ch <- s.Text()
		}
	}()
	return ch
}

// next returns the next line on ch.
func next(t *testing.T, ch chan string) string {
	t.Helper()
	select {
	case line, ok := <-ch:
		if !ok {
			t.Fatal("output ended early")
		}
		return line
	case <-time.After(20 * time.Second):
		t.Fatal("no line within 20s")
	}
	return ""
}

// expect waits for a line containing want on ch and returns it.
func expect(t *testing.T, ch chan string, want string) string {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case line, ok := <-ch:
			if !ok {
				t.Fatalf("output ended without a line containing %q", want)
			}
			if strings.Contains(line, want) {
				return line
			}
		case <-timeout:
			t.Fatalf("no line containing %q within 20s", want)
		}
	}
}

// wait waits for the command to exit and returns its exit code.
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(30 * time.Second):
		t.Fatalf("%v did not exit within 30s", p.cmd.Args[1:])
		return -1
	}
}

// expectExit waits for the command to exit and fails the test unless it
// exits with code.
func (p *proc) expectExit(t *testing.T, code int) {
	t.Helper()
	if got := p.wait(t); got != code {
		t.Fatalf("%v exited %d, want %d", p.cmd.Args[1:], got, code)
	}
}

// runCLI runs a short command to its end.
func runCLI(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = childEnv()
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return o.String(), e.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), 0
}

func TestCopyFile(t *testing.T) {
	cliDir(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	data := make([]byte, 20<<20+12345)
	rand.NewChaCha8([32]byte{4}).Read(data)
	if err := os.WriteFile(in, data, 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()

	// The client first: --wait has it connect when the server appears.
	dial := start(t, src, nil, "dial", "--wait", "copy")
	expect(t, dial.stderr, "waiting for copy")
	listen := start(t, nil, dst, "listen", "copy") // stdin stays open
	expect(t, listen.stderr, "peer closed")
	listen.expectExit(t, 0)
	dial.expectExit(t, 0)
	got, err := os.ReadFile(dst.Name())
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("copied %d bytes of %d, and they differ", len(got), len(data))
	}
}

func TestMessages(t *testing.T) {
	cliDir(t)
	listen := start(t, nil, nil, "listen", "--messages", "chat")
	expect(t, listen.stderr, "listening on chat")
	dial := start(t, nil, nil, "dial", "--messages", "chat")
	expect(t, dial.stderr, "connected")

	io.WriteString(listen.stdin, "from the server\n")
	expect(t, dial.stdout, "from the server")
	long := strings.Repeat("x", 200<<10) // longer than the line reader's buffer
	io.WriteString(dial.stdin, "hello\n\n"+long+"\nno newline at the end")
	dial.stdin.Close()
	for _, want := range []string{"hello", "", long, "no newline at the end"} {
		if got := next(t, listen.stdout); got != want {
			t.Fatalf("listen printed %.40q, want %.40q", got, want)
		}
	}
	expect(t, listen.stderr, "peer closed")
	listen.expectExit(t, 0)
	dial.expectExit(t, 0)
}

func TestPeerLost(t *testing.T) {
	cliDir(t)
	listen := start(t, nil, nil, "listen", "lost")
	expect(t, listen.stderr, "listening on")
	dial := start(t, nil, nil, "dial", "lost")
	expect(t, listen.stderr, "connected")
	dial.cmd.Process.Kill()
	expect(t, listen.stderr, "peer lost")
	listen.expectExit(t, 1)
}

func TestLsShowsLiveAndStale(t *testing.T) {
	cliDir(t)
	listen := start(t, nil, nil, "listen", "shown")
	expect(t, listen.stderr, "listening on")
	pid := strconv.Itoa(listen.cmd.Process.Pid)

	out, _, code := runCLI(t, "", "ls")
	if f := lsRow(out, "shown"); code != 0 || len(f) < 5 || f[1] != pid || f[2] != "0" || f[len(f)-1] != "live" {
		t.Fatalf("ls exited %d:\n%s\nwant shown served by pid %s, live", code, out, pid)
	}
	out, _, code = runCLI(t, "", "stat", "shown")
	if code != 0 || !strings.Contains(out, "pid "+pid) {
		t.Fatalf("stat exited %d:\n%s", code, out)
	}

	listen.cmd.Process.Kill() // SIGKILL: the socket file stays behind
	listen.wait(t)
	out, _, code = runCLI(t, "", "ls")
	if f := lsRow(out, "shown"); code != 0 || len(f) == 0 || f[len(f)-1] != "stale" {
		t.Fatalf("ls exited %d after kill -9 of the server:\n%s\nwant shown marked stale", code, out)
	}
}

// lsRow returns the fields of the row for name in ls output.
func lsRow(out, name string) []string {
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == name {
			return f
		}
	}
	return nil
}

func TestUsageAndErrors(t *testing.T) {
	cliDir(t)
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string // a substring of stdout
		stderr string // the whole of stderr is one line containing this
	}{
		{args: nil, code: 2},
		{args: []string{"--help"}, stdout: "commands:"},
		{args: []string{"help", "ls"}, stdout: "usage: shmlink ls"},
		{args: []string{"frobnicate"}, code: 2, stderr: `unknown command "frobnicate"`},
		{args: []string{"listen", "--help"}, stdout: "usage: shmlink listen"},
		{args: []string{"dial", "-h"}, stdout: "-wait"},
		{args: []string{"stat", "--help"}, stdout: "usage: shmlink stat"},
		{args: []string{"ls", "--help"}, stdout: "usage: shmlink ls"},
		{args: []string{"dial"}, code: 2, stderr: "shmlink dial: missing argument"},
		{args: []string{"dial", "--bogus", "x"}, code: 2, stderr: "not defined: -bogus"},
		{args: []string{"ls", "extra"}, code: 2, stderr: `unexpected argument "extra"`},
		{args: []string{"dial", "nobody"}, code: 1, stderr: "no server listening"},
		// Not "gave up waiting" yet: see TestDialWaitDeadlineGivesErrNoServer.
		{args: []string{"dial", "-q", "--timeout=200ms", "--wait", "nobody"}, code: 1, stderr: `dial "nobody"`},
		{args: []string{"stat", "nobody"}, code: 1, stderr: "no server listening"},
		{args: []string{"listen", "../escape"}, code: 1, stderr: "invalid"},
	} {
		out, errOut, code := runCLI(t, "", tc.args...)
		if code != tc.code || !strings.Contains(out, tc.stdout) {
			t.Errorf("shmlink %q: exit %d, stdout %q; want exit %d, stdout containing %q",
				tc.args, code, out, tc.code, tc.stdout)
		}
		if tc.stderr != "" && (!strings.Contains(errOut, tc.stderr) || strings.Count(errOut, "\n") != 1) {
			t.Errorf("shmlink %q: stderr %q; want one line containing %q", tc.args, errOut, tc.stderr)
		}
	}
}
