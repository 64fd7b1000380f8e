package workload

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
)

// Transport is a way for the two processes to connect.
type Transport struct {
	Name string
	// Writes says, for the reader of the results, how a message goes out:
	// WritesEach, WritesBatched, or the API a transport's own Conn uses.
	Writes string
	// Buffered transports hold written messages back until the end of a
	// batch. A round trip, which must flush every message, cannot gain from
	// that, so round trips leave them out.
	Buffered bool
	// StreamsUpTo, if not 0, leaves the transport out of one-way streams
	// of larger messages, where it would only repeat another.
	StreamsUpTo int
	// Listen prepares this process's end; dir is a private temporary
	// directory for socket files.
	Listen func(dir string) (*Endpoint, error)
	// Dial connects, in the peer process, to the Endpoint's Addr.
	Dial func(addr string) (Conn, error)
}

// Runs reports whether a run measures the transport with this workload:
// round trips leave Buffered transports out (a round trip flushes every
// message, so they would only repeat the plain ones), and streams leave
// out a transport whose StreamsUpTo their messages exceed.
func (t *Transport) Runs(size int, roundTrip bool) bool {
	if roundTrip {
		return !t.Buffered
	}
	return t.StreamsUpTo == 0 || size <= t.StreamsUpTo
}

// How the streams of this package write, in Transport.Writes.
const (
	WritesEach    = "per message" // a write system call per message
	WritesBatched = "batched"     // a BufferSize buffer, written when full and at the end of a batch
)

// Endpoint is this process's end of a transport before the peer connects.
type Endpoint struct {
	Addr string // what the peer's Dial gets
	// Files are handed to the peer process as descriptors 3, 4, ... and
	// closed here once it started.
	Files []*os.File
	// Accept returns the connection once the peer has dialled.
	Accept func() (Conn, error)
	// Close releases the endpoint and makes a pending Accept fail; it does
	// not close an accepted connection.
	Close func() error
}

// The stream transports carry length-prefixed messages (see stream); the
// plain ones write each message at once, the Buffered ones, named with a
// "-buffered" suffix, batch small messages.
var (
	// Unix is a SOCK_STREAM unix socket.
	Unix         = netTransport("unix", false)
	UnixBuffered = netTransport("unix", true)
	// TCP is a loopback TCP connection (Go sets TCP_NODELAY).
	TCP         = netTransport("tcp", false)
	TCPBuffered = netTransport("tcp", true)
	// Pipe is a pair of pipes, one each way.
	Pipe         = pipeTransport(false)
	PipeBuffered = pipeTransport(true)
)

// streamTransport returns a Transport, without Listen and Dial, named for
// the base transport and whether it is buffered.
func streamTransport(base string, buffered bool) *Transport {
	if buffered {
		return &Transport{Name: base + "-buffered", Writes: WritesBatched, Buffered: true}
	}
	return &Transport{Name: base, Writes: WritesEach}
}

func netTransport(network string, buffered bool) *Transport {
	t := streamTransport(network, buffered)
	t.Listen = func(dir string) (*Endpoint, error) {
		addr := "127.0.0.1:0"
		if network == "unix" {
			addr = filepath.Join(dir, "bench.sock")
		}
		l, err := net.Listen(network, addr)
		if err != nil {
			return nil, err
		}
		return &Endpoint{
			Addr: l.Addr().String(),
			Accept: func() (Conn, error) {
				c, err := l.Accept()
				if err != nil {
					return nil, err
				}
				return newStream(c, c, c, buffered), nil
			},
			Close: l.Close,
		}, nil
	}
	t.Dial = func(addr string) (Conn, error) {
		c, err := net.Dial(network, addr)
		if err != nil {
			return nil, err
		}
		return newStream(c, c, c, buffered), nil
	}
	return t
}

func pipeTransport(buffered bool) *Transport {
	t := streamTransport("pipe", buffered)
	t.Listen = func(string) (*Endpoint, error) {
		toPeerR, toPeerW, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		fromPeerR, fromPeerW, err := os.Pipe()
		if err != nil {
			toPeerR.Close()
			toPeerW.Close()
			return nil, err
		}
		c := newStream(fromPeerR, toPeerW, closers{fromPeerR, toPeerW}, buffered)
		return &Endpoint{
			Files:  []*os.File{toPeerR, fromPeerW},
			Accept: func() (Conn, error) { return c, nil },
			Close:  func() error { return nil },
		}, nil
	}
	t.Dial = func(string) (Conn, error) {
		r, w := os.NewFile(3, "bench-pipe-in"), os.NewFile(4, "bench-pipe-out")
		if r == nil || w == nil {
			return nil, fmt.Errorf("pipe descriptors 3 and 4 missing")
		}
		return newStream(r, w, closers{r, w}, buffered), nil
	}
	return t
}

type closers []*os.File

func (cs closers) Close() error {
	var first error
	for _, c := range cs {
		if err := c.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// PathTransport makes a Transport of a listener and a dialler that meet at
// a socket path in the private directory, as a shmlink link does. Generic
// so that a listener returning a concrete connection type fits as it is.
func PathTransport[L interface{ Close() error }, C Conn](name string,
	listen func(path string) (L, error), accept func(L) (C, error), dial func(path string) (C, error)) *Transport {
	return &Transport{
		Name: name,
		Listen: func(dir string) (*Endpoint, error) {
			path := endpointPath(dir, name)
			l, err := listen(path)
			if err != nil {
				return nil, err
			}
			return &Endpoint{
				Addr:   path,
				Accept: func() (Conn, error) { return noNil(accept(l)) },
				Close:  l.Close,
			}, nil
		},
		Dial: func(path string) (Conn, error) { return noNil(dial(path)) },
	}
}

// noNil keeps a failed call's nil pointer from becoming a non-nil Conn.
func noNil[C Conn](c C, err error) (Conn, error) {
	if err != nil {
		return nil, err
	}
	return c, nil
}
