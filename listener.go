package shmlink

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shmlink/shmlink/internal/ring"
	"github.com/shmlink/shmlink/internal/sys"
	"github.com/shmlink/shmlink/internal/wake"
	"github.com/shmlink/shmlink/internal/wire"
)

// acceptBacklog is how many handshaken links may wait for Accept.
const acceptBacklog = 128

// Listener accepts links on a name. It implements net.Listener; each client
// gets its own link (its own memory and rings).
type Listener struct {
	cfg     Config
	name    string
	path    string
	ln      *net.UnixListener
	since   time.Time
	ready   chan *Conn
	done    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
	clients atomic.Int32

	hsMu        sync.Mutex
	handshaking map[*net.UnixConn]struct{} // connections mid-handshake
	closing     bool
}

// Listen starts serving links on name. A name is a plain name (see
// RuntimeDir for where its socket lives) or an absolute socket path. If a
// live server already has the name, Listen fails with ErrAddrInUse; a socket
// left behind by a dead server is replaced.
func Listen(name string, cfg *Config) (*Listener, error) {
	l, err := listen(name, cfg)
	if err != nil {
		return nil, fmt.Errorf("shmlink: listen %q: %w", name, err)
	}
	return l, nil
}

func listen(name string, cfg *Config) (*Listener, error) {
	conf, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	path, err := socketPath(name)
	if err != nil {
		return nil, err
	}
	// The lock makes check-remove-bind atomic against another Listen on
	// the same directory; the kernel drops it if we die holding it.
	unlock, err := sys.LockDir(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := removeStale(path); err != nil {
		return nil, err
	}
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		return nil, err
	}
	if len(conf.AllowUIDs)+len(conf.AllowGIDs) > 0 {
		// Others must be able to connect; the credential check decides.
		if err := os.Chmod(path, 0o666); err != nil {
			ln.Close()
			return nil, err
		}
	}
	l := &Listener{cfg: conf, name: name, path: path, ln: ln, since: time.Now(),
		ready: make(chan *Conn, acceptBacklog), done: make(chan struct{}),
		handshaking: make(map[*net.UnixConn]struct{})}
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

// removeStale removes a socket file nobody listens on, and refuses a name
// that a live server holds.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket", path)
	}
	c, err := net.DialTimeout("unixpacket", path, time.Second)
	if err == nil {
		c.Close()
		return ErrAddrInUse
	}
	if !sys.IsConnRefused(err) {
		return fmt.Errorf("probe existing socket: %w", err)
	}
	return os.Remove(path)
}

// Addr returns the listener's address.
func (l *Listener) Addr() net.Addr { return &Addr{Name: l.name, Path: l.path, PID: os.Getpid()} }

// Accept waits for the next link. It implements net.Listener; AcceptLink
// returns the *Conn without the interface.
func (l *Listener) Accept() (net.Conn, error) { return l.AcceptLink() }

// AcceptLink waits for the next link and returns it.
func (l *Listener) AcceptLink() (*Conn, error) { return l.AcceptContext(context.Background()) }

// AcceptContext is AcceptLink that gives up when ctx is done.
func (l *Listener) AcceptContext(ctx context.Context) (*Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.done:
		return nil, &net.OpError{Op: "accept", Net: "shmlink", Addr: l.Addr(), Err: net.ErrClosed}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close stops listening and removes the socket file. Links already
// accepted stay open; links handshaken but not yet accepted are closed.
func (l *Listener) Close() error {
	err := fmt.Errorf("shmlink: close listener %q: %w", l.name, net.ErrClosed)
	l.once.Do(func() {
		err = nil
		close(l.done)
		l.ln.Close() // net removes the socket file it created
		// Close must not wait for a client that stalls mid-handshake.
		l.hsMu.Lock()
		l.closing = true
		for sock := range l.handshaking {
			sock.SetDeadline(time.Unix(1, 0))
		}
		l.hsMu.Unlock()
		l.wg.Wait()
		for {
			select {
			case c := <-l.ready:
				c.Close()
				continue
			default:
			}
			break
		}
	})
	return err
}

func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	for {
		sock, err := l.ln.AcceptUnix()
		if err != nil {
			select {
			case <-l.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors and the like: back off rather than spin.
			select {
			case <-l.done:
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		l.wg.Add(1)
		// The handshake's deadline is set before the connection is
		// tracked, so that a Close cutting it off has the last word.
		sock.SetDeadline(time.Now().Add(l.cfg.HandshakeTimeout))
		l.trackHandshake(sock, true)
		go func() {
			defer l.wg.Done()
			c, err := l.handshake(sock)
			l.trackHandshake(sock, false)
			if err != nil {
				sock.Close()
				return
			}
			if c == nil {
				return // a probe, answered and closed
			}
			select {
			case l.ready <- c:
			case <-l.done:
				c.Close()
			}
		}()
	}
}

// trackHandshake records (add) or forgets a connection whose handshake is
// in flight, so that Close can cut it off. Only connections still in the
// handshake are touched: a finished one may be a live link.
func (l *Listener) trackHandshake(sock *net.UnixConn, add bool) {
	l.hsMu.Lock()
	defer l.hsMu.Unlock()
	if !add {
		delete(l.handshaking, sock)
		return
	}
	if l.closing {
		sock.SetDeadline(time.Unix(1, 0))
	}
	l.handshaking[sock] = struct{}{}
}

// handshake runs the server side of the handshake on a new connection. A
// client that breaks the rules gets a Reject saying why, when it can be
// told, and nothing is kept of what it sent.
//
// The caller has set the handshake's deadline.
func (l *Listener) handshake(sock *net.UnixConn) (_ *Conn, err error) {
	reject := func(code uint16, why error) error {
		_ = sys.SendMsg(sock, wire.Encode(nil, wire.Msg{Type: wire.Reject, Code: code, Reason: why.Error()}))
		return why
	}
	cred, err := sys.PeerCred(sock)
	if err != nil {
		return nil, err
	}
	var buf [256]byte
	n, files, err := sys.RecvMsg(sock, buf[:], wire.Hello.Files())
	if errors.Is(err, sys.ErrTooManyFiles) {
		return nil, reject(wire.RejectSegment, err)
	}
	if err != nil {
		return nil, err
	}
	var cleanup []func() error
	for _, f := range files {
		cleanup = append(cleanup, f.Close)
	}
	defer func() {
		if err != nil {
			for i := len(cleanup) - 1; i >= 0; i-- {
				cleanup[i]()
			}
		}
	}()
	m, err := wire.Decode(buf[:n], len(files))
	if err != nil {
		return nil, reject(wire.RejectSegment, err)
	}
	if m.Version != wire.Version {
		return nil, reject(wire.RejectVersion, fmt.Errorf("version %d not supported, server speaks %d", m.Version, wire.Version))
	}
	if !l.cfg.admits(cred) {
		return nil, reject(wire.RejectPermission, fmt.Errorf("uid %d gid %d not allowed", cred.UID, cred.GID))
	}
	switch m.Type {
	case wire.Probe:
		info := wire.Msg{Type: wire.Info, PID: uint32(os.Getpid()), Clients: uint32(l.clients.Load()), Since: l.since.UnixNano()}
		_ = sys.SendMsg(sock, wire.Encode(nil, info))
		sock.Close()
		return nil, nil
	case wire.Hello:
	default:
		return nil, reject(wire.RejectSegment, fmt.Errorf("expected hello, got %s", m.Type))
	}

	seg := files[0]
	size, err := sys.CheckSegment(seg)
	if err != nil {
		return nil, reject(wire.RejectSegment, err)
	}
	if size < ring.HeaderSize || size > ring.HeaderSize+2*ring.MaxRingSize {
		return nil, reject(wire.RejectSegment, fmt.Errorf("segment of %d bytes is outside [%d, %d]",
			size, ring.HeaderSize, ring.HeaderSize+2*ring.MaxRingSize))
	}
	mem, err := sys.Map(seg, int(size))
	if err != nil {
		return nil, reject(wire.RejectSegment, err)
	}
	cleanup = append(cleanup, func() error { return sys.Unmap(mem) })
	layout, err := ring.Parse(mem)
	if err != nil {
		return nil, reject(wire.RejectSegment, err)
	}
	peerData, err := wake.NewBell(files[1])
	if err != nil {
		return nil, reject(wire.RejectSegment, err)
	}
	peerSpace, err := wake.NewBell(files[2])
	if err != nil {
		return nil, reject(wire.RejectSegment, err)
	}
	dataBell, err := wake.NewDoorbell()
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, dataBell.Close)
	spaceBell, err := wake.NewDoorbell()
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, spaceBell.Close)
	ep, err := newEndpoint(l.cfg, seg, mem, layout, true, dataBell, spaceBell)
	if err != nil {
		return nil, reject(wire.RejectSegment, err)
	}
	welcome := wire.Encode(nil, wire.Msg{Type: wire.Welcome, PID: uint32(os.Getpid()),
		MaxMessage: uint64(l.cfg.MaxMessageSize)})
	if err := sys.SendMsg(sock, welcome, dataBell.File(), spaceBell.File()); err != nil {
		return nil, err
	}
	sock.SetDeadline(time.Time{})
	c := newConn(ep, session{
		sock:   sock,
		local:  &Addr{Name: l.name, Path: l.path, PID: os.Getpid()},
		remote: &Addr{Name: l.name, Path: l.path, PID: cred.PID},
		cred:   cred, maxSend: m.MaxMessage,
		peerData: peerData, peerSpace: peerSpace,
	})
	l.clients.Add(1)
	c.onClose = func() { l.clients.Add(-1) }
	c.start()
	return c, nil
}
