package sys

import "golang.org/x/sys/windows"

// Handle is an OS object that travels with a packet (see api.go): on
// Windows a HANDLE in this process's handle table.
type Handle struct{ h windows.Handle }

// HandlesPulled says that a packet's handles are not in it: the receiver
// duplicates them out of the sender's process (PROTOCOL.md 10.5), so the
// sender must keep them open until the peer has taken them.
const HandlesPulled = true

// Close releases a received handle.
func (h Handle) Close() error {
	if h.h == 0 {
		return nil
	}
	return windows.CloseHandle(h.h)
}
