package shmlink

import "strconv"

// Addr is the address of one end of a link: the link's name. It implements
// net.Addr.
type Addr struct {
	Name string // the name given to Listen or Dial
	Path string // the unix socket file the name resolved to
	PID  int    // the process at this end, 0 if not known
}

// Network returns "shmlink".
func (a *Addr) Network() string { return "shmlink" }

// String returns the link name and, when known, the process at this end in
// brackets ("demo[4242]"), so that a server tells its clients apart the
// way it would by their socket addresses.
func (a *Addr) String() string {
	if a.PID == 0 {
		return a.Name
	}
	return a.Name + "[" + strconv.Itoa(a.PID) + "]"
}
