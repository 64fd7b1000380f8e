package limit

import (
	"time"

	"github.com/shmlink/shmlink/internal/sys"
)

// Copier measures one process copying messages into successive places of
// a RingSize buffer, as a writer copies into a ring: the bandwidth of one
// copy on one CPU, with no other process involved.
type Copier struct {
	src, dst []byte
	off      int
}

// Copy copies n messages of size bytes and returns the time it took.
func (c *Copier) Copy(size, n int) time.Duration {
	if c.dst == nil {
		c.dst = make([]byte, RingSize)
		for i := range c.dst {
			c.dst[i] = 1 // fault the pages in before the clock starts
		}
	}
	if len(c.src) < size {
		c.src = make([]byte, size)
		for i := range c.src {
			c.src[i] = byte(i*7 + 1)
		}
	}
	size = min(size, RingSize)
	start := sys.Nanotime()
	for range n {
		if c.off+size > RingSize {
			c.off = 0
		}
		copy(c.dst[c.off:], c.src[:size])
		c.off += size
	}
	return time.Duration(sys.Nanotime() - start)
}
