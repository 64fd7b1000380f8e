//go:build linux || windows

package shmlink

import (
	"context"
	"testing"
	"time"
)

// panicCtx panics in Err: a stand-in for any panic under the
// writers' lock (a user's context, a Logger's handler run by fail).
type panicCtx struct{ context.Context }

func (panicCtx) Err() error { panic("boom") }

// TestWriteLockAfterPanic: a panic under the writers' lock, recovered by
// the caller, must not leave the lock held, or the next write and Close
// would hang. (It did, from ff464d7 until a review found it.)
func TestWriteLockAfterPanic(t *testing.T) {
	linkDir(t)
	cl, _ := localPair(t, "lockpanic")
	func() {
		defer func() { recover() }()
		cl.WriteMessageContext(panicCtx{context.Background()}, []byte("x"))
	}()
	done := make(chan error, 1)
	go func() { done <- cl.WriteMessage([]byte("y")) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("WriteMessage hangs: the writers' lock was left held by the panic")
	}
}
