package workload

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"time"

	"github.com/shmlink/shmlink/internal/sys"
)

// The peer process learns its part from the environment.
const (
	envTransport = "SHMLINK_BENCH_TRANSPORT"
	envAddr      = "SHMLINK_BENCH_ADDR"
	envPin       = "SHMLINK_BENCH_PIN"
	envConns     = "SHMLINK_BENCH_CONNS"
	// EnvPeerProfile, set by whoever runs a benchmark, makes each peer
	// write a CPU profile to that path with the peer's pid appended.
	EnvPeerProfile = "SHMLINK_BENCH_PEER_CPUPROFILE"
)

// startTimeout bounds how long a peer may take to start and connect.
const startTimeout = 30 * time.Second

// Peer is a peer process serving workloads over a transport, and the
// driver for it: for its first connection, and in Drivers for each.
type Peer struct {
	*Driver
	// Drivers has one driver per connection, Driver first; each may be
	// used by its own goroutine.
	Drivers []*Driver
	conns   []Conn
	ep      *Endpoint
	dir     string
	cmd     *exec.Cmd
	exited  chan error // gets cmd.Wait's result, then is closed
}

// Start starts cmd as a peer process over tr and waits until it connected.
// cmd must run RunPeer; Start adds to its environment and descriptors. With
// pin >= 0, the peer pins itself to that CPU.
func Start(tr *Transport, cmd *exec.Cmd, pin int) (*Peer, error) {
	return StartConns(tr, cmd, pin, 1)
}

// StartConns is Start with n connections to the one peer process, which
// serves each on its own goroutine. A transport that hands the peer
// descriptors (the pipes) has one connection only.
func StartConns(tr *Transport, cmd *exec.Cmd, pin, n int) (_ *Peer, err error) {
	if n < 1 {
		return nil, fmt.Errorf("start %s peer: %d connections", tr.Name, n)
	}
	dir, err := os.MkdirTemp("", "shmlink-bench-")
	if err != nil {
		return nil, fmt.Errorf("start %s peer: %w", tr.Name, err)
	}
	p := &Peer{dir: dir, exited: make(chan error, 1)}
	defer func() {
		if err != nil {
			p.cleanup()
			err = fmt.Errorf("start %s peer: %w", tr.Name, err)
		}
	}()
	if p.ep, err = tr.Listen(dir); err != nil {
		return nil, err
	}
	if n > 1 && len(p.ep.Files) > 0 {
		for _, f := range p.ep.Files {
			f.Close()
		}
		if c, err := p.ep.Accept(); err == nil {
			c.Close() // this process's ends, which Accept hands out at once
		}
		return nil, fmt.Errorf("%d connections over a transport of inherited descriptors", n)
	}
	cmd.Env = append(cmd.Environ(), envTransport+"="+tr.Name, envAddr+"="+p.ep.Addr, envConns+"="+strconv.Itoa(n))
	if pin >= 0 {
		cmd.Env = append(cmd.Env, envPin+"="+strconv.Itoa(pin))
	}
	cmd.ExtraFiles = p.ep.Files
	err = cmd.Start()
	for _, f := range p.ep.Files {
		f.Close()
	}
	if err != nil {
		return nil, err
	}
	p.cmd = cmd
	go func() {
		p.exited <- cmd.Wait()
		close(p.exited)
	}()
	type accepted struct {
		cs  []Conn
		err error
	}
	acc := make(chan accepted, 1)
	go func() {
		var a accepted
		for range n {
			c, err := p.ep.Accept()
			if err != nil {
				a.err = err
				break
			}
			a.cs = append(a.cs, c)
		}
		acc <- a
	}()
	// keep takes what was accepted, for cleanup to close.
	keep := func(a accepted) accepted {
		p.conns = a.cs
		return a
	}
	select {
	case a := <-acc:
		if keep(a).err != nil {
			return nil, a.err
		}
		for _, c := range a.cs {
			p.Drivers = append(p.Drivers, NewDriver(c))
		}
		p.Driver = p.Drivers[0]
		return p, nil
	case err := <-p.exited:
		p.ep.Close()
		keep(<-acc)
		return nil, fmt.Errorf("peer exited before connecting: %v", err)
	case <-time.After(startTimeout):
		p.ep.Close()
		keep(<-acc)
		return nil, fmt.Errorf("peer did not connect within %v", startTimeout)
	}
}

// Close tells the peer to finish, waits for it to exit and releases
// everything. It reports the peer's failure, if any.
func (p *Peer) Close() error {
	var errs []error
	for _, d := range p.Drivers {
		errs = append(errs, d.quit())
	}
	return errors.Join(append(errs, p.cleanup())...)
}

func (p *Peer) cleanup() error {
	var errs []error
	for _, c := range p.conns {
		errs = append(errs, c.Close())
	}
	if p.ep != nil {
		errs = append(errs, p.ep.Close())
	}
	if p.cmd != nil {
		select {
		case err := <-p.exited:
			if err != nil {
				errs = append(errs, fmt.Errorf("peer: %w", err))
			}
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-p.exited
			errs = append(errs, errors.New("peer did not exit within 10s; killed"))
		}
	}
	errs = append(errs, os.RemoveAll(p.dir))
	return errors.Join(errs...)
}

// PeerRequested reports whether this process was started by Start, and so
// should call RunPeer.
func PeerRequested() bool { return os.Getenv(envTransport) != "" }

// RunPeer is the peer process's part: it connects over the transport named
// in the environment, one of ts, and serves workloads until told to quit.
func RunPeer(ts ...*Transport) error {
	name := os.Getenv(envTransport)
	var tr *Transport
	for _, t := range ts {
		if t.Name == name {
			tr = t
		}
	}
	if tr == nil {
		return fmt.Errorf("bench peer: unknown transport %q", name)
	}
	if s := os.Getenv(envPin); s != "" {
		cpu, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("bench peer: bad CPU %q", s)
		}
		if err := Pin(cpu); err != nil {
			return fmt.Errorf("bench peer: %w", err)
		}
	}
	if path := os.Getenv(EnvPeerProfile); path != "" {
		stop, err := startProfile(fmt.Sprintf("%s.%d", path, os.Getpid()))
		if err != nil {
			return fmt.Errorf("bench peer: %w", err)
		}
		defer stop()
	}
	n := 1
	if s := os.Getenv(envConns); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			return fmt.Errorf("bench peer: bad connection count %q", s)
		}
	}
	errs := make(chan error, n)
	for i := range n {
		c, err := tr.Dial(os.Getenv(envAddr))
		if err != nil {
			return fmt.Errorf("bench peer: dial %s (connection %d): %w", name, i, err)
		}
		go func() {
			defer c.Close()
			if err := Serve(c); err != nil {
				errs <- fmt.Errorf("bench peer over %s: %w", name, err)
				return
			}
			errs <- nil
		}()
	}
	var all []error
	for range n {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

func startProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// Pin pins this process to one CPU and sizes the Go scheduler to match, so
// that its goroutines do not contend for the one CPU from two threads.
func Pin(cpu int) error {
	if err := sys.PinProcess([]int{cpu}); err != nil {
		return err
	}
	runtime.GOMAXPROCS(1)
	return nil
}
