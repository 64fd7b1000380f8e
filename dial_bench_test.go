//go:build linux || windows

package shmlink

import (
	"context"
	"testing"
)

// BenchmarkDial measures setting up and tearing down a link to a live
// server in another process: socket connect, memfd and eventfds, the
// handshake, and the close.
func BenchmarkDial(b *testing.B) {
	linkDir(b)
	startChild(b, "echo-server", "dialbench")
	ctx := context.Background()
	cfg := &Config{RingSize: 64 << 10}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c, err := Dial(ctx, "dialbench", cfg)
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}
