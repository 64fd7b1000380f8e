package main

import (
	"testing"

	"github.com/shmlink/shmlink/examples/internal/exampletest"
)

// TestGracefulStopOnSIGTERM is TestGracefulStop begun by SIGTERM, which
// Windows cannot send to another process.
func TestGracefulStopOnSIGTERM(t *testing.T) { testGracefulStop(t, exampletest.Terminate) }

// killedExit reports whether a process's exit code says that a signal
// killed it.
func killedExit(code int) bool { return code == -1 }

// TestBench: a very short run of the benchmark gives a row per transport
// and number in flight. Linux only: its base is a unix socket, which Wine
// does not have.
func TestBench(t *testing.T) {
	exampletest.LinkDir(t)
	exampletest.Bench(t, "grpc")
}
