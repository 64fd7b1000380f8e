package shmlink

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/shmlink/shmlink/internal/cpeer"
	"github.com/shmlink/shmlink/internal/testns"
	"github.com/shmlink/shmlink/internal/testproc"
)

// TestMain runs the tests, or a child's role, in a container or not
// (internal/testns). The C peers that some tests build are removed after
// the tests.
func TestMain(m *testing.M) { testproc.Main(m, testns.Roles(roles()), cpeer.Clean) }

// sockPath is the socket of the link name in the link directory dir
// (PROTOCOL.md, 2), for children that use the socket without the library.
func sockPath(dir, name string) string { return filepath.Join(dir, name+".sock") }

// pathName is a link name that is an absolute path (an endpoint outside
// the link directory), fresh for the test.
func pathName(t testing.TB, name string) string {
	return filepath.Join(testproc.TempDir(t), name+".sock")
}

// baselineTransport is what the contract tests hold a link to: a unix
// stream socket.
var baselineTransport = transport{"unix",
	func(t *testing.T) (net.Listener, string) {
		path := filepath.Join(t.TempDir(), "c.sock")
		l, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		return l, path
	},
	func(t *testing.T, addr string) net.Conn {
		c, err := net.Dial("unix", addr)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}}

// ensureFiles raises the descriptor limit to at least n. A link holds
// about six descriptors on each side.
func ensureFiles(n uint64) error {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return err
	}
	if rl.Cur >= n {
		return nil
	}
	rl.Cur = n
	rl.Max = max(rl.Max, n)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return fmt.Errorf("raise RLIMIT_NOFILE to %d: %w", n, err)
	}
	return nil
}

// resources is what a process holds that a link could leak.
type resources struct {
	fds      int // open descriptors
	mappings int // memfd mappings of shmlink segments
	devShm   int // entries in /dev/shm
}

func snapshot(t testing.TB) resources {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	shm, _ := os.ReadDir("/dev/shm")
	return resources{fds: len(fds), mappings: strings.Count(string(maps), "memfd:shmlink"), devShm: len(shm)}
}

// leaked reports whether after holds more than before: here every count
// is exact.
func (after resources) leaked(before resources) bool { return after != before }

// killSelf ends this process with SIGKILL: no deferred function, no exit
// code of its own, nothing said to the peer.
func killSelf() error { return syscall.Kill(os.Getpid(), syscall.SIGKILL) }

// checkLinksAfterKill checks what ListLinks says once the server of
// "probed" was killed and the one of "other" (pid) is live: a killed
// server's socket file stays, so "probed" is listed, marked stale.
func checkLinksAfterKill(t *testing.T, links []LinkInfo, pid int) {
	t.Helper()
	if len(links) != 2 {
		t.Fatalf("ListLinks: %+v, want 2 links", links)
	}
	if l := links[0]; l.Name != "other" || l.Stale || l.Err != nil || l.PID != pid {
		t.Fatalf("live link: %+v, want other served by pid %d", l, pid)
	}
	if l := links[1]; l.Name != "probed" || !l.Stale || l.Err != nil || l.PID != 0 {
		t.Fatalf("dead link: %+v, want probed marked stale", l)
	}
}
