package shmlink

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/shmlink/shmlink/internal/testns"
	"github.com/shmlink/shmlink/internal/testproc"
)

// memoryCgroups makes, under this process's own memory cgroup, a cgroup
// for each name, removed at the end of the test, and returns them. It uses
// cgroup v2 where its memory controller is enabled for this cgroup's
// children, else v1's memory controller, and skips the test where neither
// is available (enabling a controller would mean moving this process).
func memoryCgroups(t *testing.T, names ...string) []string {
	t.Helper()
	parent, why := ownMemoryCgroup()
	if parent == "" {
		t.Skip("no memory cgroup to measure in: " + why)
	}
	dirs := make([]string, len(names))
	for i, name := range names {
		dir, err := os.MkdirTemp(parent, "shmlink-test-"+name+"-")
		if err != nil {
			t.Skipf("cannot make a memory cgroup in %s: %v", parent, err)
		}
		t.Cleanup(func() {
			if err := os.Remove(dir); err != nil {
				t.Errorf("remove cgroup: %v", err)
			}
		})
		dirs[i] = dir
	}
	return dirs
}

// ownMemoryCgroup returns the directory of this process's memory cgroup,
// if it can have children with the memory controller, or why not.
func ownMemoryCgroup() (dir, why string) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err.Error()
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		switch {
		case f[0] == "0" && f[1] == "":
			v2 := filepath.Join("/sys/fs/cgroup", f[2])
			if ctl, err := os.ReadFile(filepath.Join(v2, "cgroup.subtree_control")); err == nil && strings.Contains(string(ctl), "memory") {
				return v2, ""
			}
			why = "cgroup v2 has no memory controller for the children of " + v2
		case strings.Contains(","+f[1]+",", ",memory,"):
			v1 := filepath.Join("/sys/fs/cgroup/memory", f[2])
			if _, err := os.Stat(filepath.Join(v1, "memory.stat")); err == nil {
				return v1, ""
			}
		}
	}
	return "", why
}

// shmem returns the shared memory (tmpfs and memfd pages) charged to a
// memory cgroup.
func shmem(t *testing.T, cgroup string) int64 { return cgroupValue(t, cgroup, "memory.stat", "shmem") }

// cgroupValue returns the value of key in a cgroup file of "key value"
// lines.
func cgroupValue(t *testing.T, cgroup, file, key string) int64 {
	t.Helper()
	f, err := os.Open(filepath.Join(cgroup, file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+" "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in %s/%s", key, cgroup, file)
	return 0
}

// onlineCPUs counts the CPUs the kernel has online, from
// /sys/devices/system/cpu/online ("0-3,8-11").
func onlineCPUs(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return runtime.NumCPU()
	}
	n := 0
	for _, r := range strings.Split(strings.TrimSpace(string(b)), ",") {
		lo, hi, _ := strings.Cut(r, "-")
		first, err1 := strconv.Atoi(lo)
		last, err2 := strconv.Atoi(hi)
		if hi == "" {
			last, err2 = first, nil
		}
		if err1 != nil || err2 != nil {
			t.Fatalf("cannot read %q", b)
		}
		n += last - first + 1
	}
	return n
}

// v2 says whether a cgroup is of cgroup v2.
func v2(cgroup string) bool {
	_, err := os.Stat(filepath.Join(cgroup, "memory.max"))
	return err == nil
}

// peersIn starts a link-peer server and client with rings of ring bytes,
// each in a container of its own and in its memory cgroup: cgroups[0] the
// server's, cgroups[1] the client's.
func peersIn(t *testing.T, cgroups []string, ring int) (server, client *testproc.Proc) {
	t.Helper()
	v := newVolume(t)
	server = v.peer(t, "server", testns.Container{Cgroup: cgroups[0]}, "mem", "server", ring)
	client = v.peer(t, "client", testns.Container{Cgroup: cgroups[1]}, "mem", "client", ring)
	return server, client
}

// TestContainerMemoryCgroup measures whose memory cgroup pays for a link's
// memory, with a server and a client in containers of their own, each in a
// memory cgroup of its own. The memory is the client's memfd, but a page is
// charged to the cgroup of the process that first touches it: the client
// pays for the header and the ring it writes, the server for the ring it
// writes. Nothing is charged until written, and a page stays charged to
// its cgroup while either side holds the memory, even once the process
// that touched it is gone; when the last side lets go, nothing is left.
func TestContainerMemoryCgroup(t *testing.T) {
	// A cgroup's memory.stat may lag behind by what the kernel has not
	// added up yet: it does so only once 64 pages per CPU have changed.
	// The rings are large enough for that to be a small part of them.
	slack := int64(64 * onlineCPUs(t) * os.Getpagesize())
	ring := 8 << 20
	for int64(ring) < 8*slack {
		ring *= 2
	}
	cgroups := memoryCgroups(t, "server", "client")
	charged := func(when string) (server, client int64) {
		server, client = shmem(t, cgroups[0]), shmem(t, cgroups[1])
		t.Logf("%s: server's cgroup %d KiB, client's %d KiB (rings of %d KiB, give or take %d KiB)", when, server>>10, client>>10, ring>>10, slack>>10)
		return server, client
	}
	// within says whether got is want, give or take the slack.
	within := func(got, want int64) bool { return got >= want-slack && got <= want+slack }

	server, client := peersIn(t, cgroups, ring)
	client.Stdout.Expect(t, "status connected")
	if s, c := charged("connected"); !within(s, 0) || !within(c, 0) {
		t.Errorf("before any message: want the rings charged to nobody")
	}
	command(t, client, fmt.Sprintf("send 1 %d", ring))
	command(t, client, "expect")
	client.Stdout.Expect(t, "echoed 1")
	if s, c := charged("a ring's worth sent and echoed"); !within(s, int64(ring)) || !within(c, int64(ring)+4096) {
		t.Errorf("want each side's cgroup charged for the ring it writes (the client's for the header too)")
	}
	server.Kill(t)
	server.Exit(t)
	client.Stdout.Expect(t, "status peer lost")
	if s, _ := charged("server killed"); !within(s, int64(ring)) {
		t.Errorf("want the dead server's ring still charged to its cgroup while the client holds the memory")
	}
	client.Stdin.Close()
	client.Wait(t)
	if s, c := charged("client closed"); !within(s, 0) || !within(c, 0) {
		t.Errorf("want nothing charged once neither side holds the memory")
	}
}

// TestContainerMemoryLimit: a client whose memory cgroup cannot hold the
// ring it writes is killed by the kernel's OOM killer as it writes, and
// its server in another container sees the link's peer lost.
func TestContainerMemoryLimit(t *testing.T) {
	const ring, limit = 64 << 20, 48 << 20
	cgroups := memoryCgroups(t, "server", "client")
	limitFile, events, key := "memory.limit_in_bytes", "memory.oom_control", "oom_kill"
	if v2(cgroups[1]) {
		limitFile, events = "memory.max", "memory.events"
	}
	if err := os.WriteFile(filepath.Join(cgroups[1], limitFile), []byte(strconv.Itoa(limit)), 0); err != nil {
		t.Fatal(err)
	}
	server, client := peersIn(t, cgroups, ring)
	server.Stdout.Expect(t, "status connected")
	command(t, client, fmt.Sprintf("send 1 %d", ring))
	server.Stdout.Expect(t, "status peer lost")
	if code := client.ExitCode(t); code != -1 {
		t.Errorf("the client exited %d, want killed", code)
	}
	if n := cgroupValue(t, cgroups[1], events, key); n == 0 {
		t.Errorf("%s says no OOM kill in the client's cgroup", events)
	}
	t.Logf("a client limited to %d MiB writing a ring of %d MiB: OOM-killed; its server: peer lost", limit>>20, ring>>20)
}
