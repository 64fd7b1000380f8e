package sys

import (
	"sync"
	"syscall"
	"unsafe"
)

// On Windows Go's clock reads the interrupt time, which moves in steps of
// the timer interrupt (0.5 to 15.6 ms; under Wine irregular steps of 0.1
// to 10 ms): useless for a spin budget of 100 µs. QueryPerformanceCounter
// is precise (a 10 MHz counter on current systems and under Wine).
var qpcFreq, qpcBase = sync.OnceValue(func() int64 {
	var f int64
	procQueryPerformanceFrequency.Call(uintptr(unsafe.Pointer(&f)))
	if f <= 0 {
		f = 1 // never on Windows XP or later; avoid dividing by zero
	}
	return f
}), qpc()

// qpcAddr is resolved once: LazyProc.Call would look the procedure up
// again on every call, on the spin loop's path.
var qpcAddr = procQueryPerformanceCounter.Addr()

func qpc() int64 {
	var c int64
	syscall.SyscallN(qpcAddr, uintptr(unsafe.Pointer(&c)))
	return c
}

// Nanotime returns a monotonic time in nanoseconds, precise enough to
// measure a spin budget of a few microseconds.
func Nanotime() int64 {
	d, f := qpc()-qpcBase, qpcFreq()
	// Split, so that d*1e9 cannot overflow (it would after 15 minutes at
	// 10 MHz).
	return d/f*1e9 + d%f*1e9/f
}
