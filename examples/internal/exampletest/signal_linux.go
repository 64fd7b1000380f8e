package exampletest

import (
	"syscall"
	"testing"

	"github.com/shmlink/shmlink/internal/testproc"
)

// Terminate sends p SIGTERM, as a service manager stops a server (Linux
// only: Windows cannot signal another process).
func Terminate(t *testing.T, p *testproc.Proc) {
	t.Helper()
	if err := syscall.Kill(p.Pid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
}
