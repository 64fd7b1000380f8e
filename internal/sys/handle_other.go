//go:build !windows

package sys

import "os"

// Handle is an OS object that travels with a packet (see api.go): on Unix
// an open file descriptor.
type Handle struct{ f *os.File }

// Close releases a received handle.
func (h Handle) Close() error {
	if h.f == nil {
		return nil
	}
	return h.f.Close()
}
