// Containers is the program of the compose example (docker-compose.yml in
// this directory): one container runs it as a server, another as a client,
// and the two share nothing but a volume that holds the link's socket.
//
//	containers serve NAME                    echo every message of every client, until SIGTERM
//	containers send [-ring N] [-max N] NAME  send messages of 1 byte to -max bytes, check each echo
//
// The client waits for the server if it is not there yet, and exits 0 once
// every message came back intact. Its rings are 128 MiB by default, twice
// Docker's default /dev/shm, and the messages go round both of them: the
// link's memory is a memfd, not a file in /dev/shm, so neither `ipc: host`
// nor `shm_size` is needed.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/shmlink/shmlink"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("containers: ")
	if len(os.Args) < 2 {
		log.Fatal("usage: containers serve NAME | containers send [-ring N] [-max N] NAME")
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "send":
		err = send(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		log.Fatal(err)
	}
}

// serve echoes every message of every client until SIGTERM (docker stop)
// or Ctrl-C, then closes the listener, which removes the socket.
func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	fs.Parse(args)
	if fs.NArg() != 1 {
		return errors.New("usage: containers serve NAME")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	l, err := shmlink.Listen(fs.Arg(0), nil)
	if err != nil {
		return err
	}
	defer l.Close()
	log.Printf("listening on %s", l.Addr().(*shmlink.Addr).Path)
	for {
		c, err := l.AcceptContext(ctx)
		if ctx.Err() != nil {
			log.Print("stopping")
			return nil
		}
		if err != nil {
			return err
		}
		// The pid is as this container's PID namespace sees the client: 0
		// when it is in another one.
		log.Printf("client connected: uid %d, pid %d", c.PeerUID(), c.RemoteAddr().(*shmlink.Addr).PID)
		go echo(c)
	}
}

func echo(c *shmlink.Conn) {
	defer c.Close()
	for {
		m, err := c.ReadMessage()
		if err == io.EOF {
			break
		}
		if err == nil {
			err = c.WriteMessage(m)
		}
		if err != nil {
			log.Printf("client: %v", err)
			return
		}
	}
	log.Printf("client gone: %v", c.Status())
}

// send dials NAME, waiting for its server, and sends messages of 1 byte,
// then each power of two up to max bytes, checking each echo.
func send(args []string) error {
	fs := flag.NewFlagSet("send", flag.ExitOnError)
	ring := fs.Int("ring", 128<<20, "bytes in each of the link's two rings")
	max := fs.Int("max", 64<<20, "the largest message")
	fs.Parse(args)
	if fs.NArg() != 1 {
		return errors.New("usage: containers send [-ring N] [-max N] NAME")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := shmlink.Dial(ctx, fs.Arg(0), &shmlink.Config{Wait: true, RingSize: *ring})
	if err != nil {
		return err
	}
	defer c.Close()
	log.Printf("connected to server pid %d (as its own PID namespace sees it)", c.RemoteAddr().(*shmlink.Addr).PID)
	total, n := 0, 0
	for size := 1; size <= *max; size *= 2 {
		msg := make([]byte, size)
		for i := range msg {
			msg[i] = byte(i*7 + size)
		}
		if err := c.WriteMessage(msg); err != nil {
			return err
		}
		echo, err := c.ReadMessage()
		if err != nil {
			return err
		}
		if !bytes.Equal(echo, msg) {
			return fmt.Errorf("the echo of %d bytes differs", size)
		}
		total += size
		n++
	}
	log.Printf("%d messages of 1 B to %d MiB echoed intact, %d MiB each way, over rings of %d MiB",
		n, *max>>20, total>>20, *ring>>20)
	return nil
}
