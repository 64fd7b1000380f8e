//go:build linux

package shmlink_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/shmlink/shmlink"
)

// Example shows a listener and a client exchanging a message. In real use
// the two ends are two processes; here they share one so that the example
// runs by itself.
func Example() {
	dir, _ := os.MkdirTemp("", "shmlink-example")
	defer os.RemoveAll(dir)
	os.Setenv(shmlink.RuntimeDirEnv, dir) // keep the example's socket to itself

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
	s, err := l.AcceptLink()
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
