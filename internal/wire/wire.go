// Package wire encodes and decodes the control packets that travel over a
// link's control connection (a unix socket on Linux; PROTOCOL.md, "Control
// packets"). Data never travels here; the connection carries the
// handshake, handles and the goodbye, and its closing tells each side that
// the other is gone.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Version is the protocol version this package speaks.
const Version = 1

// Magic starts every control packet.
const Magic = "SHLK"

// Type identifies a control packet.
type Type uint8

// Control packet types.
const (
	Hello   Type = 1  // client → server, with 3 handles
	Welcome Type = 2  // server → client, with 2 handles
	Reject  Type = 3  // server → client, then the server closes
	Bye     Type = 4  // either side: clean close, sent after the last data
	Probe   Type = 5  // a client that only wants Info
	Info    Type = 6  // server → prober
	Shut    Type = 7  // either side: writes no more data, still reads; only to a peer with FlagHalfClose
	Stat    Type = 8  // a prober that wants Links
	Links   Type = 9  // server → prober: Info's fields and one record per link
	Taken   Type = 10 // client → server, right after Welcome: its handles are taken; only to a server with FlagTaken
)

// Hello and Welcome flags: what the sender understands beyond version 1's
// base.
const (
	FlagHalfClose uint32 = 1 << 0 // the sender understands Shut
	// FlagTaken, in a Hello: the client answers a Welcome that has it
	// with Taken; in a Welcome: send it. Where handles are pulled out of
	// the sender (Windows), it lets a server keep its doorbells until the
	// client has them.
	FlagTaken uint32 = 1 << 1
)

func (t Type) String() string {
	switch t {
	case Hello:
		return "hello"
	case Welcome:
		return "welcome"
	case Reject:
		return "reject"
	case Bye:
		return "bye"
	case Probe:
		return "probe"
	case Info:
		return "info"
	case Shut:
		return "shut"
	case Stat:
		return "stat"
	case Links:
		return "links"
	case Taken:
		return "taken"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Handles is the number of handles (descriptors, on Linux) a packet of
// type t carries.
func (t Type) Handles() int {
	switch t {
	case Hello:
		return 3 // segment memfd, client's data doorbell, client's space doorbell
	case Welcome:
		return 2 // server's data doorbell, server's space doorbell
	}
	return 0
}

// Reject codes.
const (
	RejectVersion    uint16 = 1 // unsupported protocol version
	RejectPermission uint16 = 2 // peer credentials not allowed
	RejectSegment    uint16 = 3 // segment or handles failed validation
	RejectClosing    uint16 = 4 // listener is closing
	RejectBusy       uint16 = 5 // listener serves its maximum of clients
)

// MaxReason bounds a Reject reason.
const MaxReason = 200

// Msg is a decoded control packet. Fields not used by Type are zero.
type Msg struct {
	Type       Type
	Version    uint16
	PID        uint32
	MaxMessage uint64 // Hello, Welcome: largest message the sender accepts
	Flags      uint32 // Hello, Welcome: Flag... bits
	Code       uint16 // Reject
	Reason     string // Reject
	Since      int64  // Info, Links: listener start, Unix nanoseconds
	Clients    uint32 // Info, Links: connected clients
	Links      []LinkRecord
}

// LinkRecord is one link's counters as its server reports them in Links.
// Sent is the server-to-client direction.
type LinkRecord struct {
	PID            uint32 // the client
	Since          int64  // when it connected, Unix nanoseconds
	RingSize       uint64
	Sent, Received DirRecord
}

// DirRecord is one direction's counters in a LinkRecord.
type DirRecord struct {
	Messages, Bytes, Waits, Sleeps, Wakeups, HighWater, Fill uint64
}

// MaxLinkRecords bounds the records of one Links packet; a server with
// more links reports the first ones and the total in Clients.
const MaxLinkRecords = 256

const (
	linksHeadLen  = 24  // after the header: pid, clients, since, count, reserved
	linkRecordLen = 136 // pid, reserved, since, ring size, 2 × 7 counters
)

// MaxLinksLen is the longest Links packet.
const MaxLinksLen = headerLen + linksHeadLen + MaxLinkRecords*linkRecordLen

func (d DirRecord) fields() [7]uint64 {
	return [7]uint64{d.Messages, d.Bytes, d.Waits, d.Sleeps, d.Wakeups, d.HighWater, d.Fill}
}

func dirRecord(b []byte) DirRecord {
	var f [7]uint64
	for i := range f {
		f[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	return DirRecord{f[0], f[1], f[2], f[3], f[4], f[5], f[6]}
}

const (
	headerLen = 8
	helloLen  = 24 // Hello and Welcome
	infoLen   = 24
)

// ErrMalformed is the root of every decoding error.
var ErrMalformed = errors.New("malformed control packet")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// Encode appends the packet for m to b.
func Encode(b []byte, m Msg) []byte {
	b = append(b, Magic...)
	b = append(b, byte(m.Type), 0)
	b = binary.LittleEndian.AppendUint16(b, Version)
	switch m.Type {
	case Hello, Welcome:
		b = binary.LittleEndian.AppendUint32(b, m.PID)
		b = binary.LittleEndian.AppendUint32(b, m.Flags)
		b = binary.LittleEndian.AppendUint64(b, m.MaxMessage)
	case Reject:
		r := m.Reason
		if len(r) > MaxReason {
			r = r[:MaxReason]
		}
		b = binary.LittleEndian.AppendUint16(b, m.Code)
		b = binary.LittleEndian.AppendUint16(b, uint16(len(r)))
		b = append(b, r...)
	case Info:
		b = binary.LittleEndian.AppendUint32(b, m.PID)
		b = binary.LittleEndian.AppendUint32(b, m.Clients)
		b = binary.LittleEndian.AppendUint64(b, uint64(m.Since))
	case Links:
		recs := m.Links[:min(len(m.Links), MaxLinkRecords)]
		b = binary.LittleEndian.AppendUint32(b, m.PID)
		b = binary.LittleEndian.AppendUint32(b, max(m.Clients, uint32(len(recs))))
		b = binary.LittleEndian.AppendUint64(b, uint64(m.Since))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(recs)))
		b = binary.LittleEndian.AppendUint32(b, 0)
		for _, r := range recs {
			b = binary.LittleEndian.AppendUint32(b, r.PID)
			b = binary.LittleEndian.AppendUint32(b, 0)
			b = binary.LittleEndian.AppendUint64(b, uint64(r.Since))
			b = binary.LittleEndian.AppendUint64(b, r.RingSize)
			for _, d := range []DirRecord{r.Sent, r.Received} {
				for _, v := range d.fields() {
					b = binary.LittleEndian.AppendUint64(b, v)
				}
			}
		}
	}
	return b
}

// Decode parses one packet that arrived with nhandles handles. It checks
// every defined field: length, magic, the handle count, a non-zero message
// limit. Reserved fields (the header's byte 5, the flags of Hello and
// Welcome) are ignored, as PROTOCOL.md ("Reserved fields") requires: a
// sender writes them as zero, and a later revision may give them a meaning
// that a version-1 peer can safely overlook.
//
// A version other than Version is returned, not refused, whatever its
// length and handles: only its header is understood, and the caller
// answers it (a listener with RejectVersion).
func Decode(b []byte, nhandles int) (Msg, error) {
	var m Msg
	if len(b) < headerLen {
		return m, malformed("%d bytes, shorter than a header", len(b))
	}
	if string(b[:4]) != Magic {
		return m, malformed("bad magic %q", b[:4])
	}
	m.Type = Type(b[4])
	m.Version = binary.LittleEndian.Uint16(b[6:])
	body := b[headerLen:]
	if m.Version != Version {
		return m, nil // only the header of a foreign version is understood
	}
	want := 0
	switch m.Type {
	case Hello, Welcome:
		want = helloLen
	case Reject:
		if len(body) < 4 {
			return m, malformed("reject of %d bytes", len(b))
		}
		m.Code = binary.LittleEndian.Uint16(body)
		n := int(binary.LittleEndian.Uint16(body[2:]))
		if n > MaxReason {
			return m, malformed("reject reason of %d bytes", n)
		}
		want = headerLen + 4 + n
		if len(b) == want {
			m.Reason = string(body[4:])
		}
	case Bye, Probe, Shut, Stat, Taken:
		want = headerLen
	case Info:
		want = headerLen + 16
	case Links:
		if len(body) < linksHeadLen {
			return m, malformed("links of %d bytes", len(b))
		}
		n := binary.LittleEndian.Uint32(body[16:])
		if n > MaxLinkRecords || n > binary.LittleEndian.Uint32(body[4:]) {
			return m, malformed("links with %d records for %d clients", n, binary.LittleEndian.Uint32(body[4:]))
		}
		want = headerLen + linksHeadLen + int(n)*linkRecordLen
	default:
		return m, malformed("unknown type %d", uint8(m.Type))
	}
	if len(b) != want {
		return m, malformed("%s of %d bytes, want %d", m.Type, len(b), want)
	}
	if nhandles != m.Type.Handles() {
		return m, malformed("%s carries %d handles, want %d", m.Type, nhandles, m.Type.Handles())
	}
	switch m.Type {
	case Hello, Welcome:
		m.PID = binary.LittleEndian.Uint32(body)
		// Undefined flag bits are ignored (PROTOCOL.md, 5.1); the bits
		// this side knows say what the peer understands.
		m.Flags = binary.LittleEndian.Uint32(body[4:])
		m.MaxMessage = binary.LittleEndian.Uint64(body[8:])
		if m.MaxMessage == 0 {
			return m, malformed("zero message limit")
		}
	case Info:
		m.PID = binary.LittleEndian.Uint32(body)
		m.Clients = binary.LittleEndian.Uint32(body[4:])
		m.Since = int64(binary.LittleEndian.Uint64(body[8:]))
	case Links:
		m.PID = binary.LittleEndian.Uint32(body)
		m.Clients = binary.LittleEndian.Uint32(body[4:])
		m.Since = int64(binary.LittleEndian.Uint64(body[8:]))
		// Reserved fields are ignored (PROTOCOL.md, 5.1).
		for rb := body[linksHeadLen:]; len(rb) > 0; rb = rb[linkRecordLen:] {
			m.Links = append(m.Links, LinkRecord{PID: binary.LittleEndian.Uint32(rb),
				Since: int64(binary.LittleEndian.Uint64(rb[8:])), RingSize: binary.LittleEndian.Uint64(rb[16:]),
				Sent: dirRecord(rb[24:]), Received: dirRecord(rb[80:])})
		}
	}
	return m, nil
}
