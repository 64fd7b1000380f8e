// Package limit measures what the machine allows two processes that share
// memory, with nothing of shmlink in between: a bare cache-line ping-pong
// (its time is where the host placed the two vCPUs), a bare busy-spin ring
// (each message one copy in and one copy out behind a length, both sides
// spinning, published in batches as shmlink's are) and a single process's
// copy. `shmlink bench` prints these
// beside shmlink, measured in the same run, so that shmlink's figures can
// be read as a fraction of the limit.
//
// The peer is a child process (this program re-executed, see Start) that
// inherits the shared segment and two pipes: commands come down one pipe,
// and the child says on the other that it is spinning, so the clock starts
// only once both sides are. Between commands the child blocks in a read,
// costing the other measurements of the run nothing.
package limit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/shmlink/shmlink/internal/sys"
)

// RingSize is the data area of the bare ring: 4 MiB, large enough that a
// 1 MiB message never waits for the reader of the one before.
const RingSize = 4 << 20

// Batch is how many bytes of messages the bare ring's writer copies in
// before it publishes them, and its reader copies out before it says so:
// the 64 KiB that shmlink's WriteMessages and the buffered sockets gather
// in the benchmark. A message of Batch or more is published alone. Without
// it, small messages would each move the published index's cache line
// across, and the limit would sit below shmlink's batching.
const Batch = 64 << 10

// The segment: one cache line per shared word, so that a word written by
// one side is never on the line the other side writes, then the ring.
const (
	offPing   = 0   // ping-pong: written by the parent
	offPong   = 128 // ping-pong: written by the child
	offHead   = 256 // ring: bytes published by the parent
	offTail   = 384 // ring: bytes consumed by the child
	offData   = 4096
	segSize   = offRT + 4*RTRing
	hdrLen    = 8
	padMarker = ^uint64(0) // a header that says "skip to the ring's start"
)

// The commands, each three little-endian uint64s: op, size, count.
const (
	opPingPong = 1 // answer count pings
	opRing     = 2 // consume count messages of size bytes
	// echo count messages through the round trip rings of a shape
	opIndexedRT = 3
	opStampedRT = 4
	cmdLen      = 24
)

const (
	envPeer = "SHMLINK_BENCH_LIMIT"
	envPin  = "SHMLINK_BENCH_LIMIT_PIN"
)

// ErrNotMeasured wraps the reason a limit could not be measured on this
// system.
var ErrNotMeasured = errors.New("not measured")

// Peer is the child process of the two-process limits and this side of
// them. One goroutine at a time may use it.
type Peer struct {
	seg      *sys.Segment
	mem      []byte
	cmd      *os.File // commands to the child
	ready    *os.File // the child's replies
	proc     *exec.Cmd
	seq      uint64       // the last ping sent
	head     uint64       // ring bytes published
	msg      []byte       // what the ring carries, a fixed pattern
	rt       [2][2]rtRing // round trip rings by shape: out, in
	rtBuf    []byte       // where echoes are copied out
	cmdBuf   [cmdLen]byte
	replyBuf [8]byte
	exited   chan struct{} // closed when the child has exited
	waitErr  error         // the child's exit, once exited is closed
}

// PeerRequested reports whether this process was started by Start, and so
// should call RunPeer.
func PeerRequested() bool { return os.Getenv(envPeer) != "" }

// Start starts cmd as the limit peer and hands it the shared segment. cmd
// must call RunPeer; Start adds to its environment and descriptors. With
// pin >= 0, the child pins itself to that CPU. Where the system has no
// shared memory backend, the error wraps ErrNotMeasured.
func Start(cmd *exec.Cmd, pin int) (_ *Peer, err error) {
	seg, err := sys.CreateSegment("shmlink-bench-limit", segSize)
	if err != nil {
		return nil, fmt.Errorf("%w: shared memory: %w", ErrNotMeasured, err)
	}
	p := &Peer{seg: seg, mem: seg.Mem(), exited: make(chan struct{})}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	segFile, err := sys.InheritFile(seg.Handle())
	if err != nil {
		return nil, fmt.Errorf("%w: hand the segment to a child: %w", ErrNotMeasured, err)
	}
	cmdR, cmdW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		cmdR.Close()
		cmdW.Close()
		return nil, err
	}
	p.cmd, p.ready = cmdW, readyR
	cmd.Env = append(cmd.Environ(), envPeer+"=1")
	if pin >= 0 {
		cmd.Env = append(cmd.Env, envPin+"="+strconv.Itoa(pin))
	}
	passFiles(cmd, segFile, cmdR, readyW)
	err = cmd.Start()
	cmdR.Close()
	readyW.Close()
	startedWith(segFile)
	if err != nil {
		return nil, fmt.Errorf("start limit peer: %w", err)
	}
	p.proc = cmd
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// word returns the shared word at off.
func word(mem []byte, off int) *atomic.Uint64 {
	return (*atomic.Uint64)(unsafe.Pointer(&mem[off]))
}

// command sends a command and waits until the child is spinning on it.
func (p *Peer) command(op, size, count uint64) error {
	binary.LittleEndian.PutUint64(p.cmdBuf[0:], op)
	binary.LittleEndian.PutUint64(p.cmdBuf[8:], size)
	binary.LittleEndian.PutUint64(p.cmdBuf[16:], count)
	if _, err := p.cmd.Write(p.cmdBuf[:]); err != nil {
		return fmt.Errorf("limit peer: send command: %w", err)
	}
	if _, err := io.ReadFull(p.ready, p.replyBuf[:1]); err != nil {
		return fmt.Errorf("limit peer: not ready: %w", noEOF(err))
	}
	return nil
}

// waitDone waits for the child's reply that a command finished, and checks
// it.
func (p *Peer) waitDone(want uint64) error {
	if _, err := io.ReadFull(p.ready, p.replyBuf[:]); err != nil {
		return fmt.Errorf("limit peer: no result: %w", noEOF(err))
	}
	if got := binary.LittleEndian.Uint64(p.replyBuf[:]); got != want {
		return fmt.Errorf("limit peer: counted %d, want %d", got, want)
	}
	return nil
}

// PingPong bounces a cache line between the processes n times and returns
// the time it took. If lat is not nil it receives the time of each round
// trip, as the mean over groups of GroupSize: reading the clock around
// every round trip would cost a good part of one.
func (p *Peer) PingPong(n int, lat []time.Duration) (time.Duration, error) {
	ping, pong := word(p.mem, offPing), word(p.mem, offPong)
	if err := p.command(opPingPong, p.seq, uint64(n)); err != nil {
		return 0, err
	}
	// sys.Nanotime, not time.Now: on Windows the latter moves in steps of
	// the timer interrupt (up to 15.6 ms), far coarser than a round trip.
	start := sys.Nanotime()
	t := start
	for i := range n {
		p.seq++
		ping.Store(p.seq)
		for w := p.watch(); pong.Load() != p.seq; {
			if err := w.check(); err != nil {
				return 0, err
			}
		}
		if lat != nil {
			t = groupTimes(lat, i, n, t)
		}
	}
	el := time.Duration(sys.Nanotime() - start)
	return el, p.waitDone(uint64(n))
}

// GroupSize is how many ping-pongs share one reading of the clock.
const GroupSize = 64

// groupTimes gives round trips their times, a group at a time: after round
// trip i of n, when i ends a group of GroupSize or the run,
// it reads the clock and sets the group's times to its mean since t, the
// clock at the group's start; it returns the start of the next group.
func groupTimes(lat []time.Duration, i, n int, t int64) int64 {
	if (i+1)%GroupSize != 0 && i != n-1 {
		return t
	}
	now := sys.Nanotime()
	g := i%GroupSize + 1
	for k := i + 1 - g; k <= i; k++ {
		lat[k] = time.Duration(now-t) / time.Duration(g)
	}
	return now
}

// Ring sends n messages of size bytes through the bare ring and returns
// the time until the child consumed the last. With chunk > 0, a larger
// message goes as records of chunk bytes, which the reader copies out
// while the writer fills the next, as shmlink streams a large message;
// otherwise each message is one record.
func (p *Peer) Ring(size, n, chunk int) (time.Duration, error) {
	if size > RingSize/2 || chunk > RingSize/4 {
		return 0, fmt.Errorf("bare ring: message of %d bytes over half the ring, or chunks of %d over a quarter", size, chunk)
	}
	if chunk <= 0 || chunk > size {
		chunk = size
	}
	if len(p.msg) < size {
		p.msg = make([]byte, size)
		for i := range p.msg {
			p.msg[i] = byte(i*7 + 1)
		}
	}
	msg := p.msg[:size]
	head, tailW := word(p.mem, offHead), word(p.mem, offTail)
	data := p.mem[offData:]
	if err := p.command(opRing, uint64(size), uint64(n)); err != nil {
		return 0, err
	}
	start := sys.Nanotime()
	pos, tail := p.head, tailW.Load()
	published := pos
	for i := range n {
		for at := 0; ; {
			piece := msg[at:min(at+chunk, size)]
			rec := uint64(hdrLen + align8(len(piece)))
			off := pos & (RingSize - 1)
			need := rec
			if off+rec > RingSize {
				need += RingSize - off // a pad to the end, then the record at 0
			}
			if pos+need-tail > RingSize {
				if pos != published {
					head.Store(pos) // the reader may be waiting for these
					published = pos
				}
				for w := p.watch(); pos+need-tail > RingSize; {
					if tail = tailW.Load(); tail > pos {
						return 0, fmt.Errorf("limit peer: consumed %d of %d bytes written", tail, pos)
					}
					if err := w.check(); err != nil {
						return 0, err
					}
				}
			}
			if need != rec {
				binary.LittleEndian.PutUint64(data[off:], padMarker)
				pos += RingSize - off
				off = 0
			}
			binary.LittleEndian.PutUint64(data[off:], uint64(len(piece)))
			copy(data[off+hdrLen:], piece)
			pos += rec
			at += len(piece)
			last := at >= size
			if pos-published >= Batch || last && i == n-1 {
				head.Store(pos)
				published = pos
			}
			if last {
				break
			}
		}
	}
	for w := p.watch(); tailW.Load() != pos; {
		if err := w.check(); err != nil {
			return 0, err
		}
	}
	el := time.Duration(sys.Nanotime() - start)
	p.head = pos
	return el, p.waitDone(uint64(n))
}

// spinTimeout bounds a wait for the child inside a measurement: far
// longer than any batch, short enough that a wedged child fails the run.
const spinTimeout = 10 * time.Second

// spinWatch keeps a spin loop from outliving the other process: every
// 1<<16 turns it checks that the other still runs and the wait has not
// passed its deadline. The parent's watch (p set) looks at the child's
// exit; the child's, at its parent process, which it outlives when
// killed: an orphan would spin on a CPU for good.
type spinWatch struct {
	p        *Peer
	ppid     int // the child's: its parent's pid when it started
	n        uint
	deadline time.Time
}

func (p *Peer) watch() spinWatch { return spinWatch{p: p} }

func (c *child) watch() spinWatch { return spinWatch{ppid: c.ppid} }

func (w *spinWatch) check() error {
	if w.n++; w.n&(1<<16-1) != 0 {
		return nil
	}
	if w.deadline.IsZero() {
		w.deadline = time.Now().Add(spinTimeout)
	}
	if w.p != nil {
		select {
		case <-w.p.exited:
			return fmt.Errorf("limit peer exited: %v", w.p.waitErr)
		default:
		}
	} else if os.Getppid() != w.ppid { // reparented (Linux): the parent has gone
		return errors.New("the parent process has gone")
	}
	if time.Now().After(w.deadline) {
		if w.p != nil {
			return fmt.Errorf("limit peer: no progress within %v", spinTimeout)
		}
		return fmt.Errorf("no progress within %v", spinTimeout) // RunPeer says who
	}
	return nil
}

func align8(n int) int { return (n + 7) &^ 7 }

// Close ends the child (the end of its command pipe) and releases the
// segment. It reports the child's failure, if any.
func (p *Peer) Close() error {
	var errs []error
	if p.cmd != nil {
		errs = append(errs, p.cmd.Close())
	}
	if p.proc != nil {
		select {
		case <-p.exited:
			if p.waitErr != nil {
				errs = append(errs, fmt.Errorf("limit peer: %w", p.waitErr))
			}
		case <-time.After(10 * time.Second):
			p.proc.Process.Kill()
			<-p.exited
			errs = append(errs, errors.New("limit peer did not exit within 10s; killed"))
		}
		p.proc = nil
	}
	if p.ready != nil {
		p.ready.Close()
	}
	if p.seg != nil {
		errs = append(errs, p.seg.Close())
		p.seg = nil
	}
	return errors.Join(errs...)
}

// RunPeer is the child's part: it attaches the segment and answers
// commands until the parent closes the command pipe.
func RunPeer() error {
	if s := os.Getenv(envPin); s != "" {
		cpu, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("limit peer: bad CPU %q", s)
		}
		if err := sys.PinProcess([]int{cpu}); err != nil {
			return fmt.Errorf("limit peer: %w", err)
		}
		runtime.GOMAXPROCS(1) // one CPU: no second thread to contend for it

	}
	segFile, cmdR, readyW, err := childFiles()
	if err != nil {
		return fmt.Errorf("limit peer: %w", err)
	}
	defer cmdR.Close()
	defer readyW.Close()
	seg, err := sys.AttachSegment(sys.InheritedHandle(segFile), segSize, segSize)
	if err != nil {
		return fmt.Errorf("limit peer: %w", err)
	}
	defer seg.Close()
	c := child{mem: seg.Mem(), buf: make([]byte, RingSize/2), ppid: os.Getppid()}
	var cmd [cmdLen]byte
	for {
		if _, err := io.ReadFull(cmdR, cmd[:]); err != nil {
			if err == io.EOF {
				return nil
			}
			return fmt.Errorf("limit peer: read command: %w", err)
		}
		op, size, count := binary.LittleEndian.Uint64(cmd[0:]), binary.LittleEndian.Uint64(cmd[8:]), binary.LittleEndian.Uint64(cmd[16:])
		if _, err := readyW.Write([]byte{1}); err != nil {
			return fmt.Errorf("limit peer: %w", err)
		}
		var got uint64
		switch op {
		case opPingPong:
			if got, err = c.pingPong(size, count); err != nil {
				return fmt.Errorf("limit peer: %w", err)
			}
		case opRing:
			if got, err = c.ring(size, count); err != nil {
				return fmt.Errorf("limit peer: %w", err)
			}
		case opIndexedRT, opStampedRT:
			if got, err = c.roundTrip(op == opStampedRT, count); err != nil {
				return fmt.Errorf("limit peer: %w", err)
			}
		default:
			return fmt.Errorf("limit peer: bad command %d", op)
		}
		var reply [8]byte
		binary.LittleEndian.PutUint64(reply[:], got)
		if _, err := readyW.Write(reply[:]); err != nil {
			return fmt.Errorf("limit peer: %w", err)
		}
	}
}

// child is the child's side of the limits.
type child struct {
	mem  []byte
	tail uint64       // ring bytes consumed
	buf  []byte       // where messages are copied out
	rt   [2][2]rtRing // round trip rings by shape: in, out
	ppid int          // the parent\'s pid, for spinWatch
}

// pingPong answers count pings after the one numbered last.
func (c *child) pingPong(last, count uint64) (uint64, error) {
	ping, pong := word(c.mem, offPing), word(c.mem, offPong)
	for i := last + 1; i <= last+count; i++ {
		for w := c.watch(); ping.Load() != i; {
			if err := w.check(); err != nil {
				return i - last - 1, err
			}
		}
		pong.Store(i)
	}
	return count, nil
}

// ring consumes count messages of size bytes, each one record or several
// whose lengths add up to size, copying each out. The parent is trusted no
// further than the bounds of the ring and of the message.
func (c *child) ring(size, count uint64) (uint64, error) {
	head, tailW := word(c.mem, offHead), word(c.mem, offTail)
	data := c.mem[offData:]
	pos, avail, told := c.tail, c.tail, c.tail
	acc := uint64(0) // bytes of the current message so far
	for got := uint64(0); got < count; {
		if avail == pos {
			if pos != told {
				tailW.Store(pos) // caught up: give the writer its room
				told = pos
			}
			for w := c.watch(); avail == pos; avail = head.Load() {
				if err := w.check(); err != nil {
					return got, err
				}
			}
		}
		off := pos & (RingSize - 1)
		if off+hdrLen > RingSize {
			return got, fmt.Errorf("ring header at %d crosses the end", off)
		}
		n := binary.LittleEndian.Uint64(data[off:])
		if n == padMarker {
			pos += RingSize - off
			continue
		}
		if n > size-acc || off+hdrLen+n > RingSize || avail-pos < hdrLen+n {
			return got, fmt.Errorf("bad record of %d bytes at %d, %d of a %d-byte message so far", n, off, acc, size)
		}
		copy(c.buf[acc:], data[off+hdrLen:off+hdrLen+n])
		acc += n
		pos += uint64(hdrLen + align8(int(n)))
		if pos-told >= Batch {
			tailW.Store(pos)
			told = pos
		}
		if acc == size {
			got, acc = got+1, 0
		}
	}
	tailW.Store(pos)
	c.tail = pos
	return count, nil
}

// noEOF turns an end of stream inside a reply into the error it is.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
