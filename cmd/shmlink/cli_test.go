package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shmlink/shmlink"
	"github.com/shmlink/shmlink/internal/testns"
	"github.com/shmlink/shmlink/internal/testproc"
)

// The tests run the command as separate processes: the test binary
// re-executed as the role "shmlink" runs main instead of the tests, so the
// race detector and coverage see the command's code too; in a container,
// too (internal/testns).
func TestMain(m *testing.M) {
	testproc.Main(m, testns.Roles(map[string]func([]string) error{"shmlink": testproc.Program(main)}))
}

// cliDir gives the test its own link directory; the commands inherit it.
func cliDir(t *testing.T) {
	dir := filepath.Join(testproc.TempDir(t), "rt")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SHMLINK_DIR", dir)
}

// start runs shmlink with args. If out is not nil the command's stdout goes
// there, else its lines come on p.Stdout; if in is nil, p.Stdin is a pipe.
func start(t *testing.T, in io.Reader, out *os.File, args ...string) *testproc.Proc {
	t.Helper()
	name := strings.Join(append([]string{"shmlink"}, args...), " ")
	return testproc.Options{Name: name, Stdin: in, Stdout: out}.Start(t, "shmlink", args...)
}

// expectExit waits for the command to exit and fails the test unless it
// exits with code.
func expectExit(t *testing.T, p *testproc.Proc, code int) {
	t.Helper()
	if got := p.ExitCode(t); got != code {
		t.Fatalf("%v exited %d, want %d", p, got, code)
	}
}

// runCLI runs a short command to its end.
func runCLI(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	p := start(t, strings.NewReader(stdin), nil, args...)
	code = p.ExitCode(t)
	return p.Stdout.All(t), p.Stderr.All(t), code
}

func TestCopyFile(t *testing.T) {
	cliDir(t)
	dir := testproc.TempDir(t)
	in := filepath.Join(dir, "in")
	data := make([]byte, 50<<20+12345)
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
	dial.Stderr.Expect(t, "waiting for copy")
	listen := start(t, nil, dst, "listen", "copy") // stdin stays open
	listen.Stderr.Expect(t, "peer closed")
	expectExit(t, listen, 0)
	expectExit(t, dial, 0)
	got, err := os.ReadFile(dst.Name())
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("copied %d bytes of %d, and they differ", len(got), len(data))
	}
}

// TestHalfClose: as with netcat, a side whose input is at its end still
// prints what the peer sends, and an answer comes back after the request's
// end of file.
func TestHalfClose(t *testing.T) {
	cliDir(t)
	dir := testproc.TempDir(t)
	out, err := os.Create(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	// The server's input is empty: it half-closes at once and receives.
	listen := start(t, strings.NewReader(""), out, "listen", "half")
	listen.Stderr.Expect(t, "listening on half")
	dial := start(t, strings.NewReader("request\n"), nil, "dial", "half")
	expectExit(t, dial, 0)
	expectExit(t, listen, 0)
	if got, _ := os.ReadFile(out.Name()); string(got) != "request\n" {
		t.Fatalf("server with empty input received %q", got)
	}
}

// TestStatShowsLiveLink: while listen serves a client it keeps its name, so
// stat (another process) shows the link's live counters, and a second
// client is refused with the reason.
func TestStatShowsLiveLink(t *testing.T) {
	listen, dial := messagePair(t, "live")
	for _, line := range []string{"one", "two", "three"} {
		io.WriteString(dial.Stdin, line+"\n")
		listen.Stdout.Expect(t, line)
	}
	out, errOut, code := runCLI(t, "", "stat", "--json", "live")
	if code != 0 {
		t.Fatalf("stat: exit %d: %s", code, errOut)
	}
	var st struct {
		Clients int
		Links   []struct {
			PeerPID  int
			RingSize int
			Received struct{ Messages, Bytes uint64 }
		}
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("stat --json: %v\n%s", err, out)
	}
	if st.Clients != 1 || len(st.Links) != 1 || st.Links[0].PeerPID != dial.Pid() ||
		st.Links[0].Received.Messages != 3 || st.Links[0].Received.Bytes != 11 {
		t.Fatalf("stat shows %+v; want one link from pid %d that received 3 messages, 11 bytes", st, dial.Pid())
	}
	_, errOut, code = runCLI(t, "", "dial", "live")
	if code != 1 || !strings.Contains(errOut, "busy") {
		t.Errorf("second client: exit %d, %q; want a refusal saying the server is busy", code, errOut)
	}
	dial.Stdin.Close()
	expectExit(t, dial, 0)
	expectExit(t, listen, 0)
}

// TestReadyFD: a supervisor learns that listen is up from a descriptor, not
// by parsing its messages.
func TestReadyFD(t *testing.T) {
	cliDir(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd := testproc.Command(t, "shmlink")
	cmd.Args = append(cmd.Args, "listen", "-q", "--ready-fd", inherit(cmd, w), "ready")
	stdin, _ := cmd.StdinPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	defer func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() }()
	r.SetReadDeadline(time.Now().Add(testproc.DefaultTimeout))
	got, err := io.ReadAll(r)
	if err != nil || string(got) != "ready\n" {
		t.Fatalf("ready descriptor said %q, %v", got, err)
	}
	if _, err := shmlink.Probe(context.Background(), "ready"); err != nil {
		t.Fatalf("ready, but not listening: %v", err)
	}
}

// messagePair starts listen and dial on name, one message per line, and
// returns them connected.
func messagePair(t *testing.T, name string) (listen, dial *testproc.Proc) {
	t.Helper()
	cliDir(t)
	listen = start(t, nil, nil, "listen", "--messages", name)
	listen.Stderr.Expect(t, "listening on "+name)
	dial = start(t, nil, nil, "dial", "--messages", name)
	dial.Stderr.Expect(t, "connected")
	return listen, dial
}

func TestMessages(t *testing.T) {
	listen, dial := messagePair(t, "chat")

	io.WriteString(listen.Stdin, "from the server\n")
	dial.Stdout.Expect(t, "from the server")
	long := strings.Repeat("x", 200<<10) // longer than the line reader's buffer
	io.WriteString(dial.Stdin, "hello\n\n"+long+"\nno newline at the end")
	dial.Stdin.Close()
	for _, want := range []string{"hello", "", long, "no newline at the end"} {
		if got := listen.Stdout.Next(t); got != want {
			t.Fatalf("listen printed %.40q, want %.40q", got, want)
		}
	}
	listen.Stderr.Expect(t, "peer closed")
	expectExit(t, listen, 0)
	expectExit(t, dial, 0)
}

func TestPeerLost(t *testing.T) {
	cliDir(t)
	listen := start(t, nil, nil, "listen", "lost")
	listen.Stderr.Expect(t, "listening on")
	dial := start(t, nil, nil, "dial", "lost")
	listen.Stderr.Expect(t, "connected")
	dial.Kill(t)
	listen.Stderr.Expect(t, "peer lost")
	expectExit(t, listen, 3)
}

// TestLsShowsLiveAndStale: ls shows a live server's name with its pid, and
// what is left of it once the server was killed (checkKilledRow: a stale
// socket on Linux, nothing on Windows).
func TestLsShowsLiveAndStale(t *testing.T) {
	cliDir(t)
	listen := start(t, nil, nil, "listen", "shown")
	listen.Stderr.Expect(t, "listening on")
	pid := strconv.Itoa(listen.Pid())

	out, _, code := runCLI(t, "", "ls")
	if f := lsRow(out, "shown"); code != 0 || len(f) < 5 || f[1] != pid || f[2] != "0" || f[len(f)-1] != "live" {
		t.Fatalf("ls exited %d:\n%s\nwant shown served by pid %s, live", code, out, pid)
	}
	out, _, code = runCLI(t, "", "stat", "shown")
	if code != 0 || !strings.Contains(out, "pid "+pid) {
		t.Fatalf("stat exited %d:\n%s", code, out)
	}

	listen.Kill(t)
	listen.Exit(t)
	out, _, code = runCLI(t, "", "ls")
	if code != 0 {
		t.Fatalf("ls exited %d after a kill of the server:\n%s", code, out)
	}
	checkKilledRow(t, lsRow(out, "shown"), out)
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
		{args: []string{"dial", "-q", "--timeout=200ms", "--wait", "nobody"}, code: 1, stderr: "dial shmlink nobody"},
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
