//go:build linux || windows

package shmlink

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// halfCloser is what *net.UnixConn, *net.TCPConn and *Conn share for
// half-close.
type halfCloser interface {
	net.Conn
	CloseWrite() error
}

// transport makes a listener and a connected pair, for one contract test
// body run over the OS's usual transport (baselineTransport: a unix socket
// on Linux, loopback TCP on Windows) and over a link. Both ends live in
// this process: these tests compare API behaviour; the links between
// processes are tested everywhere else.
type transport struct {
	name   string
	listen func(t *testing.T) (l net.Listener, addr string)
	dial   func(t *testing.T, addr string) net.Conn
}

var contractTransports = []transport{
	baselineTransport,
	{"shmlink",
		func(t *testing.T) (net.Listener, string) {
			path := pathName(t, "c")
			l, err := Listen(path, &Config{RingSize: testRing})
			if err != nil {
				t.Fatal(err)
			}
			return l, path
		},
		func(t *testing.T, path string) net.Conn {
			c, err := (&Dialer{Config: &Config{RingSize: testRing}}).DialContext(context.Background(), "shmlink", path)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}},
}

// eachTransport runs body over both transports with a connected pair.
func eachTransport(t *testing.T, body func(t *testing.T, client, server halfCloser)) {
	for _, tr := range contractTransports {
		t.Run(tr.name, func(t *testing.T) {
			l, addr := tr.listen(t)
			defer l.Close()
			client := tr.dial(t, addr)
			defer client.Close()
			server, err := l.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer server.Close()
			body(t, client.(halfCloser), server.(halfCloser))
		})
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) && errors.As(err, &ne) && ne.Timeout()
}

// TestContractPastDeadline: a deadline in the past fails reads and writes
// at once, even with data waiting or room to write, and moving it away
// makes them work again with nothing lost or sent meanwhile.
func TestContractPastDeadline(t *testing.T) {
	eachTransport(t, func(t *testing.T, client, server halfCloser) {
		if _, err := client.Write([]byte("waiting")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 7)
		// Let the data arrive first: a read with a deadline does.
		server.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(server, buf[:1]); err != nil {
			t.Fatal(err)
		}
		server.SetReadDeadline(time.Now().Add(-time.Second))
		if _, err := server.Read(buf); !isTimeout(err) {
			t.Errorf("read with data waiting, past deadline: %v, want a timeout", err)
		}
		client.SetWriteDeadline(time.Now().Add(-time.Second))
		if n, err := client.Write([]byte("lost")); !isTimeout(err) || n != 0 {
			t.Errorf("write past deadline: %d, %v; want 0 and a timeout", n, err)
		}
		client.SetWriteDeadline(time.Time{})
		server.SetReadDeadline(time.Time{})
		client.Write([]byte("!"))
		if _, err := io.ReadFull(server, buf); err != nil || string(buf) != "aiting!" {
			t.Errorf("after the deadlines moved: %q, %v; want the rest and nothing of the timed-out write", buf, err)
		}
	})
}

func TestContractAfterClose(t *testing.T) {
	eachTransport(t, func(t *testing.T, client, server halfCloser) {
		client.Close()
		if err := client.SetDeadline(time.Now()); err == nil {
			t.Error("SetDeadline after Close succeeded")
		}
		if _, err := client.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Errorf("write after Close: %v", err)
		}
		if _, err := client.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
			t.Errorf("read after Close: %v", err)
		}
		server.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := server.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("peer read after Close: %v, want io.EOF", err)
		}
	})
}

// TestContractHalfClose: after CloseWrite the peer reads everything and
// then io.EOF, and can still answer.
func TestContractHalfClose(t *testing.T) {
	eachTransport(t, func(t *testing.T, client, server halfCloser) {
		want := bytes.Repeat([]byte("request "), 20000) // several rings' worth
		go func() {
			client.Write(want)
			client.CloseWrite()
		}()
		server.SetDeadline(time.Now().Add(20 * time.Second))
		got, err := io.ReadAll(server)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("read %d of %d bytes before EOF, %v", len(got), len(want), err)
		}
		if _, err := server.Write([]byte("answer")); err != nil {
			t.Fatalf("write after the peer's CloseWrite: %v", err)
		}
		server.CloseWrite()
		client.SetDeadline(time.Now().Add(20 * time.Second))
		back, err := io.ReadAll(client)
		if err != nil || string(back) != "answer" {
			t.Fatalf("half-closed side read %q, %v", back, err)
		}
		if _, err := client.Write([]byte("x")); err == nil {
			t.Error("write after CloseWrite succeeded")
		}
	})
}

// TestCloseRead: after CloseRead, reads end at once and the peer's writes,
// however many, do not wait for a reader (a unix socket fails them with
// EPIPE instead, so this one runs over a link only).
func TestCloseRead(t *testing.T) {
	linkDir(t)
	l, err := Listen("closeread", &Config{RingSize: testRing})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err := Dial(context.Background(), "closeread", &Config{RingSize: testRing})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := l.AcceptConn()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	// A read deadline, as net/http sets them, must not end the discarding.
	server.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if err := server.CloseRead(); err != nil {
		t.Fatal(err)
	}
	server.SetReadDeadline(time.Now())
	if _, err := server.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("read after CloseRead: %v, want io.EOF", err)
	}
	client.SetWriteDeadline(time.Now().Add(20 * time.Second))
	if _, err := client.Write(make([]byte, 10*testRing)); err != nil {
		t.Errorf("writing ten rings' worth to a peer that called CloseRead: %v", err)
	}
	if _, err := server.Write([]byte("still writing")); err != nil {
		t.Errorf("write after CloseRead: %v", err)
	}
	if err := server.CloseRead(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second CloseRead: %v", err)
	}
}

func TestContractAcceptAfterClose(t *testing.T) {
	for _, tr := range contractTransports {
		l, _ := tr.listen(t)
		l.Close()
		c, err := l.Accept()
		if c != nil || !errors.Is(err, net.ErrClosed) {
			t.Errorf("%s: Accept after Close = %#v, %v; want a nil net.Conn and net.ErrClosed", tr.name, c, err)
		}
	}
}

// TestContractRelay copies a TCP connection to a link and back with two
// io.Copy calls and CloseWrite, as a proxy does: both directions pass to
// the end.
func TestContractRelay(t *testing.T) {
	linkDir(t)
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close()
	ll, err := Listen("relay", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ll.Close()
	go func() { // the proxy: TCP in, link out
		in, err := tl.Accept()
		if err != nil {
			return
		}
		defer in.Close()
		out, err := Dial(context.Background(), "relay", nil)
		if err != nil {
			return
		}
		defer out.Close()
		done := make(chan struct{})
		go func() { io.Copy(out, in); out.CloseWrite(); close(done) }()
		io.Copy(in, out)
		in.(*net.TCPConn).CloseWrite()
		<-done
	}()
	go func() { // the server behind the link: upper-cases until EOF
		c, err := ll.AcceptConn()
		if err != nil {
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		c.Write(bytes.ToUpper(b))
		c.CloseWrite()
	}()
	c, err := net.Dial("tcp", tl.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	msg := bytes.Repeat([]byte("through the relay "), 10000)
	go func() { c.Write(msg); c.(*net.TCPConn).CloseWrite() }()
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, bytes.ToUpper(msg)) {
		t.Fatalf("relay returned %d of %d bytes, %v", len(got), len(msg), err)
	}
}

// TestRemoteAddrTellsClientsApart: as with sockets, a server can tell its
// clients apart by RemoteAddr().String().
func TestRemoteAddrTellsClientsApart(t *testing.T) {
	linkDir(t)
	l, err := Listen("addrs", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	seen := map[string]bool{}
	for i := 0; i < 2; i++ {
		startChild(t, "hold", "addrs")
		c := acceptTest(t, l)
		defer c.Close()
		seen[c.RemoteAddr().String()] = true
	}
	if len(seen) != 2 {
		t.Errorf("two clients, remote addresses %v", seen)
	}
}
