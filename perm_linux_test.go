package shmlink

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shmlink/shmlink/internal/testns"
	"github.com/shmlink/shmlink/internal/testproc"
)

// The credential checks are tested across users: the parent runs as root
// and a child drops to nobody before it touches the link. SO_PEERCRED
// records the credentials of the moment of connect, which comes after the
// drop, so the child is, for the server, an ordinary unprivileged process.

const nobody = 65534

// Every refusal by a credential check or a socket's mode tells the
// operator which option admits the peer (allowHint), and on which side.
const (
	allowHint     = "AllowUIDs or AllowGIDs in "
	allowOnServer = allowHint + "the server's Config"
	allowOnClient = allowHint + "this client's Config"
	allowBySocket = "a server sets " + allowHint + "its Config"
)

// exitFileMode is the perm-dial child's exit status when Dial failed with
// the kernel's EACCES rather than ErrPermission.
const exitFileMode = 4

// childPermDial drops to uid and gid nobody, with no supplementary
// groups, and runs childDialCheck.
func childPermDial(args []string) error {
	if err := testns.BecomeUser(nobody); err != nil {
		return err
	}
	return childDialCheck(args)
}

// childDialCheck: args are the socket path, the uid the client admits
// besides its own for its check of the server ("default": none), and the
// expected outcome: "ok" (a message round trip works) or "perm" (Dial fails
// with ErrPermission, whose text tells the operator the option to set; the
// child prints it).
func childDialCheck(args []string) error {
	if err := childArgs(args, 3); err != nil {
		return err
	}
	testproc.Ready()
	cfg := &Config{}
	if args[1] != "default" {
		uid, err := strconv.Atoi(args[1])
		if err != nil {
			return err
		}
		cfg.AllowUIDs = []int{uid}
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
		if !strings.Contains(err.Error(), allowHint) {
			return fmt.Errorf("refused without saying which option admits: %v", err)
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
	dir := testns.Dirs(t, "links")[0]
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
	// run starts a child as nobody and checks the outcome on both sides:
	// want is "ok" or what its refusal must say.
	run := func(t *testing.T, l *Listener, trust, want string) {
		t.Helper()
		path := l.Addr().(*Addr).Path
		outcome := "ok"
		if want != "ok" {
			outcome = "perm"
		}
		ch := startChild(t, "perm-dial", path, trust, outcome)
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
		if want != "ok" {
			if line := ch.Stderr.Expect(t, "refused as expected"); !strings.Contains(line, want) {
				t.Errorf("the refusal does not say %q", want)
			}
		}
		noneQueued(t, l)
	}

	t.Run("client-refuses-root-server", func(t *testing.T) {
		run(t, listen(t, "a.sock", nil, true), "default", allowOnClient)
	})
	t.Run("server-refuses-other-user", func(t *testing.T) {
		run(t, listen(t, "b.sock", nil, true), "0", allowOnServer)
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
		run(t, l, "0", allowBySocket)
	})
	t.Run("allow-uid", func(t *testing.T) {
		run(t, listen(t, "d.sock", &Config{AllowUIDs: []int{nobody}}, false), "0", "ok")
	})
	t.Run("allow-gid", func(t *testing.T) {
		run(t, listen(t, "e.sock", &Config{AllowGIDs: []int{nobody}}, false), "0", "ok")
	})
	t.Run("allow-other-uid-only", func(t *testing.T) {
		run(t, listen(t, "f.sock", &Config{AllowUIDs: []int{nobody - 1}}, false), "0", allowOnServer)
	})
}
