//go:build linux || windows

package shmlink

import "testing"

// BenchmarkSoftwareCost writes 64-byte messages on one end of a link and
// reads them on the other, in one goroutine, one by one and in batches:
// the library's own cost per message (locks, checks, publishing, the
// copies), with no cache line moving between CPUs and no wait. A round trip between processes pays it
// twice on top of what a bare ring costs (the "bare ring" round trip of
// `shmlink bench`).
func BenchmarkSoftwareCost(b *testing.B) {
	linkDir(b)
	cl, srv := localPair(b, "cost")
	msg := make([]byte, 64)
	buf := make([]byte, 64<<10)
	b.Run("message", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if err := cl.WriteMessage(msg); err != nil {
				b.Fatal(err)
			}
			if _, err := srv.ReadMessageInto(buf); err != nil {
				b.Fatal(err)
			}
		}
	})
	// A batch of 64 as the one-way stream sends them: one WriteMessages,
	// then ReadMessagesInto until all are in. ns/op is per message.
	batch := make([][]byte, 64)
	for i := range batch {
		batch[i] = msg
	}
	sizes := make([]int, len(batch))
	// The same stream with BufferMessage, each message straight into the
	// ring, and one Flush per 64.
	b.Run("buffered", func(b *testing.B) {
		b.ReportAllocs()
		for n := 0; n < b.N; n += len(batch) {
			for _, m := range batch {
				if err := cl.BufferMessage(m); err != nil {
					b.Fatal(err)
				}
			}
			if err := cl.Flush(); err != nil {
				b.Fatal(err)
			}
			readAll(b, srv, buf, sizes)
		}
	})
	b.Run("batch", func(b *testing.B) {
		b.ReportAllocs()
		for n := 0; n < b.N; n += len(batch) {
			if _, err := cl.WriteMessages(batch); err != nil {
				b.Fatal(err)
			}
			readAll(b, srv, buf, sizes)
		}
	})
}

// readAll reads len(sizes) messages from c with ReadMessagesInto.
func readAll(b *testing.B, c *Conn, buf []byte, sizes []int) {
	for got := 0; got < len(sizes); {
		k, err := c.ReadMessagesInto(buf, sizes)
		if err != nil {
			b.Fatal(err)
		}
		got += k
	}
}
