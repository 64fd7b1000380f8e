//go:build linux || windows

package shmlink

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmlink/shmlink/internal/testproc"
)

// Scale: many links on one listener, busy at once, and the cost of many
// idle ones in OS threads and memory.

var idleLinks = flag.Int("shmlink.idle", 1000, "links held idle by TestIdleLinksThreads")

const (
	manyLinks  = 200
	manyRounds = 3
	manyRing   = 16 << 10
)

// manySizes are the messages each busy link exchanges per round: small,
// medium, and one that streams through the ring in chunks.
var manySizes = []int{12, 300, manyRing + 4000}

// dialMany opens n links to name with rings of ringSize.
func dialMany(name string, n, ringSize int) ([]*Conn, error) {
	if err := ensureFiles(uint64(8*n + 100)); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conns := make([]*Conn, n)
	for i := range conns {
		c, err := Dial(ctx, name, &Config{RingSize: ringSize})
		if err != nil {
			return nil, fmt.Errorf("link %d: %w", i, err)
		}
		conns[i] = c
	}
	return conns, nil
}

// childManyLinks: args are the name and the number of links. It opens them
// all, then drives them all at once: on each, one goroutine sends every
// size for manyRounds rounds while another checks the echoes.
func childManyLinks(args []string) error {
	if err := childArgs(args, 2); err != nil {
		return err
	}
	n, err := strconv.Atoi(args[1])
	if err != nil {
		return err
	}
	testproc.Ready()
	conns, err := dialMany(args[0], n, manyRing)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	start := make(chan struct{})
	for i, c := range conns {
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			for seq := range manyRounds * len(manySizes) {
				if err := c.WriteMessage(testMessage(uint32(i), uint32(seq), manySizes[seq%len(manySizes)])); err != nil {
					errs <- fmt.Errorf("link %d write: %w", i, err)
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			defer c.Close()
			<-start
			for seq := range manyRounds * len(manySizes) {
				m, err := c.ReadMessage()
				if err != nil {
					errs <- fmt.Errorf("link %d read %d: %w", i, seq, err)
					return
				}
				if want := testMessage(uint32(i), uint32(seq), manySizes[seq%len(manySizes)]); !bytes.Equal(m, want) {
					errs <- fmt.Errorf("link %d message %d: %d bytes differ from the %d sent", i, seq, len(m), len(want))
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	return errors.Join(collect(errs)...)
}

func collect(errs <-chan error) []error {
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return all
}

// TestManyLinksAtOnce runs 200 links on one listener, all exchanging
// messages concurrently; the child checks every echo, the parent checks
// every message it echoes.
func TestManyLinksAtOnce(t *testing.T) {
	linkDir(t)
	if err := ensureFiles(8*manyLinks + 100); err != nil {
		t.Fatal(err)
	}
	l, err := Listen("many", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ch := startChild(t, "many-links", "many", strconv.Itoa(manyLinks))
	var wg sync.WaitGroup
	var echoed atomic.Int64
	errs := make(chan error, manyLinks)
	for range manyLinks {
		c := acceptTest(t, l)
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := checkedEcho(c)
			echoed.Add(int64(n))
			if err != nil {
				errs <- err
			}
		}()
	}
	ch.Stdin.Close()
	if err := ch.Exit(t); err != nil {
		t.Fatalf("child: %v", err)
	}
	wg.Wait()
	close(errs)
	if err := errors.Join(collect(errs)...); err != nil {
		t.Fatal(err)
	}
	if want := int64(manyLinks * manyRounds * len(manySizes)); echoed.Load() != want {
		t.Fatalf("echoed %d messages, want %d", echoed.Load(), want)
	}
}

// checkedEcho echoes every message until the peer closes, checking each.
func checkedEcho(c *Conn) (int, error) {
	defer c.Close()
	for n := 0; ; n++ {
		m, err := c.ReadMessage()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if _, _, err := checkMessage(m); err != nil {
			return n, err
		}
		if err := c.WriteMessage(m); err != nil {
			return n, err
		}
	}
}

// childIdleLinks: args are the name and the number of links. It opens them
// and parks one goroutine in ReadMessage on each, until stdin closes.
func childIdleLinks(args []string) error {
	if err := childArgs(args, 2); err != nil {
		return err
	}
	n, err := strconv.Atoi(args[1])
	if err != nil {
		return err
	}
	conns, err := dialMany(args[0], n, idleRing)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.ReadMessage() // until the parent closes the link
			c.Close()
		}()
	}
	testproc.Ready()
	io.Copy(io.Discard, os.Stdin)
	wg.Wait()
	return nil
}

// idleRing keeps idle links small: their memory is what they
// cost, not what they could carry.
const idleRing = 4096

// TestIdleLinksThreads holds 1,000 idle links between two processes, each
// with a goroutine blocked in ReadMessage on both sides, and counts the OS
// threads of both (processThreads). Parked readers wait on their doorbells
// without a thread each (eventfds through the netpoller on Linux; on
// Windows, see internal/sys), so the count must stay in the tens.
func TestIdleLinksThreads(t *testing.T) {
	n := *idleLinks
	if testing.Short() {
		n = 200
	}
	linkDir(t)
	if err := ensureFiles(uint64(8*n + 100)); err != nil {
		t.Fatal(err)
	}
	l, err := Listen("idle", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	conns := make(chan *Conn, n)
	acceptErr := make(chan error, 1)
	var parked sync.WaitGroup
	parked.Add(n)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		for range n {
			c, err := l.AcceptContext(ctx)
			if err != nil {
				acceptErr <- err
				return
			}
			conns <- c
			go func() {
				parked.Done()
				c.ReadMessage() // until the link closes
			}()
		}
		acceptErr <- nil
	}()
	start := time.Now()
	ch := startChild(t, "idle-links", "idle", strconv.Itoa(n))
	if err := <-acceptErr; err != nil {
		t.Fatal(err)
	}
	parked.Wait()
	t.Logf("%d links set up in %v", n, time.Since(start).Round(time.Millisecond))
	close(conns)
	defer func() {
		for c := range conns {
			c.Close()
		}
	}()

	for _, p := range []struct {
		who string
		pid int
	}{{"server (parent)", os.Getpid()}, {"client (child)", ch.Pid()}} {
		threads, detail, err := processThreads(p.pid)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s with %d idle links: threads %d%s", p.who, n, threads, detail)
		if limit := idleThreadLimit(n); threads >= limit {
			t.Errorf("%s runs %d threads for %d idle links, want fewer than %d", p.who, threads, n, limit)
		}
	}
}
