package shmlink

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/shmlink/shmlink/internal/ring"
	"github.com/shmlink/shmlink/internal/sys"
	"github.com/shmlink/shmlink/internal/testproc"
	"github.com/shmlink/shmlink/internal/wake"
	"github.com/shmlink/shmlink/internal/wire"
)

// A raw peer speaks the protocol by hand, from the wire format up, so that
// it can break any rule on purpose. It only runs in child processes.

// Control block layout of a segment (PROTOCOL.md, "Memory layout"),
// restated here because a hostile peer must be able to write any field.
const (
	rawControlOff  = 1024
	rawControlSize = 512
	rawTail        = 0
	rawHead        = 128
	rawReaderSleep = 256
	rawWriterSleep = 384
)

// rawSeg is a segment as a raw peer sees it: bytes it may scribble on.
type rawSeg struct {
	mem    []byte
	layout ring.Layout
}

func (s *rawSeg) word(d ring.Direction, off int) *atomic.Uint64 {
	return (*atomic.Uint64)(unsafe.Pointer(&s.mem[rawControlOff+int(d)*rawControlSize+off]))
}

func (s *rawSeg) flag(d ring.Direction, off int) *atomic.Uint32 {
	return (*atomic.Uint32)(unsafe.Pointer(&s.mem[rawControlOff+int(d)*rawControlSize+off]))
}

// data is ring d's data area.
func (s *rawSeg) data(d ring.Direction) []byte {
	off := uint64(ring.HeaderSize)
	if d == ring.ServerToClient {
		off += s.layout.RingSize[0]
	}
	return s.mem[off : off+s.layout.RingSize[d]]
}

// rawPeer is one end of a link set up by hand. mine/theirs name the rings
// this end produces into and consumes from.
type rawPeer struct {
	sock             *net.UnixConn
	file             *os.File // the segment's memfd
	seg              rawSeg
	mine, theirs     ring.Direction
	data, space      *wake.Doorbell // rung by the peer
	peerData, peerSp *wake.Bell     // rung by us
	steps            *bufio.Reader  // the parent's go-aheads, one line each
}

// producer returns a well-behaved producer on our ring, for the parts of a
// scenario that send valid traffic first.
func (p *rawPeer) producer() (*ring.Producer, error) {
	pr, err := ring.NewProducer(p.seg.layout.Ring(p.seg.mem, p.mine))
	if err != nil {
		return nil, err
	}
	pr.Notify = p.peerData.Ring
	return pr, nil
}

// publish sets our tail to t and rings the peer, as an honest producer
// would after writing.
func (p *rawPeer) publish(t uint64) {
	p.seg.word(p.mine, rawTail).Store(t)
	p.peerData.Ring()
}

// release sets the head of the peer's ring to h and rings the peer.
func (p *rawPeer) release(h uint64) {
	p.seg.word(p.theirs, rawHead).Store(h)
	p.peerSp.Ring()
}

// putChunk writes a chunk header (and total, for a long header) at off in
// our ring's data area, and returns the bytes it occupies with its payload.
func (p *rawPeer) putChunk(off uint64, length uint32, flags byte, total uint64) uint64 {
	b := p.seg.data(p.mine)[off:]
	le32(b, length)
	b[4], b[5], b[6], b[7] = flags, 0, 0, 0
	hl := uint64(8)
	if flags == ring.FlagBegin {
		le64(b[8:], total)
		hl = 16
	}
	return hl + (uint64(length)+7)&^7
}

func le32(b []byte, v uint32) { b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24) }
func le64(b []byte, v uint64) { le32(b, uint32(v)); le32(b[4:], uint32(v>>32)) }

// waitTail waits, as a sleeping consumer would, until the peer's ring tail
// reaches at least want.
func (p *rawPeer) waitTail(want uint64, deadline time.Time) (uint64, error) {
	tail := p.seg.word(p.theirs, rawTail)
	sleeping := p.seg.flag(p.theirs, rawReaderSleep)
	for {
		if t := tail.Load(); t >= want {
			return t, nil
		}
		sleeping.Store(1)
		if t := tail.Load(); t >= want {
			sleeping.Store(0)
			return t, nil
		}
		if err := p.data.Wait(deadline); err != nil {
			return 0, fmt.Errorf("waiting for tail %d: %w", want, err)
		}
	}
}

// step waits for the parent's next go-ahead on stdin.
func (p *rawPeer) step() error {
	_, err := p.steps.ReadString('\n')
	return err
}

// hold keeps the link open until the parent closes our stdin, so that the
// parent sees the damage rather than a lost peer.
func (p *rawPeer) hold() error {
	_, err := io.Copy(io.Discard, p.steps)
	return err
}

// rawHello builds a valid hello packet.
func rawHello() []byte {
	return wire.Encode(nil, wire.Msg{Type: wire.Hello, PID: uint32(os.Getpid()), MaxMessage: 1 << 30})
}

// newRawSegment creates a sealed segment with rings of ringSize and maps it.
func newRawSegment(ringSize uint64) (*os.File, rawSeg, error) {
	l := ring.Layout{RingSize: [2]uint64{ringSize, ringSize}}
	f, err := sys.CreateSegment("raw", int64(l.Size()))
	if err != nil {
		return nil, rawSeg{}, err
	}
	mem, err := sys.Map(f, int(l.Size()))
	if err != nil {
		f.Close()
		return nil, rawSeg{}, err
	}
	return f, rawSeg{mem: mem, layout: l}, ring.Init(mem, l)
}

// rawExchange connects to path, sends one packet with files and returns
// the decoded answer and the descriptors that came with it. A server that
// hangs up without answering gives io.EOF.
func rawExchange(path string, pkt []byte, files ...*os.File) (*net.UnixConn, wire.Msg, []*os.File, error) {
	c, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		return nil, wire.Msg{}, nil, err
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if err := sys.SendMsg(c, pkt, files...); err != nil {
		c.Close()
		return nil, wire.Msg{}, nil, fmt.Errorf("send: %w", err)
	}
	var buf [512]byte
	n, got, err := sys.RecvMsg(c, buf[:], 2)
	if err != nil {
		c.Close()
		return nil, wire.Msg{}, nil, err
	}
	m, err := wire.Decode(buf[:n], len(got))
	if err != nil {
		c.Close()
		return nil, wire.Msg{}, nil, err
	}
	c.SetDeadline(time.Time{})
	return c, m, got, nil
}

// rawDial runs a correct client handshake by hand with rings of ringSize.
func rawDial(path string, ringSize uint64) (*rawPeer, error) {
	seg, s, err := newRawSegment(ringSize)
	if err != nil {
		return nil, err
	}
	data, err := wake.NewDoorbell()
	if err != nil {
		return nil, err
	}
	space, err := wake.NewDoorbell()
	if err != nil {
		return nil, err
	}
	sock, m, files, err := rawExchange(path, rawHello(), seg, data.File(), space.File())
	if err != nil {
		return nil, err
	}
	if m.Type != wire.Welcome {
		return nil, fmt.Errorf("got %s (%q), want welcome", m.Type, m.Reason)
	}
	p := &rawPeer{sock: sock, file: seg, seg: s, mine: ring.ClientToServer, theirs: ring.ServerToClient,
		data: data, space: space, steps: bufio.NewReader(os.Stdin)}
	if p.peerData, err = wake.NewBell(files[0]); err != nil {
		return nil, err
	}
	if p.peerSp, err = wake.NewBell(files[1]); err != nil {
		return nil, err
	}
	return p, nil
}

// rawAccept listens on path, accepts one client and runs a correct server
// handshake by hand. ready is called once the socket listens.
func rawAccept(path string, ready func(), welcome func(m wire.Msg) ([]byte, []*os.File)) (*rawPeer, error) {
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	testproc.Ready()
	sock, err := ln.AcceptUnix()
	if err != nil {
		return nil, err
	}
	var buf [256]byte
	n, files, err := sys.RecvMsg(sock, buf[:], 3)
	if err != nil {
		return nil, err
	}
	m, err := wire.Decode(buf[:n], len(files))
	if err != nil || m.Type != wire.Hello {
		return nil, fmt.Errorf("hello: %v %v", m.Type, err)
	}
	size, err := sys.CheckSegment(files[0])
	if err != nil {
		return nil, err
	}
	mem, err := sys.Map(files[0], int(size))
	if err != nil {
		return nil, err
	}
	l, err := ring.Parse(mem)
	if err != nil {
		return nil, err
	}
	p := &rawPeer{sock: sock, file: files[0], seg: rawSeg{mem: mem, layout: l}, mine: ring.ServerToClient,
		theirs: ring.ClientToServer, steps: bufio.NewReader(os.Stdin)}
	if p.peerData, err = wake.NewBell(files[1]); err != nil {
		return nil, err
	}
	if p.peerSp, err = wake.NewBell(files[2]); err != nil {
		return nil, err
	}
	if p.data, err = wake.NewDoorbell(); err != nil {
		return nil, err
	}
	if p.space, err = wake.NewDoorbell(); err != nil {
		return nil, err
	}
	pkt, fds := welcome(m)
	if fds == nil {
		fds = []*os.File{p.data.File(), p.space.File()}
	}
	if err := sys.SendMsg(sock, pkt, fds...); err != nil {
		return nil, err
	}
	return p, nil
}

// goodWelcome is the welcome an honest server sends.
func goodWelcome(wire.Msg) ([]byte, []*os.File) {
	return wire.Encode(nil, wire.Msg{Type: wire.Welcome, PID: uint32(os.Getpid()), MaxMessage: 1 << 30}), nil
}
