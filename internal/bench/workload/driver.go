package workload

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/shmlink/shmlink/internal/sys"
)

// Driver runs workloads against a peer that Serves the other end of its
// connection. One goroutine at a time may use it.
type Driver struct {
	c      Conn
	flush  func() error
	out    []byte // the message sent, a fixed pattern
	in     []byte
	batch  [][]byte // for a BatchWriter: references to out
	cmdBuf [cmdLen]byte
}

// NewDriver returns a driver over c.
func NewDriver(c Conn) *Driver { return &Driver{c: c, flush: flushFunc(c)} }

func (d *Driver) prepare(cmd command) ([]byte, error) {
	if cmd.size > MaxSize {
		return nil, fmt.Errorf("message size %d over the %d limit", cmd.size, MaxSize)
	}
	if uint64(len(d.out)) < cmd.size {
		d.out = make([]byte, cmd.size)
		for i := range d.out {
			d.out[i] = byte(i*7 + 1)
		}
	}
	if need := max(cmd.size, 8); uint64(len(d.in)) < need {
		d.in = make([]byte, need)
	}
	// The command goes out by itself, before the clock starts.
	if err := d.send(cmd.encode(&d.cmdBuf)); err != nil {
		return nil, fmt.Errorf("send command: %w", err)
	}
	return d.out[:cmd.size], nil
}

func (d *Driver) send(b []byte) error { return send(d.c, d.flush, b) }

// send writes b to c and flushes it.
func send(c Conn, flush func() error, b []byte) error {
	if err := c.WriteMessage(b); err != nil {
		return err
	}
	return flush()
}

// RoundTrips sends n messages of size bytes, each after the echo of the one
// before, and returns the time it took. If lat is not nil, it receives
// the time of each round trip; it must hold n.
func (d *Driver) RoundTrips(size, n int, lat []time.Duration) (time.Duration, error) {
	msg, err := d.prepare(command{opEcho, uint64(size), uint64(n)})
	if err != nil {
		return 0, err
	}
	// sys.Nanotime, not time.Now: on Windows the latter moves in steps of
	// the timer interrupt (up to 15.6 ms), far coarser than a round trip.
	start := sys.Nanotime()
	t := start
	for i := range n {
		if err := d.send(msg); err != nil {
			return 0, fmt.Errorf("round trip %d: write: %w", i, err)
		}
		k, err := d.c.ReadMessageInto(d.in)
		if err != nil {
			return 0, fmt.Errorf("round trip %d: read: %w", i, noEOF(err))
		}
		if k != size {
			return 0, fmt.Errorf("round trip %d: echo has %d bytes, sent %d", i, k, size)
		}
		if lat != nil {
			now := sys.Nanotime()
			lat[i] = time.Duration(now - t)
			t = now
		}
	}
	return time.Duration(sys.Nanotime() - start), nil
}

// OneWay sends n messages of size bytes as fast as the peer takes them,
// flushing after the last, and returns the time until the peer
// acknowledged them all.
func (d *Driver) OneWay(size, n int) (time.Duration, error) {
	msg, err := d.prepare(command{opSink, uint64(size), uint64(n)})
	if err != nil {
		return 0, err
	}
	start := sys.Nanotime()
	if bw, ok := d.c.(BatchWriter); ok {
		if err := d.writeBatches(bw, msg, n); err != nil {
			return 0, err
		}
	} else {
		for i := range n {
			if err := d.c.WriteMessage(msg); err != nil {
				return 0, fmt.Errorf("message %d: write: %w", i, err)
			}
		}
	}
	if err := d.flush(); err != nil {
		return 0, fmt.Errorf("flush %d messages: %w", n, err)
	}
	k, err := d.c.ReadMessageInto(d.in)
	if err != nil {
		return 0, fmt.Errorf("read ack: %w", noEOF(err))
	}
	if k != 8 || binary.LittleEndian.Uint64(d.in) != uint64(n) {
		return 0, fmt.Errorf("bad ack %x for %d messages", d.in[:k], n)
	}
	return time.Duration(sys.Nanotime() - start), nil
}

// writeBatches sends n copies of msg through bw, BufferSize bytes of them
// per call (at least one message): what a buffered stream gathers before
// a write, handed over by reference instead.
func (d *Driver) writeBatches(bw BatchWriter, msg []byte, n int) error {
	per := max(BufferSize/max(len(msg), 1), 1)
	d.batch = d.batch[:0] // refilled each call: msg may have moved since
	for range per {
		d.batch = append(d.batch, msg)
	}
	for sent := 0; sent < n; {
		k, err := bw.WriteMessages(d.batch[:min(per, n-sent)])
		sent += k
		if err != nil {
			return fmt.Errorf("message %d: write: %w", sent, err)
		}
	}
	return nil
}

// RoundTripsIdle is RoundTrips with a pause of gap before each request,
// the workload's think time: the peer has been idle that long when the
// request comes. The pause is a thread sleep (sys.SleepThread) and is not
// part of the time returned; lat, if not nil, must hold n. It also returns
// the pauses' total, which overshoots n×gap by the timer's slack.
func (d *Driver) RoundTripsIdle(size, n int, gap time.Duration, lat []time.Duration) (busy, idle time.Duration, err error) {
	msg, err := d.prepare(command{opEcho, uint64(size), uint64(n)})
	if err != nil {
		return 0, 0, err
	}
	for i := range n {
		t0 := sys.Nanotime()
		if gap > 0 {
			sys.SleepThread(gap)
		}
		t := sys.Nanotime()
		idle += time.Duration(t - t0)
		if err := d.send(msg); err != nil {
			return 0, 0, fmt.Errorf("round trip %d: write: %w", i, err)
		}
		k, err := d.c.ReadMessageInto(d.in)
		if err != nil {
			return 0, 0, fmt.Errorf("round trip %d: read: %w", i, noEOF(err))
		}
		if k != size {
			return 0, 0, fmt.Errorf("round trip %d: echo has %d bytes, sent %d", i, k, size)
		}
		el := time.Duration(sys.Nanotime() - t)
		busy += el
		if lat != nil {
			lat[i] = el
		}
	}
	return busy, idle, nil
}

// PeerCPU returns the CPU time (user and system) that the peer process has
// used so far, or an error wrapping sys.ErrUnsupported where its system
// cannot tell.
func (d *Driver) PeerCPU() (time.Duration, error) {
	if err := d.send(command{op: opCPU}.encode(&d.cmdBuf)); err != nil {
		return 0, fmt.Errorf("ask the peer's CPU time: %w", err)
	}
	var b [8]byte
	k, err := d.c.ReadMessageInto(b[:])
	if err != nil {
		return 0, fmt.Errorf("read the peer's CPU time: %w", noEOF(err))
	}
	if k != 8 {
		return 0, fmt.Errorf("peer's CPU time in %d bytes, want 8", k)
	}
	cpu := int64(binary.LittleEndian.Uint64(b[:]))
	if cpu < 0 {
		return 0, fmt.Errorf("peer's CPU time: %w", sys.ErrUnsupported)
	}
	return time.Duration(cpu), nil
}

// quit tells the peer to return from Serve.
func (d *Driver) quit() error {
	return d.send(command{op: opQuit}.encode(&d.cmdBuf))
}
