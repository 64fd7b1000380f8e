package shmlink

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmlink/shmlink/internal/ring"
	"github.com/shmlink/shmlink/internal/testproc"
	"github.com/shmlink/shmlink/internal/wire"
)

// Handshake abuse: a client that sends the listener a bad first packet or
// bad descriptors (an unsealed or misshapen segment, a pipe for a doorbell,
// too many or too few descriptors...) must get a Reject with the right
// code, and the listener must go on serving honest clients.

// handshakeAbuse builds a bad first packet and its descriptors; want is
// the Reject code the listener must answer with.
type handshakeAbuse struct {
	want  uint16
	build func() ([]byte, []*os.File, error)
}

// goodFiles returns a valid segment and two eventfds.
func goodFiles() ([]*os.File, error) {
	seg, _, err := newRawSegment(hostileRing)
	if err != nil {
		return nil, err
	}
	return withEventfds(seg)
}

func withEventfds(seg *os.File) ([]*os.File, error) {
	files := []*os.File{seg}
	for range 2 {
		b, err := newRawBell()
		if err != nil {
			return nil, err
		}
		files = append(files, b.f)
	}
	return files, nil
}

// validHeader is the header page of a segment with two rings of ringSize.
func validHeader(ringSize uint64) []byte {
	l := ring.Layout{RingSize: [2]uint64{ringSize, ringSize}}
	mem := make([]byte, l.Size())
	if err := ring.Init(mem, l); err != nil {
		panic(err)
	}
	return mem[:ring.HeaderSize]
}

// segmentAbuse sends a good hello with a bad segment.
func segmentAbuse(size int64, seals int, header []byte) func() ([]byte, []*os.File, error) {
	return func() ([]byte, []*os.File, error) {
		seg, err := rawMemfd(size, seals, header)
		if err != nil {
			return nil, nil, err
		}
		files, err := withEventfds(seg)
		return rawHello(), files, err
	}
}

// packetAbuse sends a bad packet with good descriptors.
func packetAbuse(pkt []byte, nfiles int) func() ([]byte, []*os.File, error) {
	return func() ([]byte, []*os.File, error) {
		files, err := goodFiles()
		if err != nil {
			return nil, nil, err
		}
		for len(files) < nfiles {
			files = append(files, files[1])
		}
		return pkt, files[:nfiles], nil
	}
}

func patched(b []byte, off int, v byte) []byte {
	b = append([]byte(nil), b...)
	b[off] = v
	return b
}

var (
	goodSize     = int64(ring.Layout{RingSize: [2]uint64{hostileRing, hostileRing}}.Size())
	garbageBytes = bytes.Repeat([]byte{0x5A, 0xC3, 0x00, 0xFF}, ring.HeaderSize/4)
	oddRingSize  = patched(validHeader(hostileRing), 24, 0x88) // ring 0 of 0x1088 bytes
)

var handshakeAbuses = map[string]handshakeAbuse{
	"unsealed":        {wire.RejectSegment, segmentAbuse(goodSize, 0, validHeader(hostileRing))},
	"no-shrink-seal":  {wire.RejectSegment, segmentAbuse(goodSize, unix.F_SEAL_GROW|unix.F_SEAL_SEAL, validHeader(hostileRing))},
	"larger-than-hdr": {wire.RejectSegment, segmentAbuse(goodSize+4096, rawSeals, validHeader(hostileRing))},
	"smaller-than-hdr": {wire.RejectSegment,
		segmentAbuse(goodSize, rawSeals, validHeader(2*hostileRing))},
	"tiny":           {wire.RejectSegment, segmentAbuse(100, rawSeals, nil)},
	"huge":           {wire.RejectSegment, segmentAbuse(3<<30, rawSeals, validHeader(hostileRing))},
	"garbage-header": {wire.RejectSegment, segmentAbuse(goodSize, rawSeals, garbageBytes)},
	"odd-ring-size":  {wire.RejectSegment, segmentAbuse(goodSize, rawSeals, oddRingSize)},
	"pipe-doorbell": {wire.RejectSegment, func() ([]byte, []*os.File, error) {
		files, err := goodFiles()
		if err != nil {
			return nil, nil, err
		}
		r, w, err := os.Pipe()
		files[1] = r
		_ = w // kept open so that a write into the pipe would not fail
		return rawHello(), files, err
	}},
	"file-segment": {wire.RejectSegment, func() ([]byte, []*os.File, error) {
		f, err := os.CreateTemp("", "shmlink-abuse")
		if err != nil {
			return nil, nil, err
		}
		os.Remove(f.Name())
		if _, err := f.Write(validHeader(hostileRing)); err != nil {
			return nil, nil, err
		}
		if err := f.Truncate(goodSize); err != nil {
			return nil, nil, err
		}
		files, err := withEventfds(f)
		return rawHello(), files, err
	}},
	"eventfd-segment": {wire.RejectSegment, func() ([]byte, []*os.File, error) {
		files, err := goodFiles()
		if err != nil {
			return nil, nil, err
		}
		files[0] = files[1]
		return rawHello(), files, err
	}},
	"too-many-fds": {wire.RejectSegment, packetAbuse(rawHello(), 4)},
	"too-few-fds":  {wire.RejectSegment, packetAbuse(rawHello(), 2)},
	"no-fds":       {wire.RejectSegment, packetAbuse(rawHello(), 0)},
	"bad-magic":    {wire.RejectSegment, packetAbuse(patched(rawHello(), 0, 'X'), 3)},
	"bad-version":  {wire.RejectVersion, packetAbuse(patched(rawHello(), 6, wire.Version+1), 3)},
	"bad-type":     {wire.RejectSegment, packetAbuse(wire.Encode(nil, wire.Msg{Type: wire.Bye}), 0)},
	"truncated":    {wire.RejectSegment, packetAbuse(rawHello()[:13], 3)},
	"long":         {wire.RejectSegment, packetAbuse(append(rawHello(), 0), 3)},
	"zero-limit":   {wire.RejectSegment, packetAbuse(wire.Encode(nil, wire.Msg{Type: wire.Hello, PID: 1}), 3)},
	"write-sealed": {wire.RejectSegment,
		segmentAbuse(goodSize, rawSeals|unix.F_SEAL_WRITE, validHeader(hostileRing))},
	// A foreign version gets code 1 whatever its length and descriptors
	// (PROTOCOL.md, 6).
	"future-long":  {wire.RejectVersion, packetAbuse(append(patched(rawHello(), 6, wire.Version+1), make([]byte, 40)...), 3)},
	"future-2fds":  {wire.RejectVersion, packetAbuse(patched(rawHello(), 6, wire.Version+1), 2)},
	"future-probe": {wire.RejectVersion, packetAbuse(patched(wire.Encode(nil, wire.Msg{Type: wire.Probe}), 6, 2), 0)},

	// Reserved fields are ignored (PROTOCOL.md, "Reserved fields"): a
	// hello with its flags and reserved header byte set is welcomed.
	"reserved-set": {accepted, packetAbuse(patched(patched(rawHello(), 5, 0xFF), 12, 1), 3)},
}

// accepted, as a handshakeAbuse's want, means that the listener must
// welcome the hello.
const accepted = 0

// exitNoReject is the handshake-abuse child's exit status when the
// listener closed the connection without saying why.
const exitNoReject = 3

// childHandshakeAbuse: args are the socket path and a handshakeAbuses key.
// It fails unless the listener answers with the expected Reject.
func childHandshakeAbuse(args []string) error {
	a, err := scenario(args, handshakeAbuses)
	if err != nil {
		return err
	}
	testproc.Ready()
	pkt, files, err := a.build()
	if err != nil {
		return fmt.Errorf("build: %w", err)
	}
	c, m, got, err := rawExchange(args[0], pkt, files...)
	if err == io.EOF {
		fmt.Fprintln(os.Stderr, "the listener hung up without a reject")
		os.Exit(exitNoReject)
	}
	if err != nil {
		return fmt.Errorf("no reject: %w", err)
	}
	defer c.Close()
	for _, f := range got {
		f.Close()
	}
	if a.want == accepted {
		if m.Type != wire.Welcome || len(got) != 2 {
			return fmt.Errorf("got %s code %d (%q) with %d descriptors, want a welcome", m.Type, m.Code, m.Reason, len(got))
		}
		return nil
	}
	if m.Type != wire.Reject || m.Code != a.want {
		return fmt.Errorf("got %s code %d (%q), want reject code %d", m.Type, m.Code, m.Reason, a.want)
	}
	fmt.Fprintf(os.Stderr, "rejected: code %d: %s\n", m.Code, m.Reason)
	// The server hangs up after a Reject.
	var buf [64]byte
	if _, err := c.Read(buf[:]); err != io.EOF {
		return fmt.Errorf("after reject: %v, want EOF", err)
	}
	return nil
}

func TestHandshakeAbuse(t *testing.T) {
	dir := linkDir(t)
	l, err := Listen("abuse", &Config{HandshakeTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	path := sockPath(dir, "abuse")
	for name := range handshakeAbuses {
		t.Run(name, func(t *testing.T) {
			ch := startChild(t, "handshake-abuse", path, name)
			ch.Stdin.Close()
			err := ch.Exit(t)
			var ee *exec.ExitError
			if name == "too-many-fds" && errors.As(err, &ee) && ee.ExitCode() == exitNoReject {
				t.Fatalf("regression: a hello with too many descriptors is dropped without a Reject (listener.go handshake returns the RecvMsg error before any reject): %v", err)
			}
			if err != nil {
				t.Fatalf("child: %v", err)
			}
			if handshakeAbuses[name].want == accepted {
				acceptTest(t, l).Close()
			}
		})
	}
	// Whatever came before, an honest client still gets a working link.
	startChild(t, "echo-client", "abuse")
	c := acceptTest(t, l)
	if err := c.WriteMessage([]byte("still here")); err != nil {
		t.Fatal(err)
	}
	if m, err := c.ReadMessage(); err != nil || string(m) != "still here" {
		t.Fatalf("got %q, %v", m, err)
	}
	noneQueued(t, l)
}
