package testproc

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// DefaultTimeout bounds every wait on a child unless Options.Timeout says
// otherwise: for its ready line, a line of output, the end of its output,
// its exit.
const DefaultTimeout = 30 * time.Second

// drainGrace is how long the output of a child that exited may take to
// reach its end: a process the child started may hold the pipes open.
const drainGrace = time.Second

// Options say how Start runs a child. The zero value runs it with stdin and
// stdout as pipes, and returns at once.
type Options struct {
	// Name names the child in the test log and in failures; by default it
	// is the role.
	Name string
	// Env adds "KEY=value" entries to the environment the child inherits.
	Env []string
	// Stdin is the child's stdin; if nil, it is a pipe: Proc.Stdin.
	Stdin io.Reader
	// Stdout takes the child's stdout; if nil, Proc.Stdout reads it.
	Stdout *os.File
	// WaitReady has Start return only once the child's first line on
	// stdout is "ready" (see Ready), and fail the test if it is not.
	WaitReady bool
	// Timeout replaces DefaultTimeout.
	Timeout time.Duration
	// SysProcAttr, if set, is how the OS starts the child
	// (exec.Cmd.SysProcAttr): new namespaces, say.
	SysProcAttr *syscall.SysProcAttr
}

// Proc is a running child. Its cleanup, at the end of the test that
// started it, closes its stdin, kills it, reaps it and stops reading its
// output.
type Proc struct {
	// Stdin is the write end of the child's stdin, unless Options.Stdin
	// gave it one. Closing it is how a test tells most roles to finish.
	Stdin io.WriteCloser
	// Stdout is the child's stdout, unless Options.Stdout took it.
	Stdout *Lines
	// Stderr is the child's stderr. Every line of it is also logged.
	Stderr *Lines

	name    string
	cmd     *exec.Cmd
	timeout time.Duration
	log     *logger
	exited  chan struct{} // closed once err is set and the output drained
	err     error         // what cmd.Wait returned

	unixPidFile string // under Wine: where the child writes its Linux pid (KillHard)
}

// Start runs role in a child with args and the zero Options.
func Start(t testing.TB, role string, args ...string) *Proc {
	t.Helper()
	return Options{}.Start(t, role, args...)
}

// Start runs role in a child with args, as o says.
func (o Options) Start(t testing.TB, role string, args ...string) *Proc {
	t.Helper()
	return o.start(t, role, command(t, role, args, o.Env), true)
}

// Exec runs the program at path with args in a child, as o says: a
// program that is not this test binary (one compiled by the test, say),
// with the same pipes, deadlines and cleanup. A program that prints
// "ready" as its first line can be waited for with WaitReady.
func (o Options) Exec(t testing.TB, path string, args ...string) *Proc {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), o.Env...)
	return o.start(t, filepath.Base(path), cmd, false)
}

// start starts cmd; role says whether it runs a role (this test binary
// under Main), which can do what KillHard needs.
func (o Options) start(t testing.TB, name string, cmd *exec.Cmd, role bool) *Proc {
	t.Helper()
	if o.WaitReady && o.Stdout != nil {
		t.Fatal("testproc: WaitReady needs to read stdout, and Options.Stdout takes it")
	}
	p := &Proc{name: o.Name, timeout: o.Timeout, exited: make(chan struct{})}
	if p.name == "" {
		p.name = name
	}
	if p.timeout <= 0 {
		p.timeout = DefaultTimeout
	}
	p.cmd = cmd
	if role {
		p.cmd.Env = append(p.cmd.Env, p.childEnv()...)
	}
	p.cmd.SysProcAttr = o.SysProcAttr
	p.log = newLogger(t)

	// Our own pipes for the output rather than exec's: the child's exit
	// must not cut off the reading of what it wrote.
	errR, errW := pipe(t)
	p.cmd.Stderr = errW
	ours, theirs := []*os.File{errR}, []*os.File{errW}
	var outR *os.File
	if o.Stdout != nil {
		p.cmd.Stdout = o.Stdout
	} else {
		var outW *os.File
		outR, outW = pipe(t)
		p.cmd.Stdout = outW
		ours, theirs = append(ours, outR), append(theirs, outW)
	}
	var err error
	if o.Stdin != nil {
		p.cmd.Stdin = o.Stdin
	} else if p.Stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	err = p.cmd.Start()
	// Wine's process creation fails now and then ("fork/exec ...:
	// Internal error."), seen in CI about once in a few dozen runs of the
	// Windows step; a second try starts the child.
	for try := 1; err != nil && UnderWine && try < 3; try++ {
		p.log.logf("testproc: start %s failed under Wine (%v); trying again", p.name, err)
		p.cmd = again(p.cmd, o.Stdin)
		if o.Stdin == nil {
			// The failed Start closed both ends of the last pipe.
			if p.Stdin, err = p.cmd.StdinPipe(); err != nil {
				break
			}
		}
		err = p.cmd.Start()
	}
	for _, f := range theirs {
		f.Close() // the child has them now
	}
	if err != nil {
		for _, f := range ours {
			f.Close()
		}
		t.Fatalf("testproc: start %s: %v", p.name, err)
	}
	if outR != nil {
		p.Stdout = p.read(outR, "stdout", func(line string) { p.log.logf("%s stdout: %.200q", p.name, line) })
	}
	p.Stderr = p.read(errR, "stderr", func(line string) { p.log.logf("%s: %s", p.name, line) })
	go p.wait()
	t.Cleanup(func() { p.cleanup(t) })
	if o.WaitReady {
		if line := p.Stdout.Next(t); line != readyLine {
			t.Fatalf("%s did not start: its first line is %q, not %q", p.name, line, readyLine)
		}
	}
	return p
}

// again returns a copy of cmd that has not been started, with stdin as
// its input (nil: none yet), for a second Start: a Cmd whose Start failed
// cannot be started again. Its output files are ours and stay open.
func again(cmd *exec.Cmd, stdin io.Reader) *exec.Cmd {
	c := exec.Command(cmd.Path)
	c.Args, c.Env, c.Dir = cmd.Args, cmd.Env, cmd.Dir
	c.Stdin, c.Stdout, c.Stderr = stdin, cmd.Stdout, cmd.Stderr
	c.ExtraFiles, c.SysProcAttr = cmd.ExtraFiles, cmd.SysProcAttr
	return c
}

func pipe(t testing.TB) (r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	return r, w
}

func (p *Proc) read(r *os.File, what string, log func(string)) *Lines {
	l := newLines(p.name+" "+what, p.timeout, r, log)
	go l.read()
	return l
}

// Command returns, not started, the command that runs role in a child with
// args, for code that starts, waits for and if need be kills the process
// itself (a benchmark driver, say). Its stderr goes to the test log until
// the test ends; its stdin and stdout are the caller's to set.
func Command(t testing.TB, role string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := command(t, role, args, nil)
	log := newLogger(t)
	w := &lineWriter{emit: func(line string) { log.logf("%s: %s", role, line) }}
	cmd.Stderr = w
	t.Cleanup(func() {
		w.flush()
		log.stop()
	})
	return cmd
}

// command is the re-execution of this test binary as a child playing role.
// Under the race detector a child's exit skips the detector's default
// one-second pause, which would dominate tests that run many children.
func command(t testing.TB, role string, args, env []string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("testproc: %v", err)
	}
	cmd := exec.Command(exe, append([]string{role}, args...)...)
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	cmd.Env = append(os.Environ(), envChild+"="+roleInArgv, "GORACE="+gorace)
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// String is the child's name in the log: Options.Name, or the role.
func (p *Proc) String() string { return p.name }

// Pid is the child's process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Kill kills the child with os.Process.Kill, without waiting for it to
// die: Exit does that. That is SIGKILL on Unix and TerminateProcess (exit
// status 1) on Windows; KillHard is kill -9 under Wine too. It fails the
// test if the child has already exited and been reaped.
func (p *Proc) Kill(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill %s: %v", p.name, err)
	}
}

// Exit waits for the child to exit and returns what exec.Cmd.Wait said: nil
// for status 0, else typically an *exec.ExitError. When it returns, the
// child's output has been read to its end (unless a process the child
// started holds it open) and its pipes are closed. It does not close
// Stdin.
func (p *Proc) Exit(t testing.TB) error {
	t.Helper()
	select {
	case <-p.exited:
		return p.err
	case <-time.After(p.timeout):
		t.Fatalf("%s did not exit within %v", p.name, p.timeout)
		return nil
	}
}

// Wait waits for the child to exit and fails the test unless it exited
// with status 0. It does not close Stdin.
func (p *Proc) Wait(t testing.TB) {
	t.Helper()
	if err := p.Exit(t); err != nil {
		t.Fatalf("%s: %v", p.name, err)
	}
}

// ExitCode waits for the child to exit and returns its exit status, -1 if
// a signal ended it. (On Windows Kill leaves status 1, and KillHard under
// Wine status 0: there the status cannot tell a kill.) It does not close
// Stdin.
func (p *Proc) ExitCode(t testing.TB) int {
	t.Helper()
	err := p.Exit(t)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("%s: %v", p.name, err)
	}
	return 0
}

// wait reaps the child and lets its output be read to the end, so that
// what it wrote is all there, and its pipes closed, once Exit returns.
func (p *Proc) wait() {
	p.err = p.cmd.Wait()
	deadline := time.Now().Add(drainGrace)
	for _, l := range p.streams() {
		l.drain(deadline)
	}
	close(p.exited)
}

func (p *Proc) streams() []*Lines {
	if p.Stdout == nil {
		return []*Lines{p.Stderr}
	}
	return []*Lines{p.Stdout, p.Stderr}
}

func (p *Proc) cleanup(t testing.TB) {
	if p.Stdin != nil {
		p.Stdin.Close()
	}
	p.cmd.Process.Kill() // fails if it has exited already: fine
	select {
	case <-p.exited:
	case <-time.After(p.timeout):
		t.Errorf("%s still not reaped %v after a kill", p.name, p.timeout)
	}
	p.removeOSState()
	for _, l := range p.streams() {
		l.stop()
	}
	p.log.stop()
}
