package shmlink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Role says which end of a named link a Link is.
type Role int

const (
	// RoleClient dials the name. It owns the link's memory, so the link
	// survives a restart of the server: it reconnects by itself and
	// nothing committed to the rings is lost (PROTOCOL.md, "Delivery
	// across restarts").
	RoleClient Role = iota
	// RoleServer listens on the name and serves one client at a time;
	// when that client leaves, it waits for the next.
	RoleServer
)

// String returns "client" or "server".
func (r Role) String() string {
	if r == RoleServer {
		return "server"
	}
	return "client"
}

// Handlers receive a Link's events. A Link calls them from its own
// goroutines, never two at once, and OnMessage in the order the messages
// were sent. A handler that takes its time applies back-pressure: while
// OnMessage runs, nothing more is read, so once the ring fills the peer's
// Send waits. Any handler may be nil.
type Handlers struct {
	// OnMessage gets each message. msg is the handler's to keep.
	OnMessage func(msg []byte)
	// OnStatus gets each change of status: StatusWaiting,
	// StatusConnected, StatusPeerClosed, StatusPeerLost, and finally
	// StatusClosed or StatusFailed.
	OnStatus func(s Status)
	// OnError gets errors the application cannot act on as they happen:
	// a refused reconnection, an oversized message that was skipped.
	OnError func(err error)
}

// Link is a long-lived link in the style of an event-driven program: one
// object per side, three handlers and a Send method. Goroutines of its own
// read messages and call the handlers, and the link reconnects by itself
// whenever the peer comes back.
type Link struct {
	name   string
	role   Role
	cfg    Config
	h      Handlers
	hmu    sync.Mutex // serialises handler calls
	ctx    context.Context
	cancel context.CancelFunc
	// reads is done as soon as Close begins, before ctx: from then on the
	// readers begin no new message, as no handler would get it (one being
	// taken at that moment is the one a closing side may lose, PROTOCOL.md
	// 7.1).
	reads     context.Context
	stopReads context.CancelFunc
	status    atomic.Int32
	once      sync.Once

	// The link's goroutines are counted so that Close can wait for them;
	// one inside a handler does not count, so a handler may call Close.
	mu         sync.Mutex
	idle       sync.Cond // on mu: signalled when running drops
	running    int       // goroutines neither exited nor inside a handler
	inHandler  bool
	closed     bool        // Close has begun: no handler starts any more
	finalLater bool        // the handler running now delivers StatusClosed after it
	unhook     func() bool // stops watching Open's context

	// Client role: one endpoint for the link's whole life, and the
	// session over it now (under mu).
	ep   *endpoint
	conn *Conn

	// Server role: the listener and the current session (under mu).
	ln        *Listener
	cur       *Conn
	connected chan struct{} // closed when a session starts; replaced when it ends
}

// Open sets up a link on name and returns at once; it does not wait for the
// peer. The link lives until Close, or until ctx is done. A client-role
// link may Send before any server exists: messages wait in its ring.
func Open(ctx context.Context, name string, role Role, h Handlers, cfg *Config) (*Link, error) {
	l, err := open(ctx, name, role, h, cfg)
	if err != nil {
		return nil, opErr("open "+role.String(), name, err)
	}
	return l, nil
}

func open(ctx context.Context, name string, role Role, h Handlers, cfg *Config) (*Link, error) {
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
	l := &Link{name: name, role: role, cfg: conf, h: h, connected: make(chan struct{})}
	l.idle.L = &l.mu
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.reads, l.stopReads = context.WithCancel(l.ctx)
	switch role {
	case RoleClient:
		if l.ep, err = newClientEndpoint(conf, name); err != nil {
			return nil, err
		}
		l.ep.persistent = true
		l.run(func() { l.runClient(path) })
		l.run(l.readClient)
	case RoleServer:
		if l.ln, err = listen(name, cfg); err != nil {
			return nil, err
		}
		l.run(l.runServer)
	default:
		return nil, fmt.Errorf("%w: unknown role %d", ErrInvalidConfig, role)
	}
	unhook := context.AfterFunc(ctx, func() { l.Close() })
	l.mu.Lock()
	l.unhook = unhook
	l.mu.Unlock()
	return l, nil
}

// run starts one of the link's goroutines.
func (l *Link) run(f func()) {
	l.mu.Lock()
	l.running++
	l.mu.Unlock()
	go func() {
		defer func() {
			l.mu.Lock()
			l.running--
			l.idle.Broadcast()
			l.mu.Unlock()
		}()
		f()
	}()
}

// Status returns the link's current status.
func (l *Link) Status() Status { return Status(l.status.Load()) }

func (l *Link) setStatus(s Status) {
	if l.closing() || Status(l.status.Swap(int32(s))) == s {
		return
	}
	l.call(func() {
		if l.h.OnStatus != nil {
			l.h.OnStatus(s)
		}
	})
}

// call runs a handler, unless Close has begun. Handlers never run two at
// once. A goroutine does not count for Close while it runs a handler or
// waits for its turn to: the handler running may be the one calling Close,
// or be blocked until Close frees the link.
func (l *Link) call(f func()) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.running--
	l.idle.Broadcast()
	l.mu.Unlock()

	l.hmu.Lock()
	defer l.hmu.Unlock()
	l.mu.Lock()
	if l.closed { // Close began while we waited: no handler any more
		l.running++
		l.mu.Unlock()
		return
	}
	l.inHandler = true
	l.mu.Unlock()

	f()

	l.mu.Lock()
	l.running++
	l.inHandler = false
	final := l.finalLater
	l.mu.Unlock()
	if final {
		l.deliverClosed()
	}
}

// deliverClosed gives OnStatus its last call; the caller holds hmu.
func (l *Link) deliverClosed() {
	if l.Status() == StatusFailed {
		return // that was the last status
	}
	l.status.Store(int32(StatusClosed))
	if l.h.OnStatus != nil {
		l.h.OnStatus(StatusClosed)
	}
}

func (l *Link) onError(err error) {
	l.call(func() {
		if l.h.OnError != nil {
			l.h.OnError(err)
		}
	})
}

func (l *Link) onMessage(m []byte) {
	l.call(func() {
		if l.h.OnMessage != nil {
			l.h.OnMessage(m)
		}
	})
}

func (l *Link) closing() bool { return l.ctx.Err() != nil }

// pause waits d or until the link closes.
func (l *Link) pause(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-l.ctx.Done():
	}
}

// runClient keeps a client-role link connected: it waits for a server,
// hands it the link's memory, and starts over when the server goes.
func (l *Link) runClient(path string) {
	backoff := 10 * time.Millisecond
	for !l.closing() {
		c, err := connect(l.ctx, l.name, path, l.ep, true)
		if err != nil {
			if l.closing() {
				return
			}
			// A refusal (permissions, a foreign version) may be fixed
			// by a restarted server; retry, slowly.
			l.onError(opErr("link", l.name, err))
			l.pause(backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 10 * time.Millisecond
		// Close ends the session it finds here, with a goodbye.
		l.mu.Lock()
		l.conn = c
		l.mu.Unlock()
		c.start()
		l.cfg.log(slog.LevelInfo, "shmlink: connected", "name", l.name, "role", "client", "peer_pid", c.remote.PID)
		l.setStatus(StatusConnected)
		select {
		case <-c.Done():
		case <-l.ctx.Done():
		}
		if l.closing() {
			return
		}
		st := c.Status()
		l.mu.Lock()
		l.conn = nil
		l.mu.Unlock()
		c.end(false)
		if st == StatusFailed || l.ep.failErr.Load() != nil {
			return // readClient reports it
		}
		l.setStatus(st)
		l.setStatus(StatusWaiting)
	}
}

// readClient delivers messages for the link's whole life; between
// sessions it simply finds the ring empty and sleeps.
func (l *Link) readClient() {
	for {
		m, err := l.ep.readMessage(l.reads)
		switch {
		case err == nil:
			l.onMessage(m)
		case errors.Is(err, ErrMessageTooLarge):
			l.onError(opErr("link", l.name, err))
		case l.reads.Err() != nil || errors.Is(err, net.ErrClosed):
			return
		default:
			// The peer broke the protocol (the endpoint has failed): the
			// memory cannot be trusted any more, so the link is over.
			l.setStatus(StatusFailed)
			l.onError(opErr("link", l.name, err))
			l.cancel()
			return
		}
	}
}

// runServer serves one client at a time.
func (l *Link) runServer() {
	for !l.closing() {
		c, err := l.ln.AcceptContext(l.ctx)
		if err != nil {
			if l.closing() {
				return
			}
			l.onError(opErr("link", l.name, err))
			l.pause(10 * time.Millisecond)
			continue
		}
		// Close ends the session it finds here; one accepted after Close
		// looked is ended now, once Close has let the name go (its
		// goodbye must not send the client back to this listener).
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			<-l.ctx.Done()
			c.Close()
			return
		}
		l.cur = c
		close(l.connected)
		l.mu.Unlock()
		l.setStatus(StatusConnected)
		l.readServer(c)
		st := c.Status()
		l.mu.Lock()
		l.cur = nil
		l.connected = make(chan struct{})
		l.mu.Unlock()
		c.Close()
		if l.closing() {
			return
		}
		l.setStatus(st)
		l.setStatus(StatusWaiting)
	}
}

// readServer delivers the session's messages until the client is gone and
// everything it sent is read.
func (l *Link) readServer(c *Conn) {
	for {
		m, err := c.ep.readMessage(l.reads)
		switch {
		case err == nil:
			l.onMessage(m)
		case errors.Is(err, ErrMessageTooLarge):
			l.onError(opErr("link", l.name, err))
		case l.reads.Err() != nil:
			// Close has begun. Ending the session now would say goodbye
			// while the name is still ours: wait until Close has let it go.
			<-l.ctx.Done()
			return
		default:
			if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrHandshake) {
				l.onError(opErr("link", l.name, err))
			}
			return
		}
	}
}

// Send sends msg as one message. A client-role link writes it into its ring
// whether or not a server is there (it is delivered when one is); it waits
// only while the ring is full. A server-role link with no client waits for
// one (so do not call it from OnStatus then), and fails with ErrPeerLost or
// ErrPeerClosed if its client leaves.
func (l *Link) Send(msg []byte) error { return l.SendContext(context.Background(), msg) }

// SendContext is Send that gives up when ctx is done. Every error it
// returns reads "shmlink: send "NAME": ..." and wraps the cause: ErrNoPeer,
// ErrPeerLost, ErrMessageTooLarge, net.ErrClosed, ctx.Err() and so on.
func (l *Link) SendContext(ctx context.Context, msg []byte) error {
	return opErr("send", l.name, l.send(ctx, msg))
}

func (l *Link) send(ctx context.Context, msg []byte) error {
	if l.closing() {
		return net.ErrClosed
	}
	if l.role == RoleClient {
		limit := uint64(l.cfg.MaxMessageSize)
		s := l.ep.sess.Load()
		if s != nil {
			limit = s.maxSend
		}
		if l.cfg.FailFast && (s == nil || s.status() != StatusConnected) {
			return ErrNoPeer
		}
		return l.ep.writeMessage(ctx, msg, limit)
	}
	for {
		l.mu.Lock()
		c, ready := l.cur, l.connected
		l.mu.Unlock()
		if c != nil {
			// If this client goes away, the error says so: the message was
			// meant for it, and a handler calling Send must not wait for a
			// next client that cannot come while it runs. The session may
			// have been torn down meanwhile; that is still the client's
			// departure, not a closed link.
			err := c.ep.writeMessage(ctx, msg, c.maxSend)
			if errors.Is(err, net.ErrClosed) && !l.closing() {
				if left := c.leftErr(); left != nil {
					return left
				}
			}
			return err
		}
		if l.cfg.FailFast {
			return ErrNoPeer
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return ctx.Err()
		case <-l.ctx.Done():
			return net.ErrClosed
		}
	}
}

// Close closes the link: the peer gets a clean goodbye after everything
// sent so far, the link's goroutines stop, and every resource of the link
// is released. OnStatus receives StatusClosed last.
//
// Close may be called from a handler. It never waits for a handler to
// return: called from one, or while one runs, it returns once the link's
// resources are released, the goroutine of that handler stops when the
// handler returns, and StatusClosed is delivered then.
func (l *Link) Close() error {
	err := opErr("close", l.name, net.ErrClosed)
	l.once.Do(func() {
		err = nil
		l.stopReads()
		l.mu.Lock()
		l.closed = true
		unhook := l.unhook
		l.mu.Unlock()
		if unhook != nil {
			unhook()
		}
		if l.role == RoleServer {
			// The name goes before the session ends: a client that sees
			// its goodbye and reconnects must not find this listener
			// still accepting.
			l.ln.Close()
		}
		l.cancel()
		if l.role == RoleServer {
			l.mu.Lock()
			c := l.cur
			l.mu.Unlock()
			if c != nil {
				c.Close()
			}
		}
		// A client's handshake may be completing right now; runClient
		// installs its session before it stops, and the session gets its
		// goodbye below.
		l.mu.Lock()
		for l.running > 0 {
			l.idle.Wait()
		}
		inHandler := l.inHandler
		l.finalLater = inHandler
		l.mu.Unlock()
		if l.role == RoleClient {
			l.ep.close(func() {
				l.mu.Lock()
				c := l.conn
				l.mu.Unlock()
				if c != nil {
					c.end(true)
				}
			})
		}
		if !inHandler {
			l.hmu.Lock()
			l.deliverClosed()
			l.hmu.Unlock()
		}
	})
	return err
}
