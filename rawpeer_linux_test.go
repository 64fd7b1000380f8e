package shmlink

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmlink/shmlink/internal/ring"
	"github.com/shmlink/shmlink/internal/testproc"
	"github.com/shmlink/shmlink/internal/wire"
)

// A raw peer speaks the protocol by hand, from PROTOCOL.md up, so that it
// can break any rule on purpose. It is an implementation of its own: system
// calls straight through golang.org/x/sys/unix and net, nothing of
// internal/sys or internal/wake, only the ring layout (internal/ring) and
// the packet codec (internal/wire). It only runs in child processes.

// rawPeer is one end of a link set up by hand. mine/theirs name the rings
// this end produces into and consumes from.
type rawPeer struct {
	sock             *net.UnixConn
	file             *os.File // the segment's memfd
	seg              rawSeg
	mine, theirs     ring.Direction
	data, space      rawBell       // our doorbells: the peer rings them
	peerData, peerSp rawBell       // the peer's doorbells: we ring them
	steps            *bufio.Reader // the parent's go-aheads, one line each
}

// producer returns a well-behaved producer on our ring, for the parts of a
// scenario that send valid traffic first.
// It never waits: a full ring fails the write.
func (p *rawPeer) producer() (*ring.Producer, error) {
	return ring.NewProducer(p.seg.layout.Ring(p.seg.mem, p.mine), rawWaiter{p})
}

// rawWaiter is the raw peer's ring.Waiter: no waiting, and a ring of the
// peer's doorbell whenever the peer sleeps.
type rawWaiter struct{ p *rawPeer }

func (rawWaiter) WaitData(context.Context) error { return errors.New("ring empty") }
func (rawWaiter) WaitSpace(context.Context, uint64) error {
	return errors.New("ring full")
}
func (w rawWaiter) NotifyData()  { w.p.peerData.ring() }
func (w rawWaiter) NotifySpace() { w.p.peerSp.ring() }

// publish sets our tail to t and rings the peer, as an honest producer
// would after writing.
func (p *rawPeer) publish(t uint64) {
	p.seg.word(p.mine, rawTail).Store(t)
	p.peerData.ring()
}

// release sets the head of the peer's ring to h and rings the peer.
func (p *rawPeer) release(h uint64) {
	p.seg.word(p.theirs, rawHead).Store(h)
	p.peerSp.ring()
}

// putChunk writes a chunk header (and total, for a long header) at off in
// our ring's data area, and returns the bytes it occupies with its payload.
func (p *rawPeer) putChunk(off uint64, length uint32, flags byte, total uint64) uint64 {
	return p.seg.putChunk(p.mine, off, length, flags, total)
}

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
		if err := p.data.wait(deadline); err != nil {
			return 0, fmt.Errorf("waiting for tail %d: %w", want, err)
		}
		sleeping.Store(0)
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

// rawSeals are the seals a segment must carry (PROTOCOL.md, 3).
const rawSeals = unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_SEAL

// rawMemfd returns a memfd of size bytes with the given seals, whose first
// bytes are header (when not nil).
func rawMemfd(size int64, seals int, header []byte) (*os.File, error) {
	fd, err := unix.MemfdCreate("rawpeer", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "memfd")
	if err := unix.Ftruncate(fd, size); err != nil {
		return nil, fmt.Errorf("ftruncate: %w", err)
	}
	if _, err := f.WriteAt(header, 0); err != nil {
		return nil, err
	}
	if seals != 0 {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
			return nil, fmt.Errorf("seal: %w", err)
		}
	}
	return f, nil
}

// rawMap maps size bytes of f, shared, for reading and writing.
func rawMap(f *os.File, size int64) ([]byte, error) {
	mem, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap: %w", err)
	}
	return mem, nil
}

// newRawSegment creates a sealed segment with rings of ringSize and maps it.
func newRawSegment(ringSize uint64) (*os.File, rawSeg, error) {
	l := ring.Layout{RingSize: [2]uint64{ringSize, ringSize}}
	f, err := rawMemfd(int64(l.Size()), rawSeals, nil)
	if err != nil {
		return nil, rawSeg{}, err
	}
	mem, err := rawMap(f, int64(l.Size()))
	if err != nil {
		return nil, rawSeg{}, err
	}
	return f, rawSeg{mem: mem, layout: l}, ring.Init(mem, l)
}

// sealedSize is the size of a segment the peer sent, which must carry
// rawSeals so that it cannot shrink under our mapping.
func sealedSize(f *os.File) (int64, error) {
	seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
	if err != nil {
		return 0, fmt.Errorf("segment seals: %w", err)
	}
	if seals&rawSeals != rawSeals {
		return 0, fmt.Errorf("segment sealed %#x, want %#x", seals, rawSeals)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return 0, err
	}
	return st.Size, nil
}

// rawBell is a doorbell (PROTOCOL.md, 1 and 4.2): an eventfd. Ours are
// non-blocking, so that waiting on one honours a deadline.
type rawBell struct{ f *os.File }

func newRawBell() (rawBell, error) {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return rawBell{}, fmt.Errorf("eventfd: %w", err)
	}
	return rawBell{os.NewFile(uintptr(fd), "eventfd")}, nil
}

// peerBell takes a doorbell the peer sent, which must be an eventfd: a
// peer that sent a pipe or a file is at fault.
func peerBell(f *os.File) (rawBell, error) {
	kind, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
	if err != nil || kind != "anon_inode:[eventfd]" {
		return rawBell{}, fmt.Errorf("doorbell is %q (%v), want an eventfd", kind, err)
	}
	return rawBell{f}, nil
}

// ring adds one to the eventfd's counter. A saturated counter (EAGAIN)
// leaves the sleeper runnable anyway, so errors are dropped.
func (b rawBell) ring() {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	b.f.Write(one[:])
}

// wait blocks until the doorbell has been rung, or until deadline.
func (b rawBell) wait(deadline time.Time) error {
	if err := b.f.SetReadDeadline(deadline); err != nil {
		return err
	}
	var count [8]byte
	_, err := b.f.Read(count[:])
	return err
}

// rawSend writes pkt as one packet, with files as its SCM_RIGHTS
// descriptors (PROTOCOL.md, 5).
func rawSend(c *net.UnixConn, pkt []byte, files ...*os.File) error {
	var rights []byte
	if len(files) > 0 {
		var fds []int
		for _, f := range files {
			fds = append(fds, int(f.Fd()))
		}
		rights = unix.UnixRights(fds...)
	}
	_, _, err := c.WriteMsgUnix(pkt, rights, nil)
	return err
}

// rawRecv reads one packet into buf and returns its length and the
// descriptors that came with it, refusing more than max of them. The end of
// the connection is io.EOF.
func rawRecv(c *net.UnixConn, buf []byte, max int) (int, []*os.File, error) {
	oob := make([]byte, unix.CmsgSpace(4*(max+4)))
	n, oobn, flags, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		return 0, nil, err
	}
	var files []*os.File
	cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	for i := 0; err == nil && i < len(cmsgs); i++ {
		var fds []int
		fds, err = unix.ParseUnixRights(&cmsgs[i])
		for _, fd := range fds {
			files = append(files, os.NewFile(uintptr(fd), "received"))
		}
	}
	switch {
	case err != nil:
	case flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0:
		err = fmt.Errorf("packet truncated (flags %#x)", flags)
	case len(files) > max:
		err = fmt.Errorf("%d descriptors, want at most %d", len(files), max)
	case n == 0 && len(files) == 0:
		err = io.EOF
	}
	if err != nil {
		for _, f := range files {
			f.Close()
		}
		return 0, nil, err
	}
	return n, files, nil
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
	if err := rawSend(c, pkt, files...); err != nil {
		c.Close()
		return nil, wire.Msg{}, nil, fmt.Errorf("send: %w", err)
	}
	var buf [512]byte
	n, got, err := rawRecv(c, buf[:], 2)
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
	p := &rawPeer{file: seg, seg: s, mine: ring.ClientToServer, theirs: ring.ServerToClient, steps: bufio.NewReader(os.Stdin)}
	if p.data, err = newRawBell(); err != nil {
		return nil, err
	}
	if p.space, err = newRawBell(); err != nil {
		return nil, err
	}
	sock, m, files, err := rawExchange(path, rawHello(), seg, p.data.f, p.space.f)
	if err != nil {
		return nil, err
	}
	p.sock = sock
	if m.Type != wire.Welcome || len(files) != 2 {
		return nil, fmt.Errorf("got %s (%q) with %d descriptors, want a welcome with 2", m.Type, m.Reason, len(files))
	}
	if p.peerData, err = peerBell(files[0]); err != nil {
		return nil, err
	}
	if p.peerSp, err = peerBell(files[1]); err != nil {
		return nil, err
	}
	return p, nil
}

// rawAccept listens on path, says ready, accepts one client and runs a
// correct server handshake by hand, but for the welcome packet, which is
// welcome's (with our doorbells if it gives no descriptors).
func rawAccept(path string, welcome func(m wire.Msg) ([]byte, []*os.File)) (*rawPeer, error) {
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
	n, files, err := rawRecv(sock, buf[:], 3)
	if err != nil {
		return nil, err
	}
	m, err := wire.Decode(buf[:n], len(files))
	if err != nil || m.Type != wire.Hello || len(files) != 3 {
		return nil, fmt.Errorf("hello: %v with %d descriptors: %v", m.Type, len(files), err)
	}
	size, err := sealedSize(files[0])
	if err != nil {
		return nil, err
	}
	mem, err := rawMap(files[0], size)
	if err != nil {
		return nil, err
	}
	l, err := ring.Parse(mem)
	if err != nil {
		return nil, err
	}
	p := &rawPeer{sock: sock, file: files[0], seg: rawSeg{mem: mem, layout: l}, mine: ring.ServerToClient,
		theirs: ring.ClientToServer, steps: bufio.NewReader(os.Stdin)}
	if p.peerData, err = peerBell(files[1]); err != nil {
		return nil, err
	}
	if p.peerSp, err = peerBell(files[2]); err != nil {
		return nil, err
	}
	if p.data, err = newRawBell(); err != nil {
		return nil, err
	}
	if p.space, err = newRawBell(); err != nil {
		return nil, err
	}
	pkt, fds := welcome(m)
	if fds == nil {
		fds = []*os.File{p.data.f, p.space.f}
	}
	if err := rawSend(sock, pkt, fds...); err != nil {
		return nil, err
	}
	return p, nil
}

// goodWelcome is the welcome an honest server sends.
func goodWelcome(wire.Msg) ([]byte, []*os.File) {
	return wire.Encode(nil, wire.Msg{Type: wire.Welcome, PID: uint32(os.Getpid()), MaxMessage: 1 << 30}), nil
}
