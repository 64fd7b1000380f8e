package testproc_test

import (
	"syscall"
	"testing"

	"github.com/shmlink/shmlink/internal/testproc"
)

// TestSysProcAttr: Options.SysProcAttr reaches the OS: a child started in
// a process group of its own leads it.
func TestSysProcAttr(t *testing.T) {
	p := testproc.Options{WaitReady: true, SysProcAttr: &syscall.SysProcAttr{Setpgid: true}}.Start(t, "hang")
	pgid, err := syscall.Getpgid(p.Pid())
	if err != nil {
		t.Fatal(err)
	}
	if pgid != p.Pid() {
		t.Errorf("child %d is in process group %d, want its own", p.Pid(), pgid)
	}
}
