// Package exampletest holds what the tests of the HTTP and gRPC examples
// share. Each test runs the example's main in child processes (package
// testproc), as the role named after the example: "ROLE server --addr A"
// for a server, "ROLE client ..." for a client.
package exampletest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shmlink/shmlink"
	"github.com/shmlink/shmlink/examples/internal/serverproc"
	"github.com/shmlink/shmlink/internal/testproc"
)

// LinkDir gives the test a directory of link names of its own; its
// children inherit it.
func LinkDir(t *testing.T) {
	t.Helper()
	dir := filepath.Join(testproc.TempDir(t), "links")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv(shmlink.RuntimeDirEnv, dir)
}

// StartServer runs "role server --addr addr extra..." and returns it once
// it listens, with the address to dial. Closing its Stdin stops it
// gracefully, on every OS (serverproc.EnvStopOnEOF).
func StartServer(t *testing.T, role, addr string, extra ...string) (*testproc.Proc, string) {
	t.Helper()
	p := testproc.Options{Name: "server", Env: []string{serverproc.EnvStopOnEOF + "=1"}}.Start(t, role, append([]string{"server", "--addr", addr}, extra...)...)
	line := p.Stdout.Expect(t, serverproc.ListeningPrefix)
	return p, strings.TrimPrefix(line, serverproc.ListeningPrefix)
}

// Run runs role with args to its end, fails the test unless it exits 0 and
// its stdout holds each of wants, and returns its stdout.
func Run(t *testing.T, role string, args []string, wants ...string) string {
	t.Helper()
	p := testproc.Options{Name: strings.Join(append([]string{role}, args...), " ")}.Start(t, role, args...)
	p.Wait(t)
	out := p.Stdout.All(t)
	for _, want := range wants {
		if !strings.Contains(out, want) {
			t.Errorf("%s: the output lacks %q:\n%s", p, want, out)
		}
	}
	return out
}

// Bench runs a very short benchmark of role and checks that it printed a
// row per transport and number in flight.
func Bench(t *testing.T, role string) {
	t.Helper()
	out := Run(t, role, []string{"bench", "--rounds", "1", "--duration", "20ms", "--inflight", "1,4"})
	if n := strings.Count(out, " µs ") / 2; n != 6 { // a median and a p99 a row
		t.Errorf("%d rows, want 6:\n%s", n, out)
	}
}
