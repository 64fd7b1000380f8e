package testns

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

const supported = true

// isolated are the namespaces every container has of its own, by their
// names in /proc/PID/ns.
var isolated = map[string]uintptr{
	"ipc": unix.CLONE_NEWIPC,
	"mnt": unix.CLONE_NEWNS,
	"pid": unix.CLONE_NEWPID,
	"net": unix.CLONE_NEWNET,
	"uts": unix.CLONE_NEWUTS,
}

func (c Container) sysProcAttr() *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{}
	for _, flag := range isolated {
		attr.Cloneflags |= flag
	}
	if c.HostUser != 0 {
		attr.Cloneflags |= unix.CLONE_NEWUSER
		ids := []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}, {ContainerID: c.User, HostID: c.HostUser, Size: 1}}
		attr.UidMappings, attr.GidMappings = ids, ids
		attr.GidMappingsEnableSetgroups = true
	}
	return attr
}

// namespaces returns this process's namespaces, as /proc/self/ns links
// ("ipc:[4026531839]").
func namespaces() map[string]string {
	ns := map[string]string{}
	for name := range isolated {
		ns[name], _ = os.Readlink("/proc/self/ns/" + name)
	}
	ns["user"], _ = os.Readlink("/proc/self/ns/user")
	return ns
}

// enter sets up the container in the child: it checks that the child left
// the host's namespaces, makes its mounts private (so that nothing it
// mounts reaches the host), mounts /dev/shm, /proc and the volume, joins
// the cgroup and becomes the user.
func enter(s spec) error {
	own := namespaces()
	for name := range isolated {
		if own[name] == s.HostNS[name] {
			return fmt.Errorf("still in the host's %s namespace %s", name, own[name])
		}
	}
	if s.HostUser != 0 && own["user"] == s.HostNS["user"] {
		return fmt.Errorf("still in the host's user namespace %s", own["user"])
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	opts := fmt.Sprintf("size=%d,mode=1777", ShmSize)
	if err := unix.Mount("shm", "/dev/shm", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, opts); err != nil {
		return fmt.Errorf("mount /dev/shm: %w", err)
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	if s.Volume != "" {
		if err := unix.Mount(s.Volume, s.Mount, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s at %s: %w", s.Volume, s.Mount, err)
		}
	}
	if s.Cgroup != "" {
		procs := filepath.Join(s.Cgroup, "cgroup.procs")
		if err := os.WriteFile(procs, []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
			return fmt.Errorf("join cgroup: %w", err)
		}
	}
	if s.User != 0 {
		if err := BecomeUser(s.User); err != nil {
			return err
		}
	}
	var st unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &st); err != nil {
		return err
	}
	if size := int64(st.Blocks) * st.Bsize; size != ShmSize {
		return fmt.Errorf("/dev/shm has %d bytes, want %d", size, ShmSize)
	}
	return shmEmpty()
}

// BecomeUser makes this process uid and gid id with no supplementary
// groups. Go applies these to every thread of the process.
func BecomeUser(id int) error {
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setgid(id); err != nil {
		return fmt.Errorf("setgid %d: %w", id, err)
	}
	if err := syscall.Setuid(id); err != nil {
		return fmt.Errorf("setuid %d: %w", id, err)
	}
	return nil
}

// shmEmpty fails if anything is in the container's /dev/shm.
func shmEmpty() error {
	entries, err := os.ReadDir("/dev/shm")
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return fmt.Errorf("left in the container's /dev/shm: %s and %d more", entries[0].Name(), len(entries)-1)
	}
	return nil
}
