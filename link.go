package shmlink

import (
	"context"
	"errors"
	"fmt"
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

// Link is the seeds' long-lived link: one object per side, three handlers
// and a Send method. A background goroutine reads messages and calls the
// handlers, and the link reconnects by itself whenever the peer comes back.
type Link struct {
	name   string
	role   Role
	cfg    Config
	h      Handlers
	hmu    sync.Mutex // serialises handler calls
	ctx    context.Context
	cancel context.CancelFunc
	status atomic.Int32
	wg     sync.WaitGroup
	once   sync.Once
	unhook func() bool // stops watching Open's context; under mu

	// Client role: one endpoint for the link's whole life.
	ep         *endpoint
	clientDone chan struct{} // closed when runClient returns

	// Server role: the listener and the current session.
	ln        *Listener
	mu        sync.Mutex
	cur       *serverSession
	connected chan struct{} // closed when a session starts; replaced when it ends
}

// serverSession is a server-role link's current client.
type serverSession struct {
	c *Conn
}

// Open sets up a link on name and returns at once; it does not wait for the
// peer. The link lives until Close, or until ctx is done. A client-role
// link may Send before any server exists: messages wait in its ring.
func Open(ctx context.Context, name string, role Role, h Handlers, cfg *Config) (*Link, error) {
	l, err := open(ctx, name, role, h, cfg)
	if err != nil {
		return nil, fmt.Errorf("shmlink: open %s %q: %w", role, name, err)
	}
	return l, nil
}

func open(ctx context.Context, name string, role Role, h Handlers, cfg *Config) (*Link, error) {
	conf, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	if _, err := socketPath(name); err != nil {
		return nil, err
	}
	l := &Link{name: name, role: role, cfg: conf, h: h, connected: make(chan struct{})}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	switch role {
	case RoleClient:
		if l.ep, err = newClientEndpoint(conf, name); err != nil {
			return nil, err
		}
		l.ep.persistent = true
		l.clientDone = make(chan struct{})
		l.wg.Add(2)
		go l.runClient()
		go l.readClient()
	case RoleServer:
		if l.ln, err = Listen(name, cfg); err != nil {
			return nil, err
		}
		l.wg.Add(1)
		go l.runServer()
	default:
		return nil, fmt.Errorf("unknown role %d", role)
	}
	unhook := context.AfterFunc(ctx, func() { l.Close() })
	l.mu.Lock()
	l.unhook = unhook
	l.mu.Unlock()
	return l, nil
}

// Status returns the link's current status.
func (l *Link) Status() Status { return Status(l.status.Load()) }

func (l *Link) setStatus(s Status) {
	if Status(l.status.Swap(int32(s))) == s {
		return
	}
	l.call(func() {
		if l.h.OnStatus != nil {
			l.h.OnStatus(s)
		}
	})
}

func (l *Link) call(f func()) {
	l.hmu.Lock()
	defer l.hmu.Unlock()
	f()
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
func (l *Link) runClient() {
	defer l.wg.Done()
	defer close(l.clientDone)
	backoff := 10 * time.Millisecond
	for !l.closing() {
		c, err := connect(l.ctx, l.name, l.ep, true)
		if err != nil {
			if l.closing() {
				return
			}
			// A refusal (permissions, a foreign version) may be fixed
			// by a restarted server; retry, slowly.
			l.onError(fmt.Errorf("shmlink: link %q: %w", l.name, err))
			l.pause(backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 10 * time.Millisecond
		c.start()
		l.setStatus(StatusConnected)
		select {
		case <-c.Done():
		case <-l.ctx.Done():
		}
		if l.closing() {
			return // Close ends the session
		}
		st := c.Status()
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
	defer l.wg.Done()
	for {
		m, err := l.ep.readMessage(context.Background())
		switch {
		case err == nil:
			l.onMessage(m)
		case errors.Is(err, ErrMessageTooLarge):
			l.onError(err)
		case errors.Is(err, net.ErrClosed):
			return
		default:
			// The peer broke the protocol: the memory cannot be trusted
			// any more, so the link is over.
			l.ep.fail(err)
			l.setStatus(StatusFailed)
			l.onError(err)
			l.cancel()
			return
		}
	}
}

// runServer serves one client at a time.
func (l *Link) runServer() {
	defer l.wg.Done()
	for !l.closing() {
		c, err := l.ln.AcceptContext(l.ctx)
		if err != nil {
			if l.closing() {
				return
			}
			l.onError(err)
			l.pause(10 * time.Millisecond)
			continue
		}
		sess := &serverSession{c: c}
		l.mu.Lock()
		l.cur = sess
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
		m, err := c.ReadMessage()
		switch {
		case err == nil:
			l.onMessage(m)
		case errors.Is(err, ErrMessageTooLarge):
			l.onError(err)
		default:
			if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrHandshake) {
				l.onError(err)
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

// SendContext is Send that gives up when ctx is done.
func (l *Link) SendContext(ctx context.Context, msg []byte) error {
	if l.closing() {
		return fmt.Errorf("shmlink: send on link %q: %w", l.name, net.ErrClosed)
	}
	if l.role == RoleClient {
		limit := uint64(l.cfg.MaxMessageSize)
		s := l.ep.sess.Load()
		if s != nil {
			limit = s.maxSend
		}
		if l.cfg.FailFast && (s == nil || s.Status() != StatusConnected) {
			return fmt.Errorf("shmlink: send on link %q: %w", l.name, ErrNoPeer)
		}
		if err := l.ep.writeMessage(ctx, msg, limit); err != nil {
			return fmt.Errorf("shmlink: send on link %q: %w", l.name, err)
		}
		return nil
	}
	for {
		l.mu.Lock()
		sess, ready := l.cur, l.connected
		l.mu.Unlock()
		if sess != nil {
			// If this client goes away, the error says so: the message was
			// meant for it, and a handler calling Send must not wait for a
			// next client that cannot come while it runs.
			return sess.c.WriteMessageContext(ctx, msg)
		}
		if l.cfg.FailFast {
			return fmt.Errorf("shmlink: send on link %q: %w", l.name, ErrNoPeer)
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return ctx.Err()
		case <-l.ctx.Done():
			return fmt.Errorf("shmlink: send on link %q: %w", l.name, net.ErrClosed)
		}
	}
}

// Close closes the link: the peer gets a clean goodbye after everything
// sent so far, the background goroutines stop, and every resource of the
// link is released. OnStatus receives StatusClosed last.
func (l *Link) Close() error {
	err := fmt.Errorf("shmlink: close link %q: %w", l.name, net.ErrClosed)
	l.once.Do(func() {
		err = nil
		l.mu.Lock()
		unhook := l.unhook
		l.mu.Unlock()
		if unhook != nil {
			unhook()
		}
		l.cancel()
		switch l.role {
		case RoleClient:
			// A handshake may be completing right now; runClient
			// installs its session before it returns, and then the
			// session gets its goodbye below.
			<-l.clientDone
			l.ep.close(func() {
				if s := l.ep.sess.Load(); s != nil {
					s.end(true)
				}
			})
		case RoleServer:
			l.ln.Close()
			l.mu.Lock()
			sess := l.cur
			l.mu.Unlock()
			if sess != nil {
				sess.c.Close()
			}
		}
		l.wg.Wait()
		if l.Status() != StatusFailed {
			l.setStatus(StatusClosed)
		}
	})
	return err
}
