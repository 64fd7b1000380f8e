//go:build linux || windows

package shmlink

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestDialWithoutServer: without Wait, a missing server is an immediate,
// clear error.
func TestDialWithoutServer(t *testing.T) {
	linkDir(t)
	start := time.Now()
	_, err := Dial(context.Background(), "nobody", nil)
	if !errors.Is(err, ErrNoServer) {
		t.Fatalf("err = %v, want ErrNoServer", err)
	}
	t.Logf("failed after %v", time.Since(start))
}

// TestClientBeforeServer: a client that starts first waits, and connects
// when the server (another process) starts listening.
func TestClientBeforeServer(t *testing.T) {
	linkDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	type result struct {
		c   *Conn
		err error
	}
	res := make(chan result, 1)
	go func() {
		c, err := Dial(ctx, "later", &Config{Wait: true})
		res <- result{c, err}
	}()
	startChild(t, "echo-server", "later")
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.c.Close()
	if err := r.c.WriteMessage([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	if m, err := r.c.ReadMessage(); err != nil || string(m) != "hi" {
		t.Fatalf("got %q, %v", m, err)
	}
}

func TestDialWaitGivesUp(t *testing.T) {
	linkDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_, err := Dial(ctx, "never", &Config{Wait: true})
	if !errors.Is(err, ErrNoServer) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}
