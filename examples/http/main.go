// Http runs net/http over a shmlink link between two processes: the server
// is http.Server.Serve on shmlink.Listen, the client an http.Transport
// whose DialContext opens links. Nothing else changes, and the same code
// runs over TCP when --addr is host:port.
//
//	go run ./examples/http                                  # starts a server process and talks to it
//	go run ./examples/http server --addr api                # or in two terminals:
//	go run ./examples/http client --addr api /hello '/events?n=3'
//	go run ./examples/http server --addr 127.0.0.1:8080     # the same over TCP
//	go run ./examples/http bench                            # GET latency: shmlink, unix socket, TCP
//
// --addr is a link name (or an absolute socket path), host:port for TCP,
// or unix:PATH for a unix socket. The server stops gracefully
// (Server.Shutdown) on Ctrl-C or SIGTERM.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shmlink/shmlink"
	"github.com/shmlink/shmlink/examples/internal/appbench"
	"github.com/shmlink/shmlink/examples/internal/cmdline"
	"github.com/shmlink/shmlink/examples/internal/serverproc"
	"github.com/shmlink/shmlink/examples/internal/transport"
)

const usage = `usage:
  http                                   start a server process and talk to it
  http server [--addr A] [--write-timeout D] [--h2c] [--spin D] [--no-poller]
  http client [--addr A] [--h2c] [PATH...]   GET each path, print the answer
  http bench  [--rounds N] [--duration D] [--inflight 1,32] [--spin D] [--no-poller]
A is a link name, host:port (TCP) or unix:PATH; default "http-example"`

func main() {
	cmdline.Main("http", usage, demo, map[string]func([]string) error{
		"server": serveCommand, "client": clientCommand, "bench": benchCommand})
}

const defaultAddr = "http-example"

// ---- server ----

func serveCommand(args []string) error {
	addr, h2c := defaultAddr, false
	var writeTimeout time.Duration
	var cfg shmlink.Config
	cmdline.Flags(usage, args, func(fs *flag.FlagSet) {
		fs.StringVar(&addr, "addr", addr, "where to listen")
		fs.DurationVar(&cfg.SpinTime, "spin", 0, "the links' Config.SpinTime (default: the library's)")
		fs.BoolVar(&cfg.NoPoller, "no-poller", false, "the links' Config.NoPoller")
		fs.DurationVar(&writeTimeout, "write-timeout", 0, "http.Server.WriteTimeout")
		fs.BoolVar(&h2c, "h2c", false, "also serve HTTP/2 without TLS (prior knowledge)")
	})
	ctx, stop := serverproc.StopContext()
	defer stop()

	l, err := transport.Listen(addr, &cfg)
	if err != nil {
		return err
	}
	s := newServer(writeTimeout, h2c)
	served := make(chan error, 1)
	go func() { served <- s.srv.Serve(l) }()
	serverproc.Listening(transport.Addr(addr, l))
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	// Shutdown closes the listener (the link name goes away), closes idle
	// connections and waits for requests in flight.
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	fmt.Println("shutdown: complete")
	return nil
}

// server is the example's HTTP server. Every answer carries the number of
// the connection it came on (X-Conn), so that a client sees keep-alive.
type server struct {
	srv      *http.Server
	conns    atomic.Int64  // connections accepted
	stopping chan struct{} // closed when Shutdown begins
	barrier  barrier
}

type connKey struct{}

func newServer(writeTimeout time.Duration, h2c bool) *server {
	s := &server{stopping: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", s.hello)
	mux.HandleFunc("GET /small", small)
	mux.HandleFunc("POST /echo", echo)
	mux.HandleFunc("GET /events", events)
	mux.HandleFunc("POST /hold", s.hold)
	mux.HandleFunc("GET /trickle", trickle)
	mux.HandleFunc("GET /barrier", s.barrier.handle)
	mux.HandleFunc("GET /stats", s.stats)
	s.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Conn", strconv.FormatInt(r.Context().Value(connKey{}).(int64), 10))
			mux.ServeHTTP(w, r)
		}),
		WriteTimeout: writeTimeout,
		ConnContext: func(ctx context.Context, _ net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, s.conns.Add(1))
		},
	}
	if h2c {
		s.srv.Protocols = new(http.Protocols)
		s.srv.Protocols.SetHTTP1(true)
		s.srv.Protocols.SetUnencryptedHTTP2(true)
	}
	s.srv.RegisterOnShutdown(func() { close(s.stopping) })
	return s
}

func (s *server) hello(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "hello from pid %d over %s, connection %s, you are %s\n",
		os.Getpid(), r.Proto, w.Header().Get("X-Conn"), r.RemoteAddr)
}

// small answers 64 bytes: the benchmark's request.
func small(w http.ResponseWriter, r *http.Request) { w.Write(smallBody) }

var smallBody = bytes.Repeat([]byte("0123456789abcdef"), 4)

// echo answers the request body, with its SHA-256 in X-Sha256.
func echo(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	sum := sha256.Sum256(body)
	w.Header().Set("X-Sha256", hex.EncodeToString(sum[:]))
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}

// events streams server-sent events: n of them (0: until the client
// leaves), one every ?every= (default 100ms).
func events(w http.ResponseWriter, r *http.Request) {
	n, _ := strconv.Atoi(r.FormValue("n"))
	every, err := time.ParseDuration(r.FormValue("every"))
	if err != nil {
		every = 100 * time.Millisecond
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	tick := time.NewTicker(every)
	defer tick.Stop()
	for sent := 0; n == 0 || sent < n; {
		fmt.Fprintf(w, "id: %d\ndata: event %d\n\n", sent, sent)
		err := rc.Flush()
		if err == nil {
			sent++
			select {
			case <-tick.C:
				continue
			case <-r.Context().Done():
				err = r.Context().Err()
			}
		}
		// Whichever the server notices first: the connection's end, or a
		// write that fails.
		fmt.Printf("events: client left after %d events (%v)\n", sent, err)
		return
	}
}

// hold answers "waiting", then waits for the server's Shutdown to begin,
// says so, reads the request body to its end and answers "released": a
// request in flight across Shutdown.
func (s *server) hold(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	rc.EnableFullDuplex() // read the body after the answer has begun
	io.WriteString(w, "waiting\n")
	rc.Flush()
	select {
	case <-s.stopping:
	case <-r.Context().Done():
		return
	}
	io.WriteString(w, "shutdown began\n")
	rc.Flush()
	io.Copy(io.Discard, r.Body)
	io.WriteString(w, "released\n")
}

// trickle writes a line every ?every= until a write fails, as it does once
// the server's WriteTimeout has passed, and prints how it ended.
func trickle(w http.ResponseWriter, r *http.Request) {
	every, err := time.ParseDuration(r.FormValue("every"))
	if err != nil {
		every = 10 * time.Millisecond
	}
	rc := http.NewResponseController(w)
	tick := time.NewTicker(every)
	defer tick.Stop()
	give := time.After(30 * time.Second)
	for n := 1; ; n++ {
		io.WriteString(w, "tick\n")
		if err := rc.Flush(); err != nil {
			fmt.Printf("trickle: write %d failed (deadline exceeded: %v): %v\n", n, errors.Is(err, os.ErrDeadlineExceeded), err)
			return
		}
		select {
		case <-tick.C:
		case <-give:
			fmt.Println("trickle: no write failed in 30s")
			return
		}
	}
}

// barrier holds requests until ?n= of them wait, then answers them all
// with ?size= bytes each: a way to have exactly n requests in flight.
type barrier struct {
	mu      sync.Mutex
	waiting int
	release chan struct{}
}

func (b *barrier) handle(w http.ResponseWriter, r *http.Request) {
	n, _ := strconv.Atoi(r.FormValue("n"))
	size, _ := strconv.Atoi(r.FormValue("size"))
	b.mu.Lock()
	if b.release == nil {
		b.release = make(chan struct{})
	}
	ch := b.release
	if b.waiting++; b.waiting >= n {
		close(b.release)
		b.release, b.waiting = nil, 0
	}
	b.mu.Unlock()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		http.Error(w, "barrier: not enough requests in flight", http.StatusServiceUnavailable)
		return
	}
	for ; size > 0; size -= len(filler) {
		w.Write(filler[:min(size, len(filler))])
	}
}

var filler = bytes.Repeat([]byte{'x'}, 32<<10)

// stats reports the connections accepted so far and, on Linux, this
// process's memory as /proc/self/status counts it, in KiB, once garbage
// has been collected and returned to the OS.
func (s *server) stats(w http.ResponseWriter, r *http.Request) {
	debug.FreeOSMemory()
	json.NewEncoder(w).Encode(stats{PID: os.Getpid(), Conns: s.conns.Load(), Memory: readMemory()})
}

// stats is what /stats answers.
type stats struct {
	PID    int
	Conns  int64
	Memory memory
}

// memory is a process's resident memory in KiB: all of it, its anonymous
// part (heap, stacks), and shared memory it has touched (link rings).
type memory struct{ RSS, Anon, Shmem int64 }

// readMemory reads this process's memory; zero where /proc is not there.
func readMemory() memory {
	var m memory
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			m.RSS = v
		case "RssAnon:":
			m.Anon = v
		case "RssShmem:":
			m.Shmem = v
		}
	}
	return m
}

// ---- client ----

// newClient returns an HTTP client whose connections go to addr, whatever
// the URL says, and keep up to idle idle connections (0: net/http's
// default of 2). cfg is the links' Config, nil for the defaults; with h2c
// the client speaks HTTP/2 without TLS, all requests on one connection.
func newClient(addr string, cfg *shmlink.Config, idle int, h2c bool) *http.Client {
	t := &http.Transport{DialContext: transport.Dialer(addr, cfg), MaxIdleConnsPerHost: idle}
	if h2c {
		t.Protocols = new(http.Protocols)
		t.Protocols.SetUnencryptedHTTP2(true)
	}
	return &http.Client{Transport: t}
}

// baseURL is the URL to request from addr. Over a link the host part is
// only the Host header: the dialer knows where to go.
func baseURL(addr string) string {
	if transport.Kind(addr) == "tcp" {
		return "http://" + addr
	}
	return "http://link"
}

// links is the Config of the example's links: a client started before
// its server waits for it.
var links = &shmlink.Config{Wait: true}

func clientCommand(args []string) error {
	addr, h2c := defaultAddr, false
	paths := cmdline.Flags(usage, args, func(fs *flag.FlagSet) {
		fs.StringVar(&addr, "addr", addr, "where the server listens")
		fs.BoolVar(&h2c, "h2c", false, "speak HTTP/2 without TLS")
	})
	if len(paths) == 0 {
		paths = []string{"/hello"}
	}
	c := newClient(addr, links, 0, h2c)
	for _, p := range paths {
		if err := get(c, baseURL(addr)+p); err != nil {
			return err
		}
	}
	return nil
}

// get prints the status and the body of a GET as it comes.
func get(c *http.Client, url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	fmt.Printf("GET %s: %s\n", req.URL.Path, resp.Status)
	_, err = io.Copy(os.Stdout, resp.Body)
	return err
}

// demo starts a server process on a link and shows what goes over it.
func demo() error { return serverproc.Demo("http-demo", talk) }

// talk shows keep-alive, a 10 MiB body both ways and server-sent events.
func talk(addr string) error {
	c := newClient(addr, links, 0, false)
	defer c.CloseIdleConnections()
	base := baseURL(addr)
	for range 2 { // the second request comes on the same connection
		if err := get(c, base+"/hello"); err != nil {
			return err
		}
	}
	body := make([]byte, 10<<20)
	rand.NewChaCha8([32]byte{}).Read(body)
	start := time.Now()
	resp, err := c.Post(base+"/echo", "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		return err
	}
	back, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if !bytes.Equal(back, body) {
		return errors.New("echo: the body came back changed")
	}
	fmt.Printf("POST /echo: 10 MiB there and back in %v\n", time.Since(start).Round(time.Millisecond))
	return get(c, base+"/events?n=3")
}

// ---- bench ----

func benchCommand(args []string) error {
	o := appbench.Options{What: "HTTP/1.1 GET of 64 B", Unit: "req/s",
		NewClient: func(addr string, inFlight int, cfg *shmlink.Config) (appbench.Client, error) {
			return &benchClient{c: newClient(addr, cfg, inFlight, false), url: baseURL(addr) + "/small"}, nil
		}}
	return appbench.Command(o, usage, args)
}

// benchClient GETs 64 bytes, keeping a connection per request in flight.
type benchClient struct {
	c   *http.Client
	url string
}

func (b *benchClient) Do(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, "GET", b.url, nil)
	if err != nil {
		return err
	}
	resp, err := b.c.Do(req)
	if err != nil {
		return err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && (resp.StatusCode != http.StatusOK || n != int64(len(smallBody))) {
		err = fmt.Errorf("%s, %d bytes", resp.Status, n)
	}
	return err
}

func (b *benchClient) Close() error {
	b.c.CloseIdleConnections()
	return nil
}
