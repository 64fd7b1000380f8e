package workload

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Driver runs workloads against a peer that Serves the other end of its
// connection. One goroutine at a time may use it.
type Driver struct {
	c      Conn
	flush  func() error
	out    []byte // the message sent, a fixed pattern
	in     []byte
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
	start := time.Now()
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
			now := time.Now()
			lat[i] = now.Sub(t)
			t = now
		}
	}
	return time.Since(start), nil
}

// OneWay sends n messages of size bytes as fast as the peer takes them,
// flushing after the last, and returns the time until the peer
// acknowledged them all.
func (d *Driver) OneWay(size, n int) (time.Duration, error) {
	msg, err := d.prepare(command{opSink, uint64(size), uint64(n)})
	if err != nil {
		return 0, err
	}
	start := time.Now()
	for i := range n {
		if err := d.c.WriteMessage(msg); err != nil {
			return 0, fmt.Errorf("message %d: write: %w", i, err)
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
	return time.Since(start), nil
}

// quit tells the peer to return from Serve.
func (d *Driver) quit() error {
	return d.send(command{op: opQuit}.encode(&d.cmdBuf))
}
