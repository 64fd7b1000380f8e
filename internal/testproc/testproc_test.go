package testproc_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shmlink/shmlink/internal/testproc"
)

func TestMain(m *testing.M) {
	testproc.Main(m, map[string]func(args []string) error{
		"args":      printArgs,
		"env":       func(args []string) error { fmt.Println(os.Getenv(args[0])); return nil },
		"fail":      func([]string) error { return errors.New("failed on purpose") },
		"exit":      func(args []string) error { n, _ := strconv.Atoi(args[0]); os.Exit(n); return nil },
		"upper":     upper,
		"hang":      hang,
		"spawn":     spawn,
		"program":   testproc.Program(programMain),
		"exec-peer": execPeer,
	})
}

// printArgs prints each argument quoted, one a line.
func printArgs(args []string) error {
	for _, a := range args {
		fmt.Println(strconv.Quote(a))
	}
	return nil
}

// upper says ready, then copies stdin to stdout in upper case.
func upper([]string) error {
	testproc.Ready()
	b := make([]byte, 4096)
	for {
		n, err := os.Stdin.Read(b)
		os.Stdout.WriteString(strings.ToUpper(string(b[:n])))
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// hang says ready and never returns, whatever comes on stdin. (It sleeps:
// with select {} the runtime would see a deadlock and end it.)
func hang([]string) error {
	testproc.Ready()
	for {
		time.Sleep(time.Hour)
	}
}

// spawn starts a copy of itself that inherits stdout and stderr, prints
// the copy's pid, says ready, and hangs; the copy hangs too.
func spawn(args []string) error {
	if len(args) > 0 {
		return hang(nil)
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(exe, "again")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	fmt.Println(cmd.Process.Pid)
	return hang(nil)
}

// programMain is a program's main: it prints its command line, and with
// the argument "twice" runs itself again, as some programs do.
func programMain() {
	fmt.Printf("%q\n", os.Args[1:])
	if len(os.Args) == 2 && os.Args[1] == "twice" {
		exe, _ := os.Executable()
		cmd := exec.Command(exe, "second", "time round")
		cmd.Stdout = os.Stdout
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
	}
}

func TestArgumentsSurvive(t *testing.T) {
	args := []string{"two words", "", "  padded  ", "new\nline", "-test.run=X", "*", "$HOME", `"quoted"`, "tab\there"}
	p := testproc.Start(t, "args", args...)
	p.Wait(t)
	for _, want := range args {
		if got := p.Stdout.Next(t); got != strconv.Quote(want) {
			t.Errorf("argument came as %s, want %q", got, want)
		}
	}
	if rest := p.Stdout.All(t); strings.Count(rest, "\n") != len(args) {
		t.Errorf("output %q, want %d lines", rest, len(args))
	}
}

func TestExitStatus(t *testing.T) {
	ok := testproc.Start(t, "args")
	if code := ok.ExitCode(t); code != 0 {
		t.Errorf("a role that returns nil exits %d", code)
	}
	fail := testproc.Start(t, "fail")
	if code := fail.ExitCode(t); code != 1 {
		t.Errorf("a role that returns an error exits %d, want 1", code)
	}
	if line := fail.Stderr.Next(t); line != "fail: failed on purpose" {
		t.Errorf("stderr %q, want the role and its error", line)
	}
	unknown := testproc.Start(t, "no-such-role")
	if code := unknown.ExitCode(t); code != 2 {
		t.Errorf("an unknown role exits %d, want 2", code)
	}
	unknown.Stderr.Expect(t, `unknown role "no-such-role"`)
	var ee *exec.ExitError
	if err := testproc.Start(t, "exit", "7").Exit(t); !errors.As(err, &ee) || ee.ExitCode() != 7 {
		t.Errorf("os.Exit(7) in a role: %v", err)
	}
}

func TestEnvAndStdin(t *testing.T) {
	p := testproc.Options{Env: []string{"TESTPROC_TEST=a b  c"}}.Start(t, "env", "TESTPROC_TEST")
	if got := p.Stdout.Next(t); got != "a b  c" {
		t.Errorf("env: %q", got)
	}
	p.Wait(t)
	p = testproc.Start(t, "env", "GORACE")
	if got := p.Stdout.Next(t); !strings.Contains(got, "atexit_sleep_ms=0") {
		t.Errorf("GORACE in a child is %q", got)
	}

	p = testproc.Options{Stdin: strings.NewReader("from a reader\nno newline")}.Start(t, "upper")
	p.Wait(t)
	if got := p.Stdout.All(t); got != "ready\nFROM A READER\nNO NEWLINE" {
		t.Errorf("stdout %q", got)
	}
}

func TestReadyStdinAndLines(t *testing.T) {
	p := testproc.Options{WaitReady: true}.Start(t, "upper")
	io.WriteString(p.Stdin, "one\ntwo\nthree\nfour, ")
	if got := p.Stdout.Next(t); got != "ONE" {
		t.Errorf("first line %q", got)
	}
	if got := p.Stdout.Expect(t, "HRE"); got != "THREE" {
		t.Errorf("expected THREE, got %q", got)
	}
	// A line comes whole: the rest of this one only comes with the end.
	io.WriteString(p.Stdin, "five")
	p.Stdin.Close()
	if got := p.Stdout.Next(t); got != "FOUR, FIVE" {
		t.Errorf("last line %q", got)
	}
	p.Wait(t)
	if got := p.Stdout.All(t); got != "ready\nONE\nTWO\nTHREE\nFOUR, FIVE" {
		t.Errorf("all of stdout: %q", got)
	}
}

func TestStdoutToFile(t *testing.T) {
	f, err := os.Create(filepath.Join(testproc.TempDir(t), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := testproc.Options{Stdout: f}.Start(t, "args", "to a file")
	p.Wait(t)
	if p.Stdout != nil {
		t.Error("Stdout is read although it went to a file")
	}
	if b, err := os.ReadFile(f.Name()); err != nil || string(b) != "\"to a file\"\n" {
		t.Errorf("file holds %q, %v", b, err)
	}
}

// TestProgram: a program's main sees its own command line, and a copy of
// the program that it starts runs main too.
func TestProgram(t *testing.T) {
	p := testproc.Start(t, "program", "twice")
	p.Wait(t)
	for _, want := range []string{`["twice"]`, `["second" "time round"]`} {
		if got := p.Stdout.Next(t); got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	}
}

// TestKill: Kill ends a child that would never end by itself, with the
// status this OS gives a killed process.
func TestKill(t *testing.T) {
	p := testproc.Options{WaitReady: true}.Start(t, "hang")
	p.Kill(t)
	if err := p.Exit(t); !killedStatus(err) {
		t.Errorf("exit after a kill: %v, want %s", err, killedWant)
	}
}

// TestKillHard: KillHard ends a child that would never end by itself.
func TestKillHard(t *testing.T) {
	p := testproc.Options{WaitReady: true}.Start(t, "hang")
	p.KillHard(t)
	if err := p.Exit(t); !hardKilledStatus(err) {
		t.Errorf("exit after a hard kill: %v, want %s", err, hardKilledWant)
	}
}

// TestOpenHandles: files opened show in the count, and are gone from it
// once closed. A hundred of them, for a margin over what the runtime opens
// meanwhile.
func TestOpenHandles(t *testing.T) {
	const files = 100
	count := func() int {
		t.Helper()
		n, err := testproc.OpenHandles()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := count()
	var fs []*os.File
	for range files {
		f, err := os.Open(os.Args[0])
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, f)
	}
	during := count()
	for _, f := range fs {
		f.Close()
	}
	after := count()
	// The runtime opens handles of its own meanwhile (a thread's, under
	// Wine: 147 open, 49 after closing, from 47, failed a CI run), so the
	// files must show, give or take slack.
	const slack = files / 10
	if during-before < files-slack || during-after < files-slack {
		t.Errorf("handles: %d before opening %d files, %d open, %d after closing", before, files, during, after)
	}
}

// TestCleanup: the end of a test kills its children, even one that
// ignores its input and has a child of its own holding its output open.
func TestCleanup(t *testing.T) {
	var p *testproc.Proc
	var grandchild int
	t.Run("child", func(t *testing.T) {
		p = testproc.Start(t, "spawn")
		// The grandchild's ready line may come before or after the pid.
		for grandchild == 0 {
			if line := p.Stdout.Next(t); line != "ready" {
				pid, err := strconv.Atoi(line)
				if err != nil {
					t.Fatal(err)
				}
				grandchild = pid
			}
		}
		p.Stdout.Expect(t, "ready")
	})
	if p == nil {
		return // the child did not start: the subtest has failed already
	}
	if grandchild != 0 {
		if g, err := os.FindProcess(grandchild); err == nil {
			defer g.Kill()
		}
	}
	if err := p.Exit(t); !killedStatus(err) {
		t.Errorf("after its test the child ended with %v, want %s", err, killedWant)
	}
}

// TestCommand: a command to start by hand runs the role with its
// arguments as they are.
func TestCommand(t *testing.T) {
	out, err := testproc.Command(t, "args", "one arg", "").Output()
	if err != nil || string(out) != "\"one arg\"\n\"\"\n" {
		t.Errorf("got %q, %v", out, err)
	}
	if err := testproc.Command(t, "fail").Run(); err == nil || !strings.Contains(err.Error(), "exit status 1") {
		t.Errorf("failing role: %v", err)
	}
}

// fakeTB records the first failure and ends the goroutine, as FailNow
// does; everything else goes to the real test.
type fakeTB struct {
	testing.TB
	failure string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatal(args ...any) {
	f.failure = fmt.Sprint(args...)
	runtime.Goexit()
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failure = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// failure runs f with a fakeTB and returns how it failed ("" if it did not).
func failure(t *testing.T, f func(tb testing.TB)) string {
	tb := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(tb)
	}()
	<-done
	return tb.failure
}

func TestFailures(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    func(tb testing.TB)
		want string
	}{
		{"not-ready", func(tb testing.TB) { testproc.Options{WaitReady: true}.Start(tb, "args", "hello") }, `its first line is "\"hello\""`},
		{"exits-before-ready", func(tb testing.TB) { testproc.Options{WaitReady: true}.Start(tb, "fail") }, "ended without a line"},
		{"wait-on-failure", func(tb testing.TB) { testproc.Start(tb, "fail").Wait(tb) }, "exit status 1"},
		{"expect-at-end", func(tb testing.TB) { testproc.Start(tb, "args", "x").Stdout.Expect(tb, "y") }, `ended without a line containing "y"`},
		{"line-timeout", func(tb testing.TB) {
			testproc.Options{Timeout: 100 * time.Millisecond}.Start(tb, "hang").Stdout.Expect(tb, "never")
		}, `waited 100ms for a line containing "never"`},
		{"exit-timeout", func(tb testing.TB) { testproc.Options{Timeout: 100 * time.Millisecond}.Start(tb, "hang").Wait(tb) }, "did not exit within 100ms"},
		{"kill-after-exit", func(tb testing.TB) {
			p := testproc.Start(tb, "args")
			p.Wait(tb)
			p.Kill(tb)
		}, "kill args"},
		{"stdout-twice", func(tb testing.TB) { testproc.Options{WaitReady: true, Stdout: os.Stderr}.Start(tb, "args") }, "WaitReady"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := failure(t, tc.f)
			if !strings.Contains(got, tc.want) {
				t.Errorf("failure %q, want one containing %q", got, tc.want)
			}
		})
	}
}

// TestExec runs a program other than a role under the same harness:
// ready line, stdin, output lines, exit status. The program is this test
// binary run as a plain program (envChild names the role, which is how a
// program that re-executes itself runs), so that it exists on every OS.
func TestExec(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := testproc.Options{WaitReady: true, Env: []string{"SHMLINK_TESTPROC=exec-peer", "TESTPROC_X=x"}}.Exec(t, exe)
	fmt.Fprintln(p.Stdin, "hello")
	if line := p.Stdout.Next(t); line != "got hello x" {
		t.Fatalf("line %q", line)
	}
	if code := p.ExitCode(t); code != 3 {
		t.Fatalf("exit code %d, want 3", code)
	}
	if want := filepath.Base(exe); p.String() != want {
		t.Errorf("name %q, want %s", p.String(), want)
	}
}

// execPeer says ready, reads a line and answers it with $TESTPROC_X, then
// exits 3.
func execPeer([]string) error {
	testproc.Ready()
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil {
		return err
	}
	fmt.Printf("got %s %s\n", strings.TrimSpace(line), os.Getenv("TESTPROC_X"))
	os.Exit(3)
	return nil
}
