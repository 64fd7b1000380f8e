package testproc_test

import (
	"errors"
	"os"
	"os/exec"
	"testing"

	"github.com/shmlink/shmlink/internal/testproc"
)

// What a kill leaves: TerminateProcess, which os.Process.Kill calls,
// leaves exit status 1; a SIGKILL of the Wine process leaves status 0
// (Wine never learns the process died by a signal).
const killedWant, hardKilledWant = "exit status 1", "exit status 0 under Wine, 1 on Windows"

func killedStatus(err error) bool { return exitStatus(err) == 1 }

func hardKilledStatus(err error) bool {
	if testproc.UnderWine {
		return exitStatus(err) == 0
	}
	return exitStatus(err) == 1
}

func exitStatus(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -2
	}
	return 0
}

// TestUnderWine: CI runs the Windows tests under Wine, and the crash tests
// count on KillHard being kill -9 there; a run that failed to detect Wine
// would quietly test TerminateProcess twice. Wine passes the Unix
// environment on, so WINEPREFIX (which .ci/wine sets) tells.
func TestUnderWine(t *testing.T) {
	if os.Getenv("WINEPREFIX") != "" && !testproc.UnderWine {
		t.Fatal("WINEPREFIX is set, but ntdll has no wine_get_version")
	}
}
