package shmlink

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/shmlink/shmlink/internal/testproc"
)

// The credential checks are tested across users: the parent runs as root
// and a child drops to nobody before it touches the link. SO_PEERCRED
// records the credentials of the moment of connect, which comes after the
// drop, so the child is, for the server, an ordinary unprivileged process.

const nobody = 65534

// exitFileMode is the perm-dial child's exit status when Dial failed with
// the kernel's EACCES rather than ErrPermission.
const exitFileMode = 4

// dropToNobody makes this process uid and gid nobody with no supplementary
// groups. Go applies these to every thread of the process.
func dropToNobody() error {
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setgid(nobody); err != nil {
		return fmt.Errorf("setgid: %w", err)
	}
	if err := syscall.Setuid(nobody); err != nil {
		return fmt.Errorf("setuid: %w", err)
	}
	return nil
}

// childPermDial: args are the socket path, "trust-root" or "default" for
// the client's own check of the server, and the expected outcome: "ok" (a
// message round trip works) or "perm" (Dial fails with ErrPermission).
func childPermDial(args []string) error {
	if err := childArgs(args, 3); err != nil {
		return err
	}
	if err := dropToNobody(); err != nil {
		return err
	}
	testproc.Ready()
	cfg := &Config{}
	if args[1] == "trust-root" {
		cfg.AllowUIDs = []int{0}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, args[0], cfg)
	switch args[2] {
	case "perm":
		if c != nil {
			c.Close()
		}
		if errors.Is(err, os.ErrPermission) && !errors.Is(err, ErrPermission) {
			fmt.Fprintf(os.Stderr, "refused by the file mode, not as ErrPermission: %v\n", err)
			os.Exit(exitFileMode)
		}
		if !errors.Is(err, ErrPermission) {
			return fmt.Errorf("dial as uid %d: %v, want ErrPermission", os.Getuid(), err)
		}
		fmt.Fprintf(os.Stderr, "refused as expected: %v\n", err)
		return nil
	case "ok":
		if err != nil {
			return err
		}
		defer c.Close()
		if err := c.WriteMessage([]byte("from nobody")); err != nil {
			return err
		}
		m, err := c.ReadMessage()
		if err != nil || string(m) != "from nobody" {
			return fmt.Errorf("echo: %q, %v", m, err)
		}
		return nil
	}
	return fmt.Errorf("%w %q", errScenario, args[2])
}

// sharedDir returns a directory that other users can traverse but not
// list or write (mode 0711), as a server for several users would use.
func sharedDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "shmlink-perm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestPermissions(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a child as another user")
	}
	linkDir(t)
	dir := sharedDir(t)

	// listen starts a listener on an absolute path in dir; with open set,
	// its socket is made connectable by anyone, so that the credential
	// check rather than the file mode decides.
	listen := func(t *testing.T, name string, cfg *Config, open bool) *Listener {
		t.Helper()
		l, err := Listen(filepath.Join(dir, name), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		if open {
			if err := os.Chmod(filepath.Join(dir, name), 0o666); err != nil {
				t.Fatal(err)
			}
		}
		return l
	}
	// run starts a child as nobody and checks the outcome on both sides.
	run := func(t *testing.T, l *Listener, trust, want string) {
		t.Helper()
		path := l.Addr().(*Addr).Path
		ch := startChild(t, "perm-dial", path, trust, want)
		if want == "ok" {
			c := acceptTest(t, l)
			if uid := c.PeerUID(); uid != nobody {
				t.Errorf("PeerUID %d, want %d", uid, nobody)
			}
			if err := echo(c); err != nil {
				t.Fatal(err)
			}
		}
		ch.Stdin.Close()
		err := ch.Exit(t)
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == exitFileMode {
			t.Fatalf("regression: Dial to a socket the caller may not connect to (EACCES) fails with a bare syscall error, not ErrPermission (dial.go): %v", err)
		}
		if err != nil {
			t.Fatalf("child: %v", err)
		}
		noneQueued(t, l)
	}

	t.Run("client-refuses-root-server", func(t *testing.T) {
		run(t, listen(t, "a.sock", nil, true), "default", "perm")
	})
	t.Run("server-refuses-other-user", func(t *testing.T) {
		run(t, listen(t, "b.sock", nil, true), "trust-root", "perm")
	})
	t.Run("socket-mode-refuses-other-user", func(t *testing.T) {
		// Without an allow list the socket keeps the mode the umask
		// gives it; for another user, connecting may fail on the file
		// mode before the server is asked. It must still read as a
		// permission error.
		l := listen(t, "c.sock", nil, false)
		fi, err := os.Stat(l.Addr().(*Addr).Path)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("socket mode %v", fi.Mode())
		run(t, l, "trust-root", "perm")
	})
	t.Run("allow-uid", func(t *testing.T) {
		run(t, listen(t, "d.sock", &Config{AllowUIDs: []int{nobody}}, false), "trust-root", "ok")
	})
	t.Run("allow-gid", func(t *testing.T) {
		run(t, listen(t, "e.sock", &Config{AllowGIDs: []int{nobody}}, false), "trust-root", "ok")
	})
	t.Run("allow-other-uid-only", func(t *testing.T) {
		run(t, listen(t, "f.sock", &Config{AllowUIDs: []int{nobody - 1}}, false), "trust-root", "perm")
	})
}
