package shmlink

import (
	"bufio"
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// procStatus returns the named fields of /proc/PID/status.
func procStatus(pid int, fields ...string) (map[string]string, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		for _, want := range fields {
			if ok && k == want {
				out[k] = strings.TrimSpace(v)
			}
		}
	}
	return out, sc.Err()
}

// TestIdleLinksThreads holds 1,000 idle links between two processes, each
// with a goroutine blocked in ReadMessage on both sides, and counts the OS
// threads of both. Parked readers wait on eventfds through the netpoller,
// so the count must stay in the tens.
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

	fields := []string{"Threads", "VmRSS", "RssAnon", "RssShmem"}
	for _, p := range []struct {
		who string
		pid int
	}{{"server (parent)", os.Getpid()}, {"client (child)", ch.Pid()}} {
		st, err := procStatus(p.pid, fields...)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s with %d idle links: threads %s, VmRSS %s (anon %s, shmem %s)",
			p.who, n, st["Threads"], st["VmRSS"], st["RssAnon"], st["RssShmem"])
		threads, err := strconv.Atoi(st["Threads"])
		if err != nil {
			t.Fatal(err)
		}
		if threads >= 60 {
			t.Errorf("%s runs %d threads for %d idle links, want tens", p.who, threads, n)
		}
	}
}
