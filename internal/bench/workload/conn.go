package workload

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"net"
)

// Conn is what a workload needs of a connection: whole messages each way.
// A *shmlink.Conn is one as it is.
type Conn interface {
	WriteMessage(b []byte) error
	// ReadMessageInto copies the next message into b and returns its length.
	ReadMessageInto(b []byte) (int, error)
	Close() error
}

// copyMax is the largest message a stream copies behind its length prefix
// to send both in one write; larger ones go out with writev (or two writes
// on a pipe), where the copy would cost more than the extra call.
const copyMax = 4096

// stream frames messages over a byte stream the way an application would:
// a 4-byte little-endian length, then the bytes. Each message costs one
// write system call, and reads go through a buffer so that a reader
// catching up takes many small messages per system call.
type stream struct {
	w       io.Writer
	r       *bufio.Reader
	c       io.Closer
	scratch []byte
	whdr    [4]byte
	rhdr    [4]byte
	bufs    net.Buffers
}

// NewStream returns a Conn that frames messages over rw.
func NewStream(rw io.ReadWriteCloser) Conn { return newStream(rw, rw, rw) }

func newStream(r io.Reader, w io.Writer, c io.Closer) *stream {
	return &stream{w: w, r: bufio.NewReaderSize(r, 64<<10), c: c, scratch: make([]byte, 4+copyMax)}
}

func (s *stream) WriteMessage(b []byte) error {
	if len(b) > math.MaxUint32 {
		return fmt.Errorf("message of %d bytes does not fit a 4-byte length", len(b))
	}
	if len(b) <= copyMax {
		m := s.scratch[:4+len(b)]
		binary.LittleEndian.PutUint32(m, uint32(len(b)))
		copy(m[4:], b)
		_, err := s.w.Write(m)
		return err
	}
	binary.LittleEndian.PutUint32(s.whdr[:], uint32(len(b)))
	s.bufs = append(s.bufs[:0], s.whdr[:], b)
	_, err := s.bufs.WriteTo(s.w)
	return err
}

func (s *stream) ReadMessageInto(b []byte) (int, error) {
	if _, err := io.ReadFull(s.r, s.rhdr[:]); err != nil {
		return 0, err
	}
	n := int(binary.LittleEndian.Uint32(s.rhdr[:]))
	if n > len(b) {
		return 0, fmt.Errorf("message of %d bytes exceeds the %d-byte buffer", n, len(b))
	}
	if _, err := io.ReadFull(s.r, b[:n]); err != nil {
		return 0, noEOF(err)
	}
	return n, nil
}

func (s *stream) Close() error { return s.c.Close() }

// noEOF turns an end of stream inside a message into the error it is.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
