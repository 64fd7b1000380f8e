// Chat is a duplex link between two terminals that shows peer events. Run
// it twice with the same name:
//
//	go run ./examples/chat NAME
//
// Lines typed on either side appear on the other, and each side says when
// the other one comes, leaves (end of input, Ctrl-D or Ctrl-C) or is lost
// (killed), whichever starts first and however often either restarts.
//
// The first to start listens on NAME; the second finds the name taken and
// dials it. A listener accepts the next peer after one leaves; a dialler
// waits for a listener to (re)appear with Config.Wait.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/shmlink/shmlink"
)

var errEndOfInput = errors.New("end of input")

func main() {
	log.SetFlags(0)
	log.SetPrefix("chat: ")
	if len(os.Args) != 2 {
		log.Fatal("usage: chat NAME")
	}
	// Ctrl-C leaves cleanly, so the other side sees "disconnected", not "lost".
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	lines := make(chan string)
	go func() {
		s := bufio.NewScanner(os.Stdin)
		for s.Scan() {
			lines <- s.Text()
		}
		close(lines)
	}()
	if err := chat(ctx, os.Args[1], lines); err != nil && err != errEndOfInput && ctx.Err() == nil {
		log.Fatal(err)
	}
}

// say prints a status line.
func say(format string, args ...any) { fmt.Printf("* "+format+"\n", args...) }

// chat connects to one peer after another until input ends.
func chat(ctx context.Context, name string, lines <-chan string) error {
	l, err := shmlink.Listen(name, nil)
	if errors.Is(err, shmlink.ErrAddrInUse) {
		l = nil // the other side is listening: dial it
	} else if err != nil {
		return err
	} else {
		defer l.Close()
	}
	for {
		say("waiting for a peer on %s", name)
		c, err := connect(ctx, l, name, lines)
		if err != nil {
			return err
		}
		say("peer connected (pid %d)", c.RemoteAddr().(*shmlink.Addr).PID)
		if err := talk(ctx, c, lines); err != nil {
			return err
		}
	}
}

// connect accepts the next peer, or dials the listener as soon as there is
// one, while telling the user that what they type meanwhile goes nowhere.
func connect(ctx context.Context, l *shmlink.Listener, name string, lines <-chan string) (*shmlink.Conn, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		c   *shmlink.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		if l != nil {
			r.c, r.err = l.AcceptContext(ctx)
		} else {
			r.c, r.err = shmlink.Dial(ctx, name, &shmlink.Config{Wait: true})
		}
		done <- r
	}()
	for {
		select {
		case r := <-done:
			return r.c, r.err
		case _, ok := <-lines:
			if ok {
				say("no peer yet: line not sent")
				continue
			}
			cancel()
			if r := <-done; r.c != nil {
				r.c.Close()
			}
			return nil, errEndOfInput
		}
	}
}

// talk sends the lines typed and prints the messages received until either
// side leaves. It returns nil when the peer left, and why this side ends
// otherwise.
func talk(ctx context.Context, c *shmlink.Conn, lines <-chan string) error {
	defer c.Close()
	received := make(chan error, 1)
	go func() {
		for {
			m, err := c.ReadMessage()
			if err != nil {
				received <- err
				return
			}
			fmt.Printf("peer: %s\n", m)
		}
	}()
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				return errEndOfInput
			}
			// A failed send needs no report here: the receiver sees
			// why the link ended.
			c.WriteMessage([]byte(line))
		case err := <-received:
			switch {
			case err == io.EOF:
				say("peer disconnected")
			case errors.Is(err, shmlink.ErrPeerLost):
				say("peer lost")
			default:
				say("link failed: %v", err)
			}
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
