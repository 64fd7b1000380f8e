//go:build !windows

package sys

import "os"

// Handle is an OS object that travels with a packet (see api.go): on Unix
// an open file descriptor.
type Handle struct{ f *os.File }

// HandlesPulled says whether a packet's handles must be pulled out of the
// sender's process by the receiver. On Unix they travel in the packet
// (SCM_RIGHTS), and the sender may close its own at once.
const HandlesPulled = false

// Close releases a received handle.
func (h Handle) Close() error {
	if h.f == nil {
		return nil
	}
	return h.f.Close()
}
