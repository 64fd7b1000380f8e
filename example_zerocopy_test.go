//go:build linux

package shmlink_test

import (
	"context"
	"fmt"
	"log"

	"github.com/shmlink/shmlink"
)

// ReserveMessage lends the writer the ring room of its next message, to
// be filled in place, and BorrowMessage lends the reader the message
// where it lies in the ring: a large message crosses with no copy at all.
func ExampleConn_ReserveMessage() {
	defer exampleDir()()
	l, err := shmlink.Listen("zerocopy", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	c, err := shmlink.Dial(context.Background(), "zerocopy", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	s, err := l.AcceptConn()
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	// Reserve room for up to 64 bytes, write the message into it, and
	// send as much of it as was written.
	b, err := c.ReserveMessage(64)
	if err != nil {
		log.Fatal(err)
	}
	n := copy(b, "built in place")
	if err := c.CommitMessage(n); err != nil {
		log.Fatal(err)
	}

	// Borrow it on the other side, use it, and give its room back. The
	// bytes are shared memory that the writer could change: copy out
	// what must be checked before it is trusted.
	m, err := s.BorrowMessage()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(m))
	if err := s.ReleaseMessage(); err != nil {
		log.Fatal(err)
	}
	// Output: built in place
}
