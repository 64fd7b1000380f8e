package main

import (
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/shmlink/shmlink/internal/testns"
	"github.com/shmlink/shmlink/internal/testproc"
)

// TestContainerLsStat: three containers (internal/testns) share one
// volume, each seeing it at a path of its own as its $SHMLINK_DIR: a
// server runs `shmlink listen`, a client `shmlink dial --wait`, and a third
// `shmlink ls` and `shmlink stat`. The third sees the live link and its
// server's pid as the server sees itself (1, the first process of its PID
// namespace), and a killed server's name as stale; the waiting client
// connects when a server appears in the other container. The client's pid,
// in a PID namespace the server cannot see into, reads as 0.
func TestContainerLsStat(t *testing.T) {
	dirs := testns.Dirs(t, "volume", "server", "client", "ops")
	// in returns how to run shmlink in container who, which sees the
	// volume at at.
	in := func(who, at string) func(stdin io.Reader, args ...string) *testproc.Proc {
		return func(stdin io.Reader, args ...string) *testproc.Proc {
			c := testns.Container{Volume: dirs[0], Mount: at}
			o := testproc.Options{Name: who + ": shmlink " + strings.Join(args, " "), Stdin: stdin, Env: []string{"SHMLINK_DIR=" + at}}
			return c.Start(t, o, "shmlink", args...)
		}
	}
	server, client, ops := in("server", dirs[1]), in("client", dirs[2]), in("ops", dirs[3])
	run := func(args ...string) (string, int) {
		p := ops(strings.NewReader(""), args...)
		code := p.ExitCode(t)
		return p.Stdout.All(t), code
	}

	listen := server(nil, "listen", "ct")
	listen.Stderr.Expect(t, "listening on ct")
	out, code := run("ls")
	if f := lsRow(out, "ct"); code != 0 || len(f) < 5 || f[1] != "1" || f[2] != "0" || f[len(f)-1] != "live" {
		t.Fatalf("ls exited %d:\n%s\nwant ct served by pid 1, live", code, out)
	}
	if out, code = run("stat", "ct"); code != 0 || !strings.Contains(out, "server:   pid 1\n") {
		t.Fatalf("stat exited %d:\n%s\nwant server pid 1", code, out)
	}
	listen.Kill(t)
	listen.Exit(t)
	if out, code = run("ls"); code != 0 || !slices.Equal(lsRow(out, "ct"), []string{"ct", "-", "-", "-", "-", "-", "stale"}) {
		t.Fatalf("ls exited %d after kill -9 of the server:\n%s\nwant ct marked stale", code, out)
	}
	if _, code = run("stat", "ct"); code != 1 {
		t.Fatalf("stat of a dead server's name exited %d, want 1", code)
	}

	dial := client(nil, "dial", "--wait", "ct")
	dial.Stderr.Expect(t, "waiting for ct")
	listen = server(nil, "listen", "ct")
	dial.Stderr.Expect(t, "connected to ct: server pid 1")
	listen.Stderr.Expect(t, "connected: client pid 0")
	io.WriteString(dial.Stdin, "across containers\n")
	dial.Stdin.Close()
	listen.Stdout.Expect(t, "across containers")
	listen.Stderr.Expect(t, "peer closed")
	expectExit(t, listen, 0)
	expectExit(t, dial, 0)
	if entries, _ := os.ReadDir(dirs[0]); len(entries) != 0 {
		t.Errorf("left in the volume: %v", entries)
	}
}
