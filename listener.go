package shmlink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shmlink/shmlink/internal/ring"
	"github.com/shmlink/shmlink/internal/sys"
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
	ln      *sys.Listener
	since   time.Time
	ready   chan *Conn
	done    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
	clients atomic.Int32 // links handshaking or accepted and not closed

	connsMu sync.Mutex
	conns   map[*Conn]struct{} // links accepted and not closed, for Stat

	hsMu        sync.Mutex
	handshaking map[*sys.Conn]struct{} // connections mid-handshake
	closing     bool

	// spare is a pair of doorbells made ahead of the next client, so that
	// making them (two eventfds: about 15µs here) is not on the path of
	// its handshake. Each handshake that takes it makes the next after
	// the link is handed over. Nil when taken.
	spareMu sync.Mutex
	spare   *[2]*sys.Doorbell
}

// Listen starts serving links on name. A name is a plain name (see
// RuntimeDir for where it lives) or an absolute path. If a live server
// already has the name, Listen fails with ErrAddrInUse; a name left behind
// by a dead server is taken over.
func Listen(name string, cfg *Config) (*Listener, error) {
	l, err := listen(name, cfg)
	if err != nil {
		return nil, netErr("listen", name, err)
	}
	return l, nil
}

func listen(name string, cfg *Config) (*Listener, error) {
	if err := platformCheck(); err != nil {
		return nil, err
	}
	conf, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	path, err := endpointPath(name)
	if err != nil {
		return nil, err
	}
	ln, err := sys.Listen(path, len(conf.AllowUIDs)+len(conf.AllowGIDs) > 0)
	if errors.Is(err, sys.ErrInUse) {
		return nil, ErrAddrInUse
	}
	if err != nil {
		return nil, err
	}
	l := &Listener{cfg: conf, name: name, path: path, ln: ln, since: time.Now(),
		ready: make(chan *Conn, acceptBacklog), done: make(chan struct{}),
		handshaking: make(map[*sys.Conn]struct{}), conns: make(map[*Conn]struct{})}
	l.refill()
	conf.log(slog.LevelInfo, "shmlink: listening", "name", name, "path", path)
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

// Addr returns the listener's address.
func (l *Listener) Addr() net.Addr { return &Addr{Name: l.name, Path: l.path, PID: os.Getpid()} }

// Accept waits for the next link. It implements net.Listener; AcceptConn
// returns the *Conn without the interface.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.AcceptConn()
	if err != nil {
		return nil, err // a nil interface, not a nil *Conn in one
	}
	return c, nil
}

// AcceptConn waits for the next link and returns it.
func (l *Listener) AcceptConn() (*Conn, error) { return l.AcceptContext(context.Background()) }

// AcceptContext is AcceptConn that gives up when ctx is done.
func (l *Listener) AcceptContext(ctx context.Context) (*Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.done:
		return nil, l.opError("accept", net.ErrClosed)
	case <-ctx.Done():
		return nil, l.opError("accept", ctx.Err())
	}
}

func (l *Listener) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "shmlink", Addr: l.Addr(), Err: err}
}

// Close stops listening and removes the name. Links already accepted stay
// open; links handshaken but not yet accepted are closed.
func (l *Listener) Close() error {
	err := l.opError("close", net.ErrClosed)
	l.once.Do(func() {
		err = nil
		// The name goes first, so that a program that exits as soon as
		// Accept reports the close leaves no socket file behind.
		l.ln.Close()
		close(l.done)
		// Close must not wait for a client that stalls mid-handshake.
		l.hsMu.Lock()
		l.closing = true
		for ctl := range l.handshaking {
			ctl.SetDeadline(time.Unix(1, 0))
		}
		l.hsMu.Unlock()
		l.wg.Wait()
		// No handshake is left to take or make the spare doorbells.
		if d := l.takeSpare(); d != nil {
			d[0].Close()
			d[1].Close()
		}
		// Together: each may wait for its client's Taken (Conn.end).
		var ends sync.WaitGroup
		for {
			select {
			case c := <-l.ready:
				ends.Go(func() { c.Close() })
				continue
			default:
			}
			break
		}
		ends.Wait()
	})
	return err
}

func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	for {
		ctl, err := l.ln.Accept()
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
		ctl.SetDeadline(time.Now().Add(l.cfg.HandshakeTimeout))
		l.trackHandshake(ctl, true)
		go func() {
			defer l.wg.Done()
			c, err := l.handshake(ctl)
			l.trackHandshake(ctl, false)
			if err != nil {
				ctl.Close()
				return
			}
			if c == nil {
				return // a probe, answered and closed
			}
			select {
			case l.ready <- c:
				l.refill()
			case <-l.done:
				c.Close()
			}
		}()
	}
}

// track records (add) or forgets a link that this listener serves.
func (l *Listener) track(c *Conn, add bool) {
	l.connsMu.Lock()
	defer l.connsMu.Unlock()
	if add {
		l.conns[c] = struct{}{}
	} else {
		delete(l.conns, c)
	}
}

// trackHandshake records (add) or forgets a connection whose handshake is
// in flight, so that Close can cut it off. Only connections still in the
// handshake are touched: a finished one may be a live link.
func (l *Listener) trackHandshake(ctl *sys.Conn, add bool) {
	l.hsMu.Lock()
	defer l.hsMu.Unlock()
	if !add {
		delete(l.handshaking, ctl)
		return
	}
	if l.closing {
		ctl.SetDeadline(time.Unix(1, 0))
	}
	l.handshaking[ctl] = struct{}{}
}

// handshake runs the server side of the handshake on a new connection:
// read the client's hello, attach the memory it sent, welcome it. A client
// that breaks the rules gets a Reject saying why, when it can be told, and
// nothing is kept of what it sent. A probe is answered and gets a nil Conn.
//
// The caller has set the handshake's deadline.
func (l *Listener) handshake(ctl *sys.Conn) (_ *Conn, err error) {
	cred, hello, hs, err := l.readHello(ctl)
	if err != nil {
		return nil, err
	}
	if hello.Type == wire.Probe || hello.Type == wire.Stat {
		l.answerProbe(ctl, hello.Type == wire.Stat)
		return nil, nil
	}
	if n := l.clients.Add(1); l.cfg.MaxClients > 0 && int(n) > l.cfg.MaxClients {
		l.clients.Add(-1)
		sys.CloseHandles(hs)
		return nil, l.reject(ctl, cred, wire.RejectBusy, fmt.Errorf("%s serves at most %d clients at once", l.name, l.cfg.MaxClients))
	}
	var undo cleanup
	defer undo.onError(&err)
	undo.add(func() error { l.clients.Add(-1); return nil })
	ep, p, err := l.attach(hs)
	if err != nil {
		return nil, l.reject(ctl, cred, wire.RejectSegment, err)
	}
	undo.add(func() error { ep.close(nil); p.peerData.Close(); return p.peerSpace.Close() })

	// Where the client pulls our doorbells out of this process, it says
	// when it has them, if it can: they must stay open until then.
	flags, taken := wire.FlagHalfClose, false
	if sys.HandlesPulled && hello.Flags&wire.FlagTaken != 0 {
		flags, taken = flags|wire.FlagTaken, true
	}
	welcome := wire.Encode(nil, wire.Msg{Type: wire.Welcome, PID: uint32(os.Getpid()),
		MaxMessage: uint64(l.cfg.MaxMessageSize), Flags: flags})
	if err := ctl.Send(welcome, ep.dataBell.Handle(), ep.spaceBell.Handle()); err != nil {
		return nil, err
	}
	// The client, woken onto this CPU, would otherwise wait for all that
	// follows here and in the application's Accept.
	ctl.YieldToPeer()
	// From here the connection is a link: it leaves the set that Close
	// cuts off before its deadline is cleared, so that a Close cannot set
	// a past one on it afterwards (one it set before is cleared here). A
	// Close under way then ends it with a goodbye, as an unaccepted link.
	l.hsMu.Lock()
	delete(l.handshaking, ctl)
	l.hsMu.Unlock()
	ctl.SetDeadline(time.Time{})
	p.local = &Addr{Name: l.name, Path: l.path, PID: os.Getpid()}
	p.remote = &Addr{Name: l.name, Path: l.path, PID: cred.PID}
	p.cred, p.maxSend, p.flags = cred, hello.MaxMessage, hello.Flags
	c := newConn(ep, ctl, p)
	if taken {
		c.taken = make(chan struct{})
	}
	l.track(c, true)
	c.onClose = func() { l.track(c, false); l.clients.Add(-1) }
	c.start()
	l.cfg.log(slog.LevelInfo, "shmlink: connected", "name", l.name, "role", "server", "peer_pid", cred.PID, "peer_uid", cred.UID)
	return c, nil
}

// reject tells the client why it is refused, if it can, and returns why.
func (l *Listener) reject(ctl *sys.Conn, cred sys.Cred, code uint16, why error) error {
	l.cfg.log(slog.LevelWarn, "shmlink: handshake rejected", "name", l.name, "peer_pid", cred.PID,
		"peer_uid", cred.UID, "code", code, "reason", why.Error())
	_ = ctl.Send(wire.Encode(nil, wire.Msg{Type: wire.Reject, Code: code, Reason: why.Error()}))
	return why
}

// readHello reads the client's first packet, a hello or a probe, and checks
// it and the client's credentials. The handles come with a hello only; on
// error none are kept.
func (l *Listener) readHello(ctl *sys.Conn) (cred sys.Cred, m wire.Msg, hs []sys.Handle, err error) {
	if cred, err = ctl.PeerCred(); err != nil {
		return cred, m, nil, err
	}
	var buf [256]byte
	n, hs, err := ctl.Recv(buf[:], wire.Hello.Handles())
	if errors.Is(err, sys.ErrTooManyHandles) {
		return cred, m, nil, l.reject(ctl, cred, wire.RejectSegment, err)
	}
	if err != nil {
		return cred, m, nil, err
	}
	m, err = wire.Decode(buf[:n], len(hs))
	switch {
	case err != nil:
		err = l.reject(ctl, cred, wire.RejectSegment, err)
	case m.Version != wire.Version:
		err = l.reject(ctl, cred, wire.RejectVersion, fmt.Errorf("version %d not supported, server speaks %d", m.Version, wire.Version))
	case !l.cfg.admits(cred):
		err = l.reject(ctl, cred, wire.RejectPermission, fmt.Errorf("uid %d gid %d not allowed; to admit it, set AllowUIDs or AllowGIDs in the server's Config", cred.UID, cred.GID))
	case m.Type != wire.Hello && m.Type != wire.Probe && m.Type != wire.Stat:
		err = l.reject(ctl, cred, wire.RejectSegment, fmt.Errorf("expected hello, got %s", m.Type))
	}
	if err != nil {
		sys.CloseHandles(hs)
		return cred, m, nil, err
	}
	return cred, m, hs, nil
}

// answerProbe tells a prober who this listener is and, for a Stat, each
// link's counters; then it hangs up.
func (l *Listener) answerProbe(ctl *sys.Conn, links bool) {
	l.connsMu.Lock()
	conns := make([]*Conn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.connsMu.Unlock()
	info := wire.Msg{Type: wire.Info, PID: uint32(os.Getpid()), Clients: uint32(len(conns)),
		Since: l.since.UnixNano()}
	if links {
		info.Type = wire.Links
		slices.SortFunc(conns, func(a, b *Conn) int { return a.since.Compare(b.since) })
		for _, c := range conns[:min(len(conns), wire.MaxLinkRecords)] {
			info.Links = append(info.Links, c.record())
		}
	}
	_ = ctl.Send(wire.Encode(nil, info))
	ctl.Close()
}

// attach checks and maps the segment a hello carried, takes the client's
// doorbells and makes this side's endpoint over the rings. It takes the
// handles: on error, none is left open.
func (l *Listener) attach(hs []sys.Handle) (_ *endpoint, p peer, err error) {
	var undo cleanup
	defer undo.onError(&err)
	taken := 0 // handles handed on, which close themselves on error
	undo.add(func() error { sys.CloseHandles(hs[taken:]); return nil })

	taken = 1
	seg, err := sys.AttachSegment(hs[0], ring.HeaderSize, ring.HeaderSize+2*ring.MaxRingSize)
	if err != nil {
		return nil, p, err
	}
	undo.add(seg.Close)
	layout, err := ring.Parse(seg.Mem())
	if err != nil {
		return nil, p, err
	}
	taken = 2
	if p.peerData, err = sys.OpenBell(hs[1]); err != nil {
		return nil, p, err
	}
	undo.add(p.peerData.Close)
	taken = 3
	if p.peerSpace, err = sys.OpenBell(hs[2]); err != nil {
		return nil, p, err
	}
	undo.add(p.peerSpace.Close)
	var data, space *sys.Doorbell
	if d := l.takeSpare(); d != nil {
		data, space = d[0], d[1]
		undo.add(data.Close)
		undo.add(space.Close)
	} else if data, space, err = newDoorbells(&undo); err != nil {
		return nil, p, err
	}
	ep, err := newEndpoint(l.cfg, seg, layout, true, data, space)
	return ep, p, err
}

// takeSpare takes the spare doorbells, if there are any.
func (l *Listener) takeSpare() *[2]*sys.Doorbell {
	l.spareMu.Lock()
	defer l.spareMu.Unlock()
	d := l.spare
	l.spare = nil
	return d
}

// refill makes spare doorbells for the next client, if none are waiting.
// Failing to is not an error: that handshake makes its own.
func (l *Listener) refill() {
	l.spareMu.Lock()
	have := l.spare != nil
	l.spareMu.Unlock()
	if have {
		return
	}
	var undo cleanup
	data, space, err := newDoorbells(&undo)
	if err != nil {
		undo.onError(&err)
		return
	}
	l.spareMu.Lock()
	if l.spare == nil {
		l.spare, data, space = &[2]*sys.Doorbell{data, space}, nil, nil
	}
	l.spareMu.Unlock()
	if data != nil { // another handshake refilled meanwhile
		data.Close()
		space.Close()
	}
}
