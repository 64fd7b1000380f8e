package sys

import "golang.org/x/sys/unix"

// YieldCPU gives this thread's CPU to another runnable thread on it, if
// there is one, and returns at once otherwise: sched_yield. It is made
// without telling the runtime (a raw system call) because it either
// returns at once or comes back after another thread's short turn; the
// goroutine's processor is not worth handing off for that.
func YieldCPU() { unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0) }
