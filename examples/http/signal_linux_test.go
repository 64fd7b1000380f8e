package main

import (
	"testing"

	"github.com/shmlink/shmlink/examples/internal/exampletest"
)

// TestShutdownOnSIGTERM is TestShutdown begun by SIGTERM, which Windows
// cannot send to another process.
func TestShutdownOnSIGTERM(t *testing.T) { testShutdown(t, exampletest.Terminate) }

// TestBench: a very short run of the benchmark gives a row per transport
// and number in flight (its baseline is a unix socket, which Wine lacks).
func TestBench(t *testing.T) {
	exampletest.LinkDir(t)
	exampletest.Bench(t, "http")
}
