package testns_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/shmlink/shmlink/internal/testns"
	"github.com/shmlink/shmlink/internal/testproc"
)

func TestMain(m *testing.M) {
	testproc.Main(m, testns.Roles(map[string]func([]string) error{"look": look}))
}

// look reports what a container sees: its pid and uid, and how much
// /dev/shm takes; it reads "from-host" in the volume args[0] and writes
// "from-child" there.
func look(args []string) error {
	b, err := os.ReadFile(filepath.Join(args[0], "from-host"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(args[0], "from-child"), b, 0o600); err != nil {
		return err
	}
	f, err := os.Create("/dev/shm/fill")
	if err != nil {
		return err
	}
	n, err := f.Write(make([]byte, 2*testns.ShmSize))
	f.Close()
	os.Remove(f.Name())
	if !errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("writing twice its size to /dev/shm: %v, want ENOSPC", err)
	}
	fmt.Printf("pid %d uid %d shm %d\n", os.Getpid(), os.Getuid(), n)
	return nil
}

// TestContainer: a child in a container is pid 1 of its own, has a /dev/shm
// of 1 MiB, sees the volume at its mount point and runs as the user asked
// for; and nothing it mounted is seen on the host.
func TestContainer(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    testns.Container
		uid  int // as the child sees itself
		host int // as the host sees the child's files
	}{
		{"root", testns.Container{}, 0, 0},
		{"nobody", testns.Container{User: 65534}, 65534, 65534},
		{"user-namespace", testns.Container{User: 1000, HostUser: 100000}, 1000, 100000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.c.Require(t)
			dirs := testns.Dirs(t, "vol", "at")
			vol, at := dirs[0], dirs[1]
			if err := os.WriteFile(filepath.Join(vol, "from-host"), []byte("hello"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(vol, tc.host, tc.host); err != nil {
				t.Fatal(err)
			}
			before := mounts(t)
			c := tc.c
			c.Volume, c.Mount = vol, at
			p := c.Start(t, testproc.Options{}, "look", at)
			want := "pid 1 uid " + strconv.Itoa(tc.uid) + " shm " + strconv.Itoa(testns.ShmSize)
			if got := p.Stdout.Next(t); got != want {
				t.Errorf("child says %q, want %q", got, want)
			}
			p.Wait(t)
			fi, err := os.Stat(filepath.Join(vol, "from-child"))
			if err != nil {
				t.Fatalf("the child's file is not in the volume: %v", err)
			}
			if owner := int(fi.Sys().(*syscall.Stat_t).Uid); owner != tc.host {
				t.Errorf("the child's file is owned by host uid %d, want %d", owner, tc.host)
			}
			if after := mounts(t); after != before {
				t.Errorf("the host's mounts changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

func mounts(t *testing.T) string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
