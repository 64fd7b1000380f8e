//go:build !linux

package sys

// YieldCPU would give this thread's CPU to another runnable thread on it.
// The waits that call it were measured on Linux only (docs/wakeup.md), so
// elsewhere it does nothing; the caller re-checks its condition either
// way.
func YieldCPU() {}
