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

// Flusher is a Conn that may hold written messages back until Flush. The
// driver and the peer flush after the last message of a batch and after
// each message that must be answered.
type Flusher interface {
	Flush() error
}

// BatchWriter is a Conn that can send a batch of messages in one call
// (shmlink's WriteMessages). A one-way stream over it hands the messages
// over a batch at a time, as a program that has a batch in hand would,
// without gathering them into a buffer first.
type BatchWriter interface {
	WriteMessages(msgs [][]byte) (int, error)
}

// flushFunc returns c's Flush, or a no-op for a Conn that holds nothing back.
func flushFunc(c Conn) func() error {
	if f, ok := c.(Flusher); ok {
		return f.Flush
	}
	return func() error { return nil }
}

// BufferSize is the size of a stream's read buffer and of a buffered
// stream's write buffer.
const BufferSize = 64 << 10

// CopyMax is the largest message a stream copies behind its length prefix,
// to send both in one write; larger ones go out from the caller's buffer
// with writev (two writes on a pipe), where the copy would cost more than
// the extra call.
const CopyMax = 4096

// stream frames messages over a byte stream the way an application would:
// a 4-byte little-endian length, then the bytes. Reads go through a buffer,
// so that a reader catching up parses many messages per system call.
//
// An unbuffered stream writes every message at once, as a request/response
// protocol must: one system call per message. A buffered one gathers small
// messages in a BufferSize buffer and writes it when it is full or on
// Flush, as a one-way stream of small messages would be written by anyone
// who cares for its throughput; a large message goes out at once, with
// what the buffer held before it.
type stream struct {
	w        io.Writer
	r        *bufio.Reader
	c        io.Closer
	buffered bool
	wbuf     []byte // framed messages not written yet; never grows
	rhdr     [4]byte
	iov      [2][]byte
	bufs     net.Buffers
}

// NewStream returns an unbuffered Conn that frames messages over rw.
func NewStream(rw io.ReadWriteCloser) Conn { return newStream(rw, rw, rw, false) }

func newStream(r io.Reader, w io.Writer, c io.Closer, buffered bool) *stream {
	wcap := 4 + CopyMax
	if buffered {
		wcap = BufferSize
	}
	return &stream{w: w, r: bufio.NewReaderSize(r, BufferSize), c: c, buffered: buffered, wbuf: make([]byte, 0, wcap)}
}

func (s *stream) WriteMessage(b []byte) error {
	if len(b) > math.MaxUint32 {
		return fmt.Errorf("message of %d bytes does not fit a 4-byte length", len(b))
	}
	large := len(b) > CopyMax
	need := 4
	if !large {
		need += len(b)
	}
	if len(s.wbuf)+need > cap(s.wbuf) {
		if err := s.Flush(); err != nil {
			return err
		}
	}
	s.wbuf = binary.LittleEndian.AppendUint32(s.wbuf, uint32(len(b)))
	if large {
		// s.bufs is consumed by WriteTo; refilled from s.iov, it
		// allocates nothing.
		s.iov = [2][]byte{s.wbuf, b}
		s.bufs = s.iov[:]
		_, err := s.bufs.WriteTo(s.w)
		s.wbuf = s.wbuf[:0]
		return err
	}
	s.wbuf = append(s.wbuf, b...)
	if s.buffered {
		return nil
	}
	return s.Flush()
}

// Flush writes the messages held back, if any.
func (s *stream) Flush() error {
	if len(s.wbuf) == 0 {
		return nil
	}
	_, err := s.w.Write(s.wbuf)
	s.wbuf = s.wbuf[:0]
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
