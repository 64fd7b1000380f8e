// Package shmlink connects two processes on one machine through shared
// memory: full-duplex links, opened by name, that carry messages of any
// size in both directions with no system call on the hot path.
//
// A server calls Listen(name) and Accepts links; a client calls Dial(name).
// Each link is a Conn: a net.Conn (stream Read and Write, deadlines) with a
// message API on top (WriteMessage, ReadMessage, ReadMessageInto).
//
//	l, _ := shmlink.Listen("demo", nil)
//	c, _ := shmlink.Dial(ctx, "demo", nil)
//	c.WriteMessage([]byte("hello"))
//	s, _ := l.AcceptConn()
//	m, _ := s.ReadMessage() // "hello"
//
// # How it works
//
// On Linux, a name is a unix socket in a per-user directory (mode 0700). The
// client creates the link's memory as an anonymous, sealed memfd holding two
// single-producer, single-consumer rings, and passes it to the server over
// the socket along with two eventfd doorbells; the server answers with its
// own doorbells. From then on data moves only through the rings: a writer
// copies a message in and publishes an index, a reader copies it out. A side
// with nothing to do spins briefly, then announces that it sleeps and parks
// on its doorbell; the other side rings it only after seeing that
// announcement, so a busy link makes no system calls at all. The socket
// stays open to carry the goodbye and to tell each side, by closing, that
// the other process is gone, however it died.
//
// Nothing is left behind: the memory has no name, and descriptors die with
// their processes. PROTOCOL.md specifies the memory layout and the
// handshake precisely enough for another implementation to join a link.
//
// # Trust
//
// By default only processes of the same user may connect (checked with
// SO_PEERCRED on both sides; on Windows, with the token user SID of the
// pipe's peer process); Config.AllowUIDs and AllowGIDs widen that on
// Linux, and are refused on Windows, where links are same-user only.
// The peer is not trusted: every index and header read from shared memory
// is validated, and a peer that breaks the protocol gets the link closed
// with ErrCorrupt, never a panic, a hang or an out-of-bounds read. The
// memory is sealed against shrinking, so a peer cannot make us fault.
package shmlink
