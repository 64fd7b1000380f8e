//go:build linux || windows

package shmlink

import (
	"context"
	"testing"
	"time"
)

// BenchmarkSoftwareCost writes a 64-byte message on one end of a link and
// reads it on the other, in one goroutine: the library's own cost per
// message (locks, checks, publishing, the copies), with no cache line
// moving between CPUs and no wait. A round trip between processes pays it
// twice on top of what a bare ring costs (the "bare ring" round trip of
// `shmlink bench`).
func BenchmarkSoftwareCost(b *testing.B) {
	linkDir(b)
	l, err := Listen("cost", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	dialed := make(chan *Conn, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := Dial(ctx, "cost", nil)
		if err != nil {
			b.Error(err)
		}
		dialed <- c
	}()
	srv := acceptTest(b, l)
	cl := <-dialed
	if cl == nil {
		b.FailNow()
	}
	defer cl.Close()
	msg := make([]byte, 64)
	buf := make([]byte, 256)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := cl.WriteMessage(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := srv.ReadMessageInto(buf); err != nil {
			b.Fatal(err)
		}
	}
}
