package workload

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/windows"
)

// Competitors are the transports that shmlink is measured against on
// Windows, each written per message and buffered: a named pipe, what a
// Windows program would use between two processes, and loopback TCP. (A
// pair of anonymous pipes would need descriptors inherited the Unix way.)
var Competitors = []*Transport{NamedPipe, NamedPipeBuffered, TCP, TCPBuffered}

// Plain is the usual alternative for request/response here, the baseline
// of round trips and of the sweeps: the named pipe; PlainBuffered is it
// buffered.
var Plain, PlainBuffered = NamedPipe, NamedPipeBuffered

// NamedPipe is a byte-mode named pipe, local clients only, opened
// overlapped on both ends so that os.NewFile puts it on Go's I/O
// completion port, as a net.Conn is.
var (
	NamedPipe         = namedPipeTransport(false)
	NamedPipeBuffered = namedPipeTransport(true)
)

// pipeBuffer is the size the pipe's kernel buffers are asked for each way.
const pipeBuffer = BufferSize

func namedPipeTransport(buffered bool) *Transport {
	t := streamTransport("npipe", buffered)
	t.Listen = func(string) (*Endpoint, error) {
		var id [8]byte
		rand.Read(id[:])
		l := &pipeListener{name: `\\.\pipe\shmlink-bench-` + hex.EncodeToString(id[:])}
		if err := l.create(true); err != nil {
			return nil, err
		}
		return &Endpoint{
			Addr: l.name,
			Accept: func() (Conn, error) {
				f, err := l.accept()
				if err != nil {
					return nil, err
				}
				return newStream(f, f, f, buffered), nil
			},
			Close: l.close,
		}, nil
	}
	t.Dial = func(name string) (Conn, error) {
		f, err := dialPipe(name)
		if err != nil {
			return nil, err
		}
		return newStream(f, f, f, buffered), nil
	}
	return t
}

// pipeListener hands out the instances of a named pipe one connection at
// a time: it creates an instance, waits for a client to open it, and
// creates the next when asked to accept again.
type pipeListener struct {
	name string
	mu   sync.Mutex
	next windows.Handle // the instance waiting for a client; 0 if none
	done bool
}

func (l *pipeListener) create(first bool) error {
	name, err := windows.UTF16PtrFromString(l.name)
	if err != nil {
		return err
	}
	flags := uint32(windows.PIPE_ACCESS_DUPLEX | windows.FILE_FLAG_OVERLAPPED)
	if first {
		// Nobody else may own the name: a squatter would see our data.
		flags |= windows.FILE_FLAG_FIRST_PIPE_INSTANCE
	}
	h, err := windows.CreateNamedPipe(name, flags,
		windows.PIPE_TYPE_BYTE|windows.PIPE_READMODE_BYTE|windows.PIPE_WAIT|windows.PIPE_REJECT_REMOTE_CLIENTS,
		windows.PIPE_UNLIMITED_INSTANCES, pipeBuffer, pipeBuffer, 0, nil)
	if err != nil {
		return fmt.Errorf("create named pipe %s: %w", l.name, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		windows.CloseHandle(h)
		return errors.New("named pipe listener closed")
	}
	l.next = h
	return nil
}

// accept waits until a client opened the waiting instance and returns it
// as a file, then leaves a new instance waiting.
func (l *pipeListener) accept() (*os.File, error) {
	l.mu.Lock()
	h := l.next
	l.mu.Unlock()
	if h == 0 {
		if err := l.create(false); err != nil {
			return nil, err
		}
		l.mu.Lock()
		h = l.next
		l.mu.Unlock()
	}
	// The wait goes through an event, not the completion port: the
	// handle joins the port only in os.NewFile, after this.
	ev, err := windows.CreateEvent(nil, 1, 0, nil)
	if err != nil {
		return nil, fmt.Errorf("connect named pipe: %w", err)
	}
	defer windows.CloseHandle(ev)
	ov := windows.Overlapped{HEvent: ev}
	err = windows.ConnectNamedPipe(h, &ov)
	switch {
	case err == nil, errors.Is(err, windows.ERROR_PIPE_CONNECTED):
	case errors.Is(err, windows.ERROR_IO_PENDING):
		var n uint32
		if err := windows.GetOverlappedResult(h, &ov, &n, true); err != nil {
			return nil, fmt.Errorf("connect named pipe: %w", err)
		}
	default:
		return nil, fmt.Errorf("connect named pipe: %w", err)
	}
	l.mu.Lock()
	l.next = 0
	l.mu.Unlock()
	return os.NewFile(uintptr(h), l.name), nil
}

// close releases the waiting instance, which makes a pending accept fail.
func (l *pipeListener) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.done = true
	if l.next == 0 {
		return nil
	}
	windows.CancelIoEx(l.next, nil)
	err := windows.CloseHandle(l.next)
	l.next = 0
	return err
}

// dialTimeout bounds how long a client waits for a free instance.
const dialTimeout = 10 * time.Second

// dialPipe opens the named pipe. Between two accepts no instance may be
// waiting; the client retries until the listener has made the next one.
func dialPipe(name string) (*os.File, error) {
	p, err := windows.UTF16PtrFromString(name)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(dialTimeout)
	for {
		h, err := windows.CreateFile(p, windows.GENERIC_READ|windows.GENERIC_WRITE, 0, nil,
			windows.OPEN_EXISTING, windows.FILE_FLAG_OVERLAPPED, 0)
		if err == nil {
			return os.NewFile(uintptr(h), name), nil
		}
		if !errors.Is(err, windows.ERROR_PIPE_BUSY) && !errors.Is(err, windows.ERROR_FILE_NOT_FOUND) || time.Now().After(deadline) {
			return nil, fmt.Errorf("open named pipe %s: %w", name, err)
		}
		time.Sleep(time.Millisecond)
	}
}

// endpointPath is where a PathTransport's listener meets its dialler. A
// Windows link is a named pipe, so the run's private directory only lends
// its unique name to the pipe's.
func endpointPath(dir, name string) string {
	return `\\.\pipe\` + name + "-" + filepath.Base(dir)
}
