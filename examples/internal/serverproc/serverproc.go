// Package serverproc starts an example's server as a child process: the
// program itself, run as "EXE server --addr ADDR". The server says on
// stdout when it listens, and where. Ctrl-C or SIGTERM stops it
// gracefully; so does the end of its stdin when its parent asks for that
// (EnvStopOnEOF), which is how a parent stops it on Windows too, where one
// process cannot send another a signal.
package serverproc

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

// EnvStopOnEOF, set to 1 in a server's environment, makes the end of its
// stdin stop it as SIGTERM would.
const EnvStopOnEOF = "SHMLINK_EXAMPLE_STOP_ON_EOF"

// StopContext returns a context that is done when the server should stop
// gracefully: on Ctrl-C, SIGTERM, or, if EnvStopOnEOF is 1, the end of
// stdin.
func StopContext() (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	if os.Getenv(EnvStopOnEOF) == "1" {
		go func() {
			io.Copy(io.Discard, os.Stdin)
			stop()
		}()
	}
	return ctx, stop
}

// ListeningPrefix starts the line a server prints on stdout once it
// listens, followed by the address to dial.
const ListeningPrefix = "listening on "

// Listening prints the line that tells a parent the server listens on addr.
func Listening(addr string) { fmt.Println(ListeningPrefix + addr) }

// Server is a server child.
type Server struct {
	// Addr is the address the server listens on, from its listening line.
	Addr string
	cmd  *exec.Cmd
	in   io.WriteCloser // the server's stdin: closing it stops the server
	done chan error     // cmd.Wait's result
	stop sync.Once
	err  error // Stop's
}

// timeout bounds the wait for the listening line and for a stop.
const timeout = 10 * time.Second

// Start runs "EXE server --addr addr extra..." and waits for its listening
// line. The server's stderr is ours; its stdout after that line is passed
// to out, if not nil.
func Start(addr string, out io.Writer, extra ...string) (*Server, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, append([]string{"server", "--addr", addr}, extra...)...)
	cmd.Env = append(os.Environ(), EnvStopOnEOF+"=1")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	if out == nil {
		out = io.Discard
	}
	s := &Server{cmd: cmd, in: in, done: make(chan error, 1)}
	ready := make(chan string, 1)
	go func() {
		lines := bufio.NewScanner(stdout)
		for lines.Scan() {
			if a, ok := strings.CutPrefix(lines.Text(), ListeningPrefix); ok {
				ready <- a
				break
			}
		}
		io.Copy(out, stdout)
		s.done <- cmd.Wait()
	}()
	select {
	case s.Addr = <-ready:
		return s, nil
	case err := <-s.done:
		return nil, fmt.Errorf("server exited before it listened: %v", err)
	case <-time.After(timeout):
		cmd.Process.Kill()
		<-s.done
		return nil, fmt.Errorf("server not listening after %v", timeout)
	}
}

// Stop asks the server to stop gracefully, as Ctrl-C would (it closes the
// server's stdin: see EnvStopOnEOF), waits for it to exit and says how it
// exited. Calls after the first only say it again.
func (s *Server) Stop() error {
	s.stop.Do(func() { s.err = s.signalAndWait() })
	return s.err
}

func (s *Server) signalAndWait() error {
	if err := s.in.Close(); err != nil {
		return err
	}
	select {
	case err := <-s.done:
		return err
	case <-time.After(timeout):
		s.cmd.Process.Kill()
		<-s.done
		return fmt.Errorf("server still running %v after it was told to stop", timeout)
	}
}

// Demo starts a server on a link named after prefix and this process,
// runs client against it with the address to dial, then stops the server
// and says so. The server's output goes to stdout.
func Demo(prefix string, client func(addr string) error) error {
	name := fmt.Sprintf("%s-%d", prefix, os.Getpid())
	srv, err := Start(name, os.Stdout)
	if err != nil {
		return err
	}
	defer srv.Stop()
	fmt.Printf("server listening on the link %q\n", name)
	if err := client(srv.Addr); err != nil {
		return err
	}
	if err := srv.Stop(); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	fmt.Println("server stopped")
	return nil
}
