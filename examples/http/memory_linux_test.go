package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"testing"

	"github.com/shmlink/shmlink"
	"github.com/shmlink/shmlink/examples/internal/exampletest"
	"github.com/shmlink/shmlink/internal/testproc"
)

// osRoles are the roles of the Linux-only tests.
var osRoles = map[string]func([]string) error{"holder": holder}

var idleLinks = flag.Int("idle.links", 16, "links TestIdleLinkMemory holds")

// holding is what the role "holder" reports: its memory and the
// server's, before and after it opened the links.
type holding struct {
	Before, After             memory
	ServerBefore, ServerAfter stats
}

// holder opens args[1] links to the server at args[0] by sending as many
// requests at once, over rings of args[2] bytes (0: the default), each
// answered with args[3] bytes, and prints, as JSON, its memory and the
// server's before and after, with the links idle in the pool. The
// server's figures come over a link of their own, open all along.
func holder(args []string) error {
	if len(args) != 4 {
		return errors.New("usage: holder ADDR LINKS RINGSIZE ANSWERSIZE")
	}
	var n [3]int
	for i := range n {
		var err error
		if n[i], err = strconv.Atoi(args[1+i]); err != nil {
			return err
		}
	}
	addr, links, ring, size := args[0], n[0], n[1], n[2]
	statsClient := newClient(addr, nil, 1, false)
	var h holding
	var err error
	if h.ServerBefore, err = fetchStats(statsClient, addr); err != nil {
		return err
	}
	debug.FreeOSMemory()
	h.Before = readMemory()
	c := newClient(addr, &shmlink.Config{RingSize: ring}, links, false)
	if err := burst(c, fmt.Sprintf("%s/barrier?n=%d&size=%d", baseURL(addr), links, size), links, 1); err != nil {
		return err
	}
	debug.FreeOSMemory()
	h.After = readMemory()
	if h.ServerAfter, err = fetchStats(statsClient, addr); err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(h)
}

// TestIdleLinkMemory measures what idle links in an HTTP client's pool
// cost both processes (the race detector inflates the anonymous part), fresh (a 64-byte answer each) and after an answer
// of 256 KiB each, with the default rings and with 16 KiB ones: the
// figures of docs/ecosystem.md. A link's memory is a memfd, whose pages
// exist only once touched; a ring holds on to the pages its traffic has
// touched, at most its size.
func TestIdleLinkMemory(t *testing.T) {
	exampletest.LinkDir(t)
	n := *idleLinks
	for _, tc := range []struct {
		ring, answer int
		maxShmem     int64 // KiB per link in the client's RSS, at most
	}{
		{0, 64, 32},
		{16 << 10, 64, 32},
		{0, 256 << 10, 256 + 32},
		{16 << 10, 256 << 10, 2*16 + 16},
	} {
		_, addr := startServer(t, fmt.Sprintf("idle-%d-%d", tc.ring, tc.answer))
		p := testproc.Options{Name: "holder"}.Start(t, "holder", addr, strconv.Itoa(n), strconv.Itoa(tc.ring), strconv.Itoa(tc.answer))
		var h holding
		if err := json.Unmarshal([]byte(p.Stdout.Next(t)), &h); err != nil {
			t.Fatal(err)
		}
		p.Wait(t)
		per := func(a, b int64) float64 { return float64(b-a) / float64(n) }
		ring := tc.ring
		if ring == 0 {
			ring = shmlink.DefaultRingSize
		}
		client := per(h.Before.Shmem, h.After.Shmem)
		t.Logf("%d links, rings %4d KiB, answers %6d B; KiB per link: client rss %5.1f (anon %5.1f, shmem %5.1f), server rss %5.1f (anon %5.1f, shmem %5.1f)",
			n, ring>>10, tc.answer,
			per(h.Before.RSS, h.After.RSS), per(h.Before.Anon, h.After.Anon), client,
			per(h.ServerBefore.Memory.RSS, h.ServerAfter.Memory.RSS), per(h.ServerBefore.Memory.Anon, h.ServerAfter.Memory.Anon),
			per(h.ServerBefore.Memory.Shmem, h.ServerAfter.Memory.Shmem))
		if h.ServerAfter.Conns-h.ServerBefore.Conns != int64(n) {
			t.Errorf("the server accepted %d links for %d requests in flight", h.ServerAfter.Conns-h.ServerBefore.Conns, n)
		}
		if client > float64(tc.maxShmem) {
			t.Errorf("rings of %d KiB, answers of %d B: %.1f KiB of shared memory per idle link, want at most %d",
				ring>>10, tc.answer, client, tc.maxShmem)
		}
	}
}
