//go:build linux || windows

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmlink/shmlink"
	"github.com/shmlink/shmlink/examples/internal/exampletest"
	"github.com/shmlink/shmlink/internal/testproc"
)

// The servers are the example's main, run as "http server ..." in a child
// process (the test binary re-executed as the role "http"); the clients
// are the test process itself, or main again as "http client ...".
func TestMain(m *testing.M) {
	roles := map[string]func([]string) error{"http": testproc.Program(main)}
	maps.Copy(roles, osRoles)
	testproc.Main(m, roles)
}

func startServer(t *testing.T, addr string, extra ...string) (*testproc.Proc, string) {
	t.Helper()
	return exampletest.StartServer(t, "http", addr, extra...)
}

// countingClient is newClient with a count of the connections it dialled.
func countingClient(addr string, cfg *shmlink.Config, idle int, h2c bool) (*http.Client, *atomic.Int64) {
	c := newClient(addr, cfg, idle, h2c)
	t := c.Transport.(*http.Transport)
	var dials atomic.Int64
	dial := t.DialContext
	t.DialContext = func(ctx context.Context, network, a string) (net.Conn, error) {
		dials.Add(1)
		return dial(ctx, network, a)
	}
	return c, &dials
}

// try sends req and returns the answer and its body; a status other
// than 200 is an error.
func try(c *http.Client, req *http.Request) (*http.Response, []byte, error) {
	ctx, cancel := context.WithTimeout(req.Context(), 20*time.Second)
	defer cancel()
	resp, err := c.Do(req.WithContext(ctx))
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, body)
	}
	return resp, body, err
}

// do is try that fails the test on an error.
func do(t *testing.T, c *http.Client, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, body, err := try(c, req)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func getReq(t *testing.T, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// burst has n goroutines GET url each times, one request after another,
// and waits for all the answers.
func burst(c *http.Client, url string, n, each int) error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			for range each {
				req, err := http.NewRequest("GET", url, nil)
				if err == nil {
					_, _, err = try(c, req)
				}
				if err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func serverStats(t *testing.T, c *http.Client, addr string) stats {
	t.Helper()
	s, err := fetchStats(c, addr)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestKeepAlive: sequential requests reuse one link, as they reuse one
// TCP connection, and the server sees one connection.
func TestKeepAlive(t *testing.T) {
	exampletest.LinkDir(t)
	_, addr := startServer(t, "keepalive")
	c, dials := countingClient(addr, nil, 0, false)
	var reused atomic.Int64
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
		if i.Reused {
			reused.Add(1)
		}
	}}
	for i := range 10 {
		req := getReq(t, baseURL(addr)+"/hello")
		resp, body := do(t, c, req.WithContext(httptrace.WithClientTrace(req.Context(), trace)))
		if conn := resp.Header.Get("X-Conn"); conn != "1" {
			t.Errorf("request %d came on connection %s: %s", i, conn, body)
		}
	}
	if dials.Load() != 1 || reused.Load() != 9 {
		t.Errorf("10 requests: %d links dialled, %d requests on a reused one; want 1 and 9", dials.Load(), reused.Load())
	}
	if s := serverStats(t, c, addr); s.Conns != 1 {
		t.Errorf("the server accepted %d connections, want 1", s.Conns)
	}
}

// TestBigBodies: 10 MiB go up as a request body and come back as the
// answer, intact, over the default rings and over rings far smaller than
// the body. The time of each, on a link already used once, is logged.
func TestBigBodies(t *testing.T) {
	exampletest.LinkDir(t)
	_, addr := startServer(t, "bodies")
	body := make([]byte, 10<<20)
	rand.NewChaCha8([32]byte{1}).Read(body)
	sum := sha256.Sum256(body)
	post := func(c *http.Client, body []byte) (*http.Response, []byte) {
		req, err := http.NewRequest("POST", baseURL(addr)+"/echo", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		return do(t, c, req)
	}
	for _, ring := range []int{shmlink.DefaultRingSize, 64 << 10, 16 << 10} {
		c := newClient(addr, &shmlink.Config{RingSize: ring}, 0, false)
		post(c, body[:64<<10]) // the link is open, the timing is the transfer
		start := time.Now()
		resp, back := post(c, body)
		took := time.Since(start)
		if got := resp.Header.Get("X-Sha256"); got != hex.EncodeToString(sum[:]) {
			t.Errorf("ring %d: the server received a body with SHA-256 %s", ring, got)
		}
		if !bytes.Equal(back, body) {
			t.Errorf("ring %d: %d bytes came back, not the %d sent", ring, len(back), len(body))
		}
		t.Logf("rings of %4d KiB: 10 MiB up and back in %v", ring>>10, took)
		c.CloseIdleConnections()
	}
}

// TestServerSentEvents: events arrive one by one while the answer goes
// on, and the server sees the client leave when it closes the body.
func TestServerSentEvents(t *testing.T) {
	exampletest.LinkDir(t)
	srv, addr := startServer(t, "events")
	c := newClient(addr, nil, 0, false)
	resp, err := c.Get(baseURL(addr) + "/events?every=1ms") // never ends by itself
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q", ct)
	}
	r := bufio.NewReader(resp.Body)
	for i := range 5 {
		if ev := readEvent(t, r); ev != fmt.Sprint("data: event ", i) {
			t.Fatalf("event %d: %q", i, ev)
		}
	}
	resp.Body.Close()
	srv.Stdout.Expect(t, "events: client left after")
}

// readEvent returns the data line of the next event.
func readEvent(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	var data string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading an event: %v", err)
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			return data
		}
		if strings.HasPrefix(line, "data: ") {
			data = line
		}
	}
}

// TestWriteTimeout: Server.WriteTimeout fires over a link as over a
// socket: the server's writes fail with os.ErrDeadlineExceeded once it has
// passed, and the client's answer breaks off instead of going on.
func TestWriteTimeout(t *testing.T) {
	exampletest.LinkDir(t)
	const timeout = 300 * time.Millisecond
	srv, addr := startServer(t, "timeout", "--write-timeout", timeout.String())
	c := newClient(addr, nil, 0, false)
	start := time.Now()
	resp, err := c.Get(baseURL(addr) + "/trickle?every=20ms")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("the answer ended with %v, want it cut off (unexpected EOF)", err)
	}
	if !strings.HasPrefix(string(body), "tick\n") {
		t.Errorf("nothing came before the timeout: %q", body)
	}
	if took < timeout || took > 10*time.Second {
		t.Errorf("the answer broke off after %v; the timeout is %v", took, timeout)
	}
	line := srv.Stdout.Expect(t, "trickle: ")
	t.Logf("after %v, %d ticks; server: %s", took, strings.Count(string(body), "tick"), line)
	if !strings.Contains(line, "deadline exceeded: true") {
		t.Errorf("the server's write failed otherwise: %s", line)
	}
}

// TestPools measures how many links net/http opens for bursts of 32
// requests in flight at once (a barrier on the server holds each request
// until all are there), by the pool's settings, and checks that TCP gives
// the same counts: these are net/http's, whatever the transport. These
// are the figures of docs/ecosystem.md.
func TestPools(t *testing.T) {
	exampletest.LinkDir(t)
	for _, tr := range []struct{ name, addr string }{{"shmlink", "pools"}, {"tcp", "127.0.0.1:0"}} {
		t.Run(tr.name, func(t *testing.T) { pools(t, tr.addr) })
	}
}

func pools(t *testing.T, addr string) {
	_, addr = startServer(t, addr, "--h2c")
	const inFlight = 32
	for _, tc := range []struct {
		name      string
		idle, max int // MaxIdleConnsPerHost, MaxConnsPerHost
		h2c, warm bool
		barrier   int
		want      []int64 // links opened by each of 3 bursts; nil: not known in advance
	}{
		// Two links stay idle after a burst; the next burst opens 30 more.
		{"default (2 idle per host)", 0, 0, false, false, inFlight, []int64{32, 30, 30}},
		{"MaxIdleConnsPerHost 32", inFlight, 0, false, false, inFlight, []int64{32, 0, 0}},
		// 32 requests queue for 8 links; the barrier lets 8 at a time through.
		{"MaxConnsPerHost 8, MaxIdleConnsPerHost 8", 8, 8, false, false, 8, []int64{8, 0, 0}},
		// Requests that find no connection each dial one, until the first
		// is up; later ones all share it.
		{"h2c, cold", 0, 0, true, false, inFlight, nil},
		{"h2c, after one request", 0, 0, true, true, inFlight, []int64{0, 0, 0}},
	} {
		c, dials := countingClient(addr, nil, tc.idle, tc.h2c)
		c.Transport.(*http.Transport).MaxConnsPerHost = tc.max
		if tc.warm {
			do(t, c, getReq(t, baseURL(addr)+"/small"))
		}
		url := fmt.Sprintf("%s/barrier?n=%d", baseURL(addr), tc.barrier)
		var opened []int64
		for range 3 {
			before := dials.Load()
			if err := burst(c, url, inFlight, 1); err != nil {
				t.Fatal(err)
			}
			opened = append(opened, dials.Load()-before)
		}
		t.Logf("%-42s links opened by 3 bursts of %d: %v (%d in all)", tc.name, inFlight, opened, dials.Load())
		if tc.want != nil && !slices.Equal(opened, tc.want) {
			t.Errorf("%s: links opened by each burst %v, want %v", tc.name, opened, tc.want)
		}
		c.CloseIdleConnections()
	}

	// Without a barrier, 32 clients that each send requests one after
	// another: how many links the default pool churns through.
	c, dials := countingClient(addr, nil, 0, false)
	if err := burst(c, baseURL(addr)+"/small", inFlight, 10); err != nil {
		t.Fatal(err)
	}
	t.Logf("default pool, 32 goroutines x 10 requests, no barrier: %d links", dials.Load())
	c.CloseIdleConnections()
}

// TestClientCommand: the client is main too, in a process of its own,
// against a server process, over a link and over TCP (the same code, told
// host:port), with HTTP/1.1 and h2c.
func TestClientCommand(t *testing.T) {
	exampletest.LinkDir(t)
	for _, tc := range []struct{ name, addr, proto string }{
		{"link", "cli", "HTTP/1.1"},
		{"tcp", "127.0.0.1:0", "HTTP/1.1"},
		{"link-h2c", "cli-h2c", "HTTP/2.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h2c []string
			if tc.proto == "HTTP/2.0" {
				h2c = []string{"--h2c"}
			}
			_, addr := startServer(t, tc.addr, h2c...)
			args := append(append([]string{"client", "--addr", addr}, h2c...), "/hello", "/events?n=2&every=1ms")
			exampletest.Run(t, "http", args, "GET /hello: 200 OK\nhello from pid", "over "+tc.proto+",",
				"GET /events: 200 OK\nid: 0\ndata: event 0\n\nid: 1\ndata: event 1\n")
		})
	}
}

// fetchStats asks the server at addr for its /stats.
func fetchStats(c *http.Client, addr string) (stats, error) {
	var s stats
	req, err := http.NewRequest("GET", baseURL(addr)+"/stats", nil)
	if err != nil {
		return s, err
	}
	_, body, err := try(c, req)
	if err == nil {
		err = json.Unmarshal(body, &s)
	}
	return s, err
}
