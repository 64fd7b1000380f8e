//go:build !windows

package main

import (
	"os"
	"os/exec"
	"testing"
)

// inherit has cmd inherit f as descriptor 3 and returns how --ready-fd
// names it.
func inherit(cmd *exec.Cmd, f *os.File) string {
	cmd.ExtraFiles = []*os.File{f}
	return "3"
}

// checkKilledRow: a server killed with SIGKILL leaves its socket file
// behind, which ls marks stale.
func checkKilledRow(t *testing.T, row []string, out string) {
	t.Helper()
	if len(row) == 0 || row[len(row)-1] != "stale" {
		t.Fatalf("ls after kill -9 of the server:\n%s\nwant shown marked stale", out)
	}
}
