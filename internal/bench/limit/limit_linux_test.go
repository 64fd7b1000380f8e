package limit

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestOrphanStops kills the parent of a limit peer that spins on a
// ping-pong, and checks that the peer, reparented, gives up at once
// rather than spin on a CPU for good (or for its 10 s deadline).
func TestOrphanStops(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envMiddle+"=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	// Wait returns once the middle process has exited and the orphan,
	// which holds its stderr, has too.
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	if err != nil {
		<-done
		t.Fatalf("no pid from the middle process (%q): %s", line, stderr.String())
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("middle process: %v: %s", err, stderr.String())
		}
	case <-time.After(5 * time.Second):
		syscall.Kill(pid, syscall.SIGKILL)
		<-done
		t.Fatalf("the orphaned limit peer (pid %d) still spun 5 s after its parent died", pid)
	}
	if !strings.Contains(stderr.String(), "parent process has gone") {
		t.Errorf("the orphan said %q", stderr.String())
	}
}
