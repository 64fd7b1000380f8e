package sys

import "golang.org/x/sys/windows"

// Handle is an OS object that travels with a packet (see api.go): on
// Windows a HANDLE in this process's handle table.
type Handle struct{ h windows.Handle }

// Close releases a received handle.
func (h Handle) Close() error {
	if h.h == 0 {
		return nil
	}
	return windows.CloseHandle(h.h)
}
