// Package cpeer builds the C library in c/ and the C programs of the tests
// (c/test), for tests that run a C peer against the Go implementation. Each
// build happens once per test binary, into a directory that Clean removes
// (testproc.Main runs it after the tests).
//
// The C compiler is required: without one, Build fails the test with a
// message that says what to install, rather than skipping, so that a
// machine without it cannot pass the interop suite by accident.
package cpeer

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// Flavor is how a program is compiled.
type Flavor int

const (
	// Sanitized: AddressSanitizer and UndefinedBehaviorSanitizer, any
	// finding fatal. The interop tests run this.
	Sanitized Flavor = iota
	// Optimized: -O2, no sanitizer, for the benchmarks.
	Optimized
	// Shared: the library alone as a shared object (-O2), for ctypes and
	// the like.
	Shared
)

// Warnings are the flags every build uses: the library must stay clean C99.
var Warnings = []string{"-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"}

var flavorFlags = map[Flavor][]string{
	Sanitized: {"-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined",
		"-fno-sanitize-recover=all", "-pthread"},
	Optimized: {"-O2", "-pthread"},
	Shared:    {"-O2", "-fPIC", "-shared"},
}

// Env is the environment a sanitized program needs: leaks reported,
// allocations over 64 MiB treated as bugs (no test message needs one, and
// a peer's claim must never cause one), every finding fatal.
var Env = []string{
	"ASAN_OPTIONS=detect_leaks=1:max_allocation_size_mb=64:allocator_may_return_null=0:abort_on_error=0",
	"UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1",
}

var (
	mu    sync.Mutex
	dir   string
	built = map[string]string{}
)

// Source is the directory of the C library, c/ in the module.
func Source() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "c")
}

// Peer returns the test peer (c/test/peer.c with the library), sanitized.
func Peer(t testing.TB) string { return Build(t, Sanitized, "peer", "shmlink.c", "test/peer.c") }

// Attacker returns c/test/attack.c, a hostile peer built on the library's
// internals, sanitized.
func Attacker(t testing.TB) string { return Build(t, Sanitized, "attack", "test/attack.c") }

// Watchdog returns c/test/watchdog.c, the ring watchdog's scenarios, built
// on the library's internals.
func Watchdog(t testing.TB) string { return Build(t, Sanitized, "watchdog", "test/watchdog.c") }

// Library returns the library as a shared object.
func Library(t testing.TB) string { return Build(t, Shared, "libshmlink.so", "shmlink.c") }

// Build compiles the given sources (relative to c/) into an executable
// (or, for Shared, a library) called name, once per test binary and
// flavor, and returns its path.
func Build(t testing.TB, f Flavor, name string, sources ...string) string {
	t.Helper()
	key := strings.Join(append([]string{name, string(rune('0' + f))}, sources...), " ")
	mu.Lock()
	defer mu.Unlock()
	if p, ok := built[key]; ok {
		return p
	}
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Fatalf("no C compiler: the C interop tests need cc (on Debian: apt-get install gcc libc6-dev): %v", err)
	}
	if dir == "" {
		if dir, err = os.MkdirTemp("", "shmlink-cpeer-"); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, name+"-"+string(rune('0'+f)))
	args := append(append([]string{}, Warnings...), flavorFlags[f]...)
	args = append(append(args, "-o", out), sources...)
	cmd := exec.Command(cc, args...)
	cmd.Dir = Source()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cc %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	built[key] = out
	return out
}

// Clean removes what Build made.
func Clean() {
	mu.Lock()
	defer mu.Unlock()
	if dir != "" {
		os.RemoveAll(dir)
		dir, built = "", map[string]string{}
	}
}
