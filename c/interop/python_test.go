//go:build linux

package interop

import (
	"bytes"
	"context"
	"io"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/shmlink/shmlink/internal/cpeer"
	"github.com/shmlink/shmlink/internal/testproc"
)

// TestPythonExample runs c/examples/python/client.py, Python through the C
// library with ctypes, against a Go server that answers each message in
// upper case.
func TestPythonExample(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("no python3: the Python example's test needs it (on Debian: apt-get install python3): %v", err)
	}
	linkDir(t)
	l := listen(t, "py", nil)
	served := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c, err := l.AcceptContext(ctx)
		if err != nil {
			served <- err
			return
		}
		defer c.Close()
		for {
			m, err := c.ReadMessage()
			if err != nil {
				if err == io.EOF {
					err = nil
				}
				served <- err
				return
			}
			if err := c.WriteMessage(bytes.ToUpper(m)); err != nil {
				served <- err
				return
			}
		}
	}()
	script := filepath.Join(cpeer.Source(), "examples", "python", "client.py")
	p := testproc.Options{Env: []string{"SHMLINK_LIB=" + cpeer.Library(t)}}.Exec(t, py, script, "py",
		"hello", "from python", "", "ünïcode")
	for _, want := range []string{"HELLO", "FROM PYTHON", "", "ÜNÏCODE"} {
		expectLine(t, p, want)
	}
	p.Wait(t)
	if err := <-served; err != nil {
		t.Fatalf("Go server: %v", err)
	}
}
