// Package testns runs a test's child process roughly as a container
// runtime runs a container: in IPC, mount, PID, network and UTS namespaces
// of its own, with a tiny tmpfs at /dev/shm and a /proc of its own, and,
// if asked, a host directory bind-mounted as a volume, another user, a user
// namespace, a cgroup. The child is a testproc child (see
// internal/testproc) whose role runs once that world is set up. Linux only;
// elsewhere Start skips the test.
//
// A package's TestMain adds the role that does the setting up:
//
//	testproc.Main(m, testns.Roles(roles))
//
// and a test runs any of its roles in a container:
//
//	srv := testns.Container{Volume: dir, Mount: at}.Start(t, testproc.Options{WaitReady: true}, "echo-server", name)
//
// What it is not: the host's file system stays visible in the child (a new
// mount namespace starts as a copy of its parent's), so a test shares what
// it means to share through the volume and must not rely on the rest being
// hidden. A user namespace maps its root to the host's root, so that the
// child can still execute the test binary (in go test's private build
// directory) and mount; its role runs as an unprivileged user mapped to
// another host uid, which is what a peer sees.
package testns

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/shmlink/shmlink/internal/testproc"
)

// Role is the name of the role that sets up a container and then runs the
// role it is given. Roles adds it.
const Role = "container"

// ShmSize is the size of a container's /dev/shm: far less than Docker's
// 64 MiB, so that anything that needed /dev/shm would show.
const ShmSize = 1 << 20

// Container describes the world a child runs in. The zero value is new
// namespaces, a /dev/shm of ShmSize bytes and nothing else.
type Container struct {
	// Volume, if set, is a host directory bind-mounted at Mount, an
	// existing directory: the child's view of it. Both are absolute.
	Volume, Mount string
	// User, if not 0, is the uid and gid the role runs as, with no
	// supplementary groups: the child drops to it once set up.
	User int
	// HostUser, if not 0, gives the child a user namespace of its own, in
	// which User (not 0) is host uid and gid HostUser.
	HostUser int
	// Cgroup, if set, is a cgroup directory (v1 or v2) the child joins
	// before its role runs, so that what the role allocates is charged
	// there.
	Cgroup string
}

var errNoNamespaces = errors.New("testns: namespaces are Linux only")

// spec is what the child gets as its first argument: the container and
// the namespaces of the host, which the child checks it has left.
type spec struct {
	Container
	HostNS map[string]string
}

// Start runs role with args in a child in this container, as o says
// (o.SysProcAttr is set here). It skips the test where namespaces cannot be
// created, and fails it if they can but the setting up fails.
func (c Container) Start(t testing.TB, o testproc.Options, role string, args ...string) *testproc.Proc {
	t.Helper()
	c.Require(t)
	if o.Name == "" {
		o.Name = role
	}
	o.SysProcAttr = c.sysProcAttr()
	return o.Start(t, Role, append([]string{c.encode(t), role}, args...)...)
}

func (c Container) encode(t testing.TB) string {
	t.Helper()
	if c.HostUser != 0 && c.User == 0 {
		t.Fatal("testns: HostUser needs a User to map to it")
	}
	b, err := json.Marshal(spec{Container: c, HostNS: namespaces()})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var (
	probeMu sync.Mutex
	probed  = map[Container]string{} // kind of container: why it cannot run, "" if it can
)

// Require skips the test if a container of c's kind cannot be created
// here: it starts one once, with no role, and remembers the outcome. Start
// calls it; a test calls it first when it must prepare for the container
// in ways that only work where containers do (giving files to another
// user, say).
func (c Container) Require(t testing.TB) {
	t.Helper()
	if !supported {
		t.Skip(errNoNamespaces)
	}
	kind := Container{User: c.User, HostUser: c.HostUser}
	probeMu.Lock()
	defer probeMu.Unlock()
	why, ok := probed[kind]
	if !ok {
		cmd := testproc.Command(t, Role, kind.encode(t))
		cmd.SysProcAttr = kind.sysProcAttr()
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("testns: namespaces were created, but setting up the container failed: %v (its stderr is in the log)", err)
		}
		if err != nil {
			why = fmt.Sprintf("cannot create namespaces here (%v): containers need root, or user namespaces", err)
		}
		probed[kind] = why
	}
	if why != "" {
		t.Skip(why)
	}
}

// Dirs makes, for the test, directories under one that every user may
// traverse but not list (mode 0711), unlike the test's own temporary
// directory: a volume for users other than root, and the mount points of
// their views of it. Each is empty, mode 0700 and owned by root; the test
// removes them at its end.
func Dirs(t testing.TB, names ...string) []string {
	t.Helper()
	base, err := os.MkdirTemp("", "shmlink-ns-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o711); err != nil {
		t.Fatal(err)
	}
	dirs := make([]string, len(names))
	for i, name := range names {
		dirs[i] = filepath.Join(base, name)
		if err := os.Mkdir(dirs[i], 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return dirs
}

// Roles returns roles and, added, Role, which runs any of them in a
// container.
func Roles(roles map[string]func(args []string) error) map[string]func(args []string) error {
	all := maps.Clone(roles)
	all[Role] = func(args []string) error { return run(roles, args) }
	return all
}

// run is Role in the child: args are the spec, then the role and its
// arguments. With no role it only sets up and checks: Start's probe.
func run(roles map[string]func(args []string) error, args []string) error {
	if len(args) == 0 {
		return errors.New("testns: no container spec")
	}
	var s spec
	if err := json.Unmarshal([]byte(args[0]), &s); err != nil {
		return fmt.Errorf("testns: spec: %w", err)
	}
	if err := enter(s); err != nil {
		return fmt.Errorf("testns: %w", err)
	}
	if len(args) == 1 {
		return nil
	}
	role, ok := roles[args[1]]
	if !ok {
		return fmt.Errorf("testns: unknown role %q", args[1])
	}
	os.Args = append([]string{os.Args[0]}, args[2:]...)
	if err := role(args[2:]); err != nil {
		return err
	}
	return shmEmpty()
}
