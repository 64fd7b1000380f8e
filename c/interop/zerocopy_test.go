//go:build linux

package interop

import (
	"bytes"
	"testing"
	"time"

	"github.com/shmlink/shmlink"
)

// TestZeroCopyWithC: a Go client sends every size class to the C echo
// server through ReserveMessage (one chunk up to the whole ring, padded to
// the start of the data area when it would cross its end: more than the
// half ring that WriteMessage puts in one chunk) and reads the echoes with
// BorrowMessage: the zero-copy calls keep the wire format the C library
// reads and writes.
func TestZeroCopyWithC(t *testing.T) {
	linkDir(t)
	for _, ring := range rings {
		t.Run("ring="+itoa(ring), func(t *testing.T) {
			name := "zc" + itoa(ring)
			p := startC(t, true, "echo-server", name, "1")
			c := dial(t, name, &shmlink.Config{RingSize: ring})
			c.SetDeadline(time.Now().Add(60 * time.Second))
			sizes := append(sizeClasses(ring), ring-8, ring-16)
			for i, n := range sizes {
				want := pattern(1, uint32(i), n)
				b, err := c.ReserveMessage(n)
				if err != nil {
					t.Fatalf("size %d: reserve: %v", n, err)
				}
				copy(b, want)
				if err := c.CommitMessage(n); err != nil {
					t.Fatalf("size %d: commit: %v", n, err)
				}
				got, err := c.BorrowMessage()
				if err != nil {
					t.Fatalf("size %d: borrow: %v", n, err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("size %d: echo of %d bytes differs", n, len(got))
				}
				if err := c.ReleaseMessage(); err != nil {
					t.Fatal(err)
				}
			}
			c.Close()
			expectLine(t, p, "client 0: eof")
			p.Wait(t)
		})
	}
}
