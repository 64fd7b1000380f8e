package main

import (
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
)

// inherit has cmd inherit f's handle and returns how --ready-fd names it:
// the handle's value, which is the same in the child.
func inherit(cmd *exec.Cmd, f *os.File) string {
	cmd.SysProcAttr = &syscall.SysProcAttr{AdditionalInheritedHandles: []syscall.Handle{syscall.Handle(f.Fd())}}
	return strconv.FormatUint(uint64(f.Fd()), 10)
}

// checkKilledRow: a killed server's name dies with its process on
// Windows, so ls no longer shows it (no stale names exist).
func checkKilledRow(t *testing.T, row []string, out string) {
	t.Helper()
	if len(row) != 0 {
		t.Fatalf("ls after the server was killed:\n%s\nwant no row for shown", out)
	}
}
