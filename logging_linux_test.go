package shmlink

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shmlink/shmlink/internal/testproc"
)

// logRecorder collects slog records as JSON lines.
type logRecorder struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	more chan struct{} // signalled after each record
}

func newLogRecorder() *logRecorder { return &logRecorder{more: make(chan struct{}, 1)} }

func (r *logRecorder) Write(b []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case r.more <- struct{}{}:
	default:
	}
	return r.buf.Write(b)
}

// waitFor returns the first record whose msg contains msg, waiting up to
// ten seconds for it.
func (r *logRecorder) waitFor(t *testing.T, msg string) map[string]any {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		r.mu.Lock()
		lines := strings.Split(r.buf.String(), "\n")
		r.mu.Unlock()
		for _, line := range lines {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && strings.Contains(rec["msg"].(string), msg) {
				return rec
			}
		}
		select {
		case <-r.more:
			continue
		case <-timeout:
		}
		break
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	t.Fatalf("no %q event in:\n%s", msg, r.buf.String())
	return nil
}

// TestLifecycleLogged: a Config's Logger gets every lifecycle event, with
// the peer's pid where there is a peer.
func TestLifecycleLogged(t *testing.T) {
	dir := linkDir(t)
	rec := newLogRecorder()
	cfg := &Config{Logger: slog.New(slog.NewJSONHandler(rec, nil)), MaxClients: 1}
	l, err := Listen("logged", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	rec.waitFor(t, "listening")

	ch := startChild(t, "echo-client", "logged")
	c := acceptTest(t, l)
	if ev := rec.waitFor(t, "connected"); int(ev["peer_pid"].(float64)) != ch.Pid() {
		t.Errorf("connected event %v, want peer_pid %d", ev, ch.Pid())
	}
	// A second client is beyond MaxClients: refused, with the reason.
	other := testproc.Options{Name: "client beyond MaxClients"}.Start(t, "echo-client", "logged")
	if err := other.Exit(t); err == nil {
		t.Error("a client beyond MaxClients connected")
	}
	if ev := rec.waitFor(t, "rejected"); !strings.Contains(ev["reason"].(string), "at most 1") {
		t.Errorf("rejected event %v", ev)
	}
	ch.Kill(t)
	<-c.Done()
	rec.waitFor(t, "peer lost")
	c.Close()

	// A client that breaks the protocol.
	bad := startChild(t, "hostile-client", filepath.Join(dir, "logged.sock"), "invalid-flags")
	c = acceptTest(t, l)
	if _, err := c.ReadMessage(); err == nil {
		t.Fatal("corrupt chunk read without error")
	}
	if ev := rec.waitFor(t, "corruption"); ev["level"] != "ERROR" {
		t.Errorf("corruption event %v", ev)
	}
	c.Close()
	bad.Kill(t)
}
