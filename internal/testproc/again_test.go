package testproc

import (
	"bytes"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestAgain: the copy that a start retried under Wine uses runs the same
// program, with the same arguments, environment and output, and the
// input given.
func TestAgain(t *testing.T) {
	var out bytes.Buffer
	cmd := exec.Command(os.Args[0], "-test.run=^TestAgainChild$", "-test.v")
	cmd.Env = append(os.Environ(), "TESTPROC_AGAIN_CHILD=1")
	cmd.Stdout = &out
	c := again(cmd, strings.NewReader("input\n"))
	if c.Path != cmd.Path || !slices.Equal(c.Args, cmd.Args) || !slices.Equal(c.Env, cmd.Env) || c.Stdout != cmd.Stdout {
		t.Fatalf("copy %+v differs from %+v", c, cmd)
	}
	if err := c.Run(); err != nil {
		t.Fatalf("copy: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "read input") {
		t.Errorf("child's output %q does not show the input", out.String())
	}
}

// TestAgainChild is TestAgain's child: it echoes its input's first line.
func TestAgainChild(t *testing.T) {
	if os.Getenv("TESTPROC_AGAIN_CHILD") == "" {
		t.Skip("run by TestAgain")
	}
	var b [16]byte
	n, _ := os.Stdin.Read(b[:])
	t.Logf("read %s", strings.TrimSpace(string(b[:n])))
	os.Stdout.WriteString("read " + strings.TrimSpace(string(b[:n])) + "\n")
}
