package main

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/shmlink/shmlink/internal/testns"
	"github.com/shmlink/shmlink/internal/testproc"
)

func TestMain(m *testing.M) {
	testproc.Main(m, testns.Roles(map[string]func([]string) error{"containers": testproc.Program(main)}))
}

// TestCompose runs what docker-compose.yml runs, with containers made of
// namespaces (internal/testns) instead of Docker: the server and the
// client each in its own, with a 1 MiB /dev/shm, sharing only the volume,
// which each sees at its own path with $SHMLINK_DIR in it. The client
// starts first (it waits for the server if need be); its rings are four
// times that /dev/shm. Then the server is stopped as docker stop does,
// with SIGTERM.
func TestCompose(t *testing.T) {
	dirs := testns.Dirs(t, "volume", "server", "client")
	if err := os.Chmod(dirs[0], 0o755); err != nil {
		t.Fatal(err)
	}
	service := func(name, at string, args ...string) *testproc.Proc {
		c := testns.Container{Volume: dirs[0], Mount: at}
		o := testproc.Options{Name: name, Env: []string{"SHMLINK_DIR=" + filepath.Join(at, "links")}}
		return c.Start(t, o, "containers", args...)
	}
	client := service("client", dirs[2], "send", "-ring", "4194304", "-max", "4194304", "demo")
	server := service("server", dirs[1], "serve", "demo")
	server.Stderr.Expect(t, "listening on "+filepath.Join(dirs[1], "links", "demo.sock"))
	client.Stderr.Expect(t, "connected to server pid 1")
	server.Stderr.Expect(t, "client connected: uid 0, pid 0")
	client.Stderr.Expect(t, "23 messages of 1 B to 4 MiB echoed intact")
	client.Wait(t)
	server.Stderr.Expect(t, "client gone: peer closed")
	if err := syscall.Kill(server.Pid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	server.Stderr.Expect(t, "stopping")
	server.Wait(t)
	entries, _ := os.ReadDir(filepath.Join(dirs[0], "links"))
	for _, e := range entries {
		t.Errorf("left in the volume: %s", e.Name())
	}
}
