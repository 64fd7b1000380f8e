//go:build linux || windows

package shmlink_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"github.com/shmlink/shmlink"
)

// In real use the two ends of a link are two processes; the examples run
// both in one, so that each runs by itself. exampleDir keeps an example's
// names to itself and returns the function that removes them.
func exampleDir() (cleanup func()) {
	dir, err := os.MkdirTemp("", "shmlink-example")
	if err != nil {
		log.Fatal(err)
	}
	os.Setenv(shmlink.RuntimeDirEnv, dir)
	return func() { os.RemoveAll(dir) }
}

// Example shows a listener and a client exchanging a message each way.
func Example() {
	defer exampleDir()()

	l, err := shmlink.Listen("demo", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()

	c, err := shmlink.Dial(context.Background(), "demo", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	s, err := l.AcceptConn()
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	c.WriteMessage([]byte("ping"))
	m, _ := s.ReadMessage()
	s.WriteMessage(append(m, " pong"...))
	buf := make([]byte, 64)
	n, _ := c.ReadMessageInto(buf)
	fmt.Println(string(buf[:n]))
	// Output: ping pong
}

// A server accepts links in a loop, one goroutine per client. Closing the
// listener ends the loop; links already accepted stay open.
func ExampleListen() {
	defer exampleDir()()

	l, err := shmlink.Listen("echo", nil)
	if err != nil {
		log.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		for {
			c, err := l.AcceptConn()
			if err != nil {
				return // the listener was closed
			}
			go func() {
				defer c.Close()
				for {
					m, err := c.ReadMessage()
					if err != nil {
						return // io.EOF: the client closed
					}
					c.WriteMessage(m)
				}
			}()
		}
	}()

	c, err := shmlink.Dial(context.Background(), "echo", nil)
	if err != nil {
		log.Fatal(err)
	}
	c.WriteMessage([]byte("hello"))
	m, _ := c.ReadMessage()
	fmt.Printf("%s\n", m)
	c.Close()
	l.Close()
	<-served
	// Output: hello
}

// With Config.Wait, a client may start before its server: Dial waits for
// the name to appear, until its context ends.
func ExampleDial() {
	defer exampleDir()()

	dialed := make(chan *shmlink.Conn)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := shmlink.Dial(ctx, "late", &shmlink.Config{Wait: true})
		if err != nil {
			log.Fatal(err)
		}
		dialed <- c
	}()
	l, err := shmlink.Listen("late", nil) // perhaps after the Dial, perhaps not
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	c := <-dialed
	defer c.Close()
	fmt.Println("connected to", c.RemoteAddr().(*shmlink.Addr).Name)

	_, err = shmlink.Dial(context.Background(), "nobody", nil)
	fmt.Println(errors.Is(err, shmlink.ErrNoServer))
	// Output:
	// connected to late
	// true
}

// ReadMessageInto reads into the caller's buffer without allocating; a
// message that does not fit is left in the ring and the error says how
// large a buffer it needs.
func ExampleConn_ReadMessageInto() {
	defer exampleDir()()

	l, _ := shmlink.Listen("into", nil)
	defer l.Close()
	c, _ := shmlink.Dial(context.Background(), "into", nil)
	defer c.Close()
	s, _ := l.AcceptConn()
	defer s.Close()

	c.WriteMessage(make([]byte, 100))
	buf := make([]byte, 10)
	_, err := s.ReadMessageInto(buf)
	var short *shmlink.ShortBufferError
	if errors.As(err, &short) {
		buf = make([]byte, short.Need)
	}
	n, err := s.ReadMessageInto(buf)
	fmt.Println(n, err)

	c.Close() // a clean close: the reader gets io.EOF after the last message
	_, err = s.ReadMessageInto(buf)
	fmt.Println(err == io.EOF)
	// Output:
	// 100 <nil>
	// true
}

// BufferMessage writes a stream of messages straight into the ring and
// lets the peer see them together, at Flush: one index update and at most
// one wake-up for the lot.
func ExampleConn_BufferMessage() {
	defer exampleDir()()

	l, _ := shmlink.Listen("buffered", nil)
	defer l.Close()
	c, _ := shmlink.Dial(context.Background(), "buffered", nil)
	defer c.Close()
	s, _ := l.AcceptConn()
	defer s.Close()

	for _, line := range []string{"one", "two", "three"} {
		if err := c.BufferMessage([]byte(line)); err != nil {
			log.Fatal(err)
		}
	}
	if err := c.Flush(); err != nil { // Close would send them too
		log.Fatal(err)
	}
	for range 3 {
		m, _ := s.ReadMessage()
		fmt.Println(string(m))
	}
	// Output:
	// one
	// two
	// three
}

// A Link is a long-lived object with handlers. A client-role link may send
// before its server exists: the message waits in the link's memory, and
// the link connects when the server appears and after every restart.
func ExampleOpen() {
	defer exampleDir()()

	got := make(chan string, 1)
	client, err := shmlink.Open(context.Background(), "svc", shmlink.RoleClient, shmlink.Handlers{
		OnMessage: func(m []byte) { got <- string(m) },
	}, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	client.Send([]byte("sent before the server started"))

	heard := make(chan string, 1)
	server, err := shmlink.Open(context.Background(), "svc", shmlink.RoleServer, shmlink.Handlers{
		OnMessage: func(m []byte) { heard <- string(m) },
	}, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer server.Close()
	fmt.Printf("server got %q\n", <-heard)
	server.Send([]byte("welcome"))
	fmt.Println("client got", <-got)
	// Output:
	// server got "sent before the server started"
	// client got welcome
}

// Probe asks a server who it is without becoming one of its clients, as
// `shmlink stat` does.
func ExampleProbe() {
	defer exampleDir()()

	l, _ := shmlink.Listen("probed", nil)
	defer l.Close()
	info, err := shmlink.Probe(context.Background(), "probed")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(info.PID == os.Getpid(), info.Clients)
	// Output: true 0
}
