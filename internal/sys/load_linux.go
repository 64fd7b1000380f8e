package sys

import (
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// The load files stay open: a pread of /proc/loadavg costs about 1.5 µs
// here, an open, read and close about 7 µs.
var load struct {
	once   sync.Once
	fd     int // /proc/loadavg, -1 if it cannot be read
	online int // CPUs online on the machine, 0 if unknown
	mu     sync.Mutex
	buf    [128]byte // not on the stack: the system call would move it to the heap
}

func openLoad() {
	load.fd = -1
	fd, err := unix.Open("/proc/loadavg", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		unix.Close(fd)
		return
	}
	if load.online = countCPUs(strings.TrimSpace(string(b))); load.online == 0 {
		unix.Close(fd)
		return
	}
	load.fd = fd
}

// countCPUs counts the CPUs of a kernel CPU list ("0-3,5"), 0 if it does
// not parse.
func countCPUs(list string) int {
	n := 0
	for _, r := range strings.Split(list, ",") {
		lo, hi, found := strings.Cut(r, "-")
		a, err1 := strconv.Atoi(lo)
		b := a
		var err2 error
		if found {
			b, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || b < a {
			return 0
		}
		n += b - a + 1
	}
	return n
}

// Runnable returns the number of threads on the whole machine that are
// running or waiting for a CPU at this instant (the kernel's nr_running,
// the fourth field of /proc/loadavg, which counts the calling thread), and
// the number of CPUs online. ok is false where the OS cannot say. In a
// container /proc/loadavg is usually the host's, which is what matters
// for the CPUs a spinner would take from others.
func Runnable() (running, cpus int, ok bool) {
	load.once.Do(openLoad)
	if load.fd < 0 {
		return 0, 0, false
	}
	load.mu.Lock()
	defer load.mu.Unlock()
	n, err := unix.Pread(load.fd, load.buf[:], 0)
	if err != nil || n <= 0 {
		return 0, 0, false
	}
	running, ok = parseLoadavg(load.buf[:n])
	return running, load.online, ok
}

// parseLoadavg takes the running count out of /proc/loadavg's
// "0.52 0.58 0.59 3/112 1750" without allocating: a waiter calls it.
func parseLoadavg(b []byte) (int, bool) {
	field := 0
	for i := 0; i < len(b); i++ {
		if b[i] == ' ' {
			field++
			continue
		}
		if field != 3 {
			continue
		}
		n, j := 0, i
		for ; j < len(b) && b[j] >= '0' && b[j] <= '9' && j-i < 9; j++ {
			n = n*10 + int(b[j]-'0')
		}
		if j == i || j == len(b) || b[j] != '/' {
			return 0, false
		}
		return n, true
	}
	return 0, false
}
