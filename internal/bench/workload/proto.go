package workload

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/shmlink/shmlink/internal/sys"
)

// The driver tells the peer what comes next with a command message:
// op, message size and count, each a little-endian uint64.
const (
	opEcho = 1 // read count messages of size, sending each back
	opSink = 2 // read count messages of size, then send an ack
	opQuit = 3 // return
	opCPU  = 4 // send the peer process's CPU time, in nanoseconds
)

const cmdLen = 24

// MaxSize bounds the message size of a workload; the peer's buffer is this
// large.
const MaxSize = 64 << 20

type command struct{ op, size, count uint64 }

func (c command) encode(b *[cmdLen]byte) []byte {
	binary.LittleEndian.PutUint64(b[0:], c.op)
	binary.LittleEndian.PutUint64(b[8:], c.size)
	binary.LittleEndian.PutUint64(b[16:], c.count)
	return b[:]
}

func decodeCommand(b []byte) (command, error) {
	if len(b) != cmdLen {
		return command{}, fmt.Errorf("command of %d bytes, want %d", len(b), cmdLen)
	}
	c := command{binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:]), binary.LittleEndian.Uint64(b[16:])}
	if c.op < opEcho || c.op > opCPU || c.size > MaxSize {
		return command{}, fmt.Errorf("bad command %+v", c)
	}
	return c, nil
}

// Serve runs the peer's side of workloads on c until the driver says quit
// or closes the connection. It counts the messages of each workload and
// checks their sizes; it flushes each echo and ack.
func Serve(c Conn) error {
	flush := flushFunc(c)
	var cmdBuf [cmdLen]byte
	var buf []byte
	for {
		n, err := c.ReadMessageInto(cmdBuf[:])
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read command: %w", err)
		}
		cmd, err := decodeCommand(cmdBuf[:n])
		if err != nil {
			return err
		}
		if cmd.op == opQuit {
			return nil
		}
		if cmd.op == opCPU {
			if err := sendCPU(c, flush); err != nil {
				return err
			}
			continue
		}
		if uint64(len(buf)) < cmd.size {
			buf = make([]byte, cmd.size)
		}
		if err := serve(c, flush, cmd, buf[:cmd.size]); err != nil {
			return err
		}
	}
}

// BatchReader is a Conn that can read many waiting messages in one call
// (shmlink's ReadMessagesInto); a sink uses it for small messages.
type BatchReader interface {
	ReadMessagesInto(b []byte, sizes []int) (int, error)
}

// sinkBatches is the sink of a stream of small messages over a
// BatchReader: it takes what is waiting, a batch at a time, and checks
// every size as the plain sink does.
func sinkBatches(c Conn, br BatchReader, flush func() error, cmd command, size int) error {
	buf := make([]byte, BufferSize)
	sizes := make([]int, BufferSize/size)
	for got := uint64(0); got < cmd.count; {
		want := min(uint64(len(sizes)), cmd.count-got)
		n, err := br.ReadMessagesInto(buf, sizes[:want])
		if err != nil {
			return fmt.Errorf("read message %d of %d: %w", got, cmd.count, noEOF(err))
		}
		for _, s := range sizes[:n] {
			if s != size {
				return fmt.Errorf("message %d has %d bytes, want %d", got, s, size)
			}
			got++
		}
	}
	var ack [8]byte
	binary.LittleEndian.PutUint64(ack[:], cmd.count)
	if err := send(c, flush, ack[:]); err != nil {
		return fmt.Errorf("ack: %w", err)
	}
	return nil
}

func serve(c Conn, flush func() error, cmd command, buf []byte) error {
	if br, ok := c.(BatchReader); ok && cmd.op == opSink && len(buf) > 0 && len(buf) <= CopyMax {
		return sinkBatches(c, br, flush, cmd, len(buf))
	}
	for i := uint64(0); i < cmd.count; i++ {
		n, err := c.ReadMessageInto(buf)
		if err != nil {
			return fmt.Errorf("read message %d of %d: %w", i, cmd.count, noEOF(err))
		}
		if n != len(buf) {
			return fmt.Errorf("message %d has %d bytes, want %d", i, n, len(buf))
		}
		if cmd.op == opEcho {
			if err := send(c, flush, buf); err != nil {
				return fmt.Errorf("echo message %d: %w", i, err)
			}
		}
	}
	if cmd.op == opSink {
		var ack [8]byte
		binary.LittleEndian.PutUint64(ack[:], cmd.count)
		if err := send(c, flush, ack[:]); err != nil {
			return fmt.Errorf("ack: %w", err)
		}
	}
	return nil
}

// sendCPU sends this process's CPU time, or -1 where the system cannot
// tell it.
func sendCPU(c Conn, flush func() error) error {
	cpu, err := sys.ProcessCPUTime()
	if err != nil {
		cpu = -1
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(cpu))
	if err := send(c, flush, b[:]); err != nil {
		return fmt.Errorf("send CPU time: %w", err)
	}
	return nil
}
