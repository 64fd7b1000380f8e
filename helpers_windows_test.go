package shmlink

import (
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"testing"

	"github.com/shmlink/shmlink/internal/sys"
	"github.com/shmlink/shmlink/internal/testproc"
)

// TestMain runs the tests, or a child's role.
func TestMain(m *testing.M) { testproc.Main(m, roles()) }

var pathNames atomic.Int64

// pathName is a link name that is an absolute path (a pipe of its own,
// outside the names of the link directory), fresh for the test.
func pathName(t testing.TB, name string) string {
	return fmt.Sprintf(`\\.\pipe\shmlink-test-%d-%d-%s`, os.Getpid(), pathNames.Add(1), name)
}

// baselineTransport is what the contract tests hold a link to: loopback
// TCP, what a Windows program would use without shmlink.
var baselineTransport = transport{"tcp",
	func(t *testing.T) (net.Listener, string) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return l, l.Addr().String()
	},
	func(t *testing.T, addr string) net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}}

// ensureFiles does nothing: Windows has no per-process limit on handles
// that a test could reach.
func ensureFiles(uint64) error { return nil }

// resources is what a process holds that a link could leak: handles (per
// link a section, four events, a pipe and the peer's process), and the
// threads whose own handles must not count as leaks.
type resources struct {
	handles, threads int
	kinds            map[string]int // handles by kind, where they can be told apart
}

func snapshot(t testing.TB) resources {
	t.Helper()
	th, err := testproc.Threads()
	if err != nil {
		t.Fatal(err)
	}
	n, err := testproc.OpenHandles()
	if err != nil {
		t.Fatal(err)
	}
	r := resources{handles: n, threads: th, kinds: map[string]int{}}
	if hs, err := testproc.OwnHandles(); err == nil {
		for _, h := range hs {
			if k, err := sys.HandleKind(h); err == nil {
				r.kinds[k]++
			}
		}
	}
	return r
}

// exactKinds are the kinds of handle that only a link (or a child
// process) makes, so that any more of them after than before is a leak.
var exactKinds = []string{"Section", "File", "Process"}

// A Go thread holds handles of its own (itself, two wake-up events and a
// timer), and a busy test makes threads, so the other handles are counted
// net of threadHandles per new thread, less a slack for the runtime's
// other lazily made handles.
const (
	threadHandles = 4
	handleSlack   = 4
)

// leaked reports whether after holds more handles than before: of the
// exact kinds, any; of the others, more than the runtime's own.
func (after resources) leaked(before resources) bool {
	for _, k := range exactKinds {
		if after.kinds[k] > before.kinds[k] {
			return true
		}
	}
	return after.handles-before.handles > handleSlack+threadHandles*max(0, after.threads-before.threads)
}

// killSelf ends this process at once (TerminateProcess): no deferred
// function runs and nothing is said to the peer.
func killSelf() error {
	p, err := os.FindProcess(os.Getpid())
	if err != nil {
		return err
	}
	return p.Kill()
}

// checkLinksAfterKill checks what ListLinks says once the server of
// "probed" was killed and the one of "other" (pid) is live: on Windows a
// name dies with its server, so only "other" is listed (nothing is ever
// stale).
func checkLinksAfterKill(t *testing.T, links []LinkInfo, pid int) {
	t.Helper()
	if len(links) != 1 {
		t.Fatalf("ListLinks: %+v, want only the live link", links)
	}
	if l := links[0]; l.Name != "other" || l.Stale || l.Err != nil || l.PID != pid {
		t.Fatalf("live link: %+v, want other served by pid %d", l, pid)
	}
}
