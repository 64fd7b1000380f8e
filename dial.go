package shmlink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/shmlink/shmlink/internal/sys"
	"github.com/shmlink/shmlink/internal/wire"
)

// Dial opens a link to the server listening on name. The client allocates
// the link's memory (both rings) and passes it to the server with its
// doorbells. ctx bounds the whole handshake. If nobody listens on name,
// Dial fails at once with ErrNoServer, unless cfg.Wait is set.
func Dial(ctx context.Context, name string, cfg *Config) (*Conn, error) {
	c, err := dial(ctx, name, cfg)
	if err != nil {
		return nil, netErr("dial", name, err)
	}
	return c, nil
}

func dial(ctx context.Context, name string, cfg *Config) (*Conn, error) {
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
	var c *Conn
	if conf.Wait {
		// Waiting may take many connects; one endpoint serves them all.
		ep, err := newClientEndpoint(conf, name)
		if err != nil {
			return nil, err
		}
		if c, err = connect(ctx, name, path, ep, true); err != nil {
			ep.close(nil)
			return nil, err
		}
	} else if c, err = handshakeClient(ctx, name, path, conf, nil, false); err != nil {
		return nil, err
	}
	c.start()
	conf.log(slog.LevelInfo, "shmlink: connected", "name", name, "role", "client", "peer_pid", c.remote.PID)
	return c, nil
}

// connect runs the client handshake for ep, waiting for a server to appear
// if wait is set.
func connect(ctx context.Context, name, path string, ep *endpoint, wait bool) (*Conn, error) {
	if !wait {
		return handshakeClient(ctx, name, path, ep.cfg, ep, false)
	}
	w, err := sys.WatchDir(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	defer w.Close()
	stop := context.AfterFunc(ctx, func() { w.Close() })
	defer stop()
	// Each change in the name directory triggers a retry. The change may
	// come between the server's bind and its listen, when a dial is still
	// refused, so retries also run on a short timer that backs off to
	// 100ms: a safety net, not the mechanism.
	backoff := time.Millisecond
	for {
		// Watch first, then dial: a server that appears in between is
		// either dialled or seen by the watch.
		c, err := handshakeClient(ctx, name, path, ep.cfg, ep, ep.persistent)
		if err != nil && ctxOver(ctx) {
			return nil, fmt.Errorf("%w: gave up waiting: %w", ErrNoServer, ctxOverErr(ctx))
		}
		if !errors.Is(err, ErrNoServer) {
			return c, err
		}
		deadline := time.Now().Add(backoff)
		if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
			deadline = dl
		}
		werr := w.Wait(deadline)
		if ctxOver(ctx) {
			return nil, fmt.Errorf("%w: gave up waiting: %w", ErrNoServer, ctxOverErr(ctx))
		}
		switch {
		case werr == nil:
			backoff = time.Millisecond
		case errors.Is(werr, os.ErrDeadlineExceeded):
			backoff = min(2*backoff, 100*time.Millisecond)
		default:
			return nil, werr
		}
	}
}

// dialControl opens a control connection to the listener at path,
// translating the OS layer's refusals into this package's errors.
func dialControl(ctx context.Context, path string) (*sys.Conn, error) {
	ctl, err := sys.Dial(ctx, path)
	switch {
	case err == nil:
		return ctl, nil
	case errors.Is(err, sys.ErrNoListener):
		return nil, ErrNoServer
	case errors.Is(err, sys.ErrAccess):
		return nil, fmt.Errorf("%w: %w (to admit other users, a server sets AllowUIDs or AllowGIDs in its Config and listens on a path they can reach)", ErrPermission, err)
	case ctxOver(ctx):
		return nil, fmt.Errorf("%w: %w", ctxOverErr(ctx), err)
	}
	return nil, err
}

// cutOff makes ctx's end interrupt whatever ctl is doing, and applies ctx's
// deadline. The returned stop reports false if ctx already fired.
func cutOff(ctx context.Context, ctl *sys.Conn) (stop func() bool) {
	if dl, ok := ctx.Deadline(); ok {
		ctl.SetDeadline(dl)
	}
	return context.AfterFunc(ctx, func() { ctl.SetDeadline(time.Unix(1, 0)) })
}

// handshakeClient connects to the listener at path and hands ep's memory
// and doorbells to the server. The returned session is not started. A nil
// ep means a new endpoint made with conf, which the session then owns; it
// is made once the connection stands, so that its system calls (memfd,
// mapping, eventfds: tens of microseconds) overlap the server's wake-up to
// accept rather than come before it.
//
// If finish is set, ctx bounds only the connect: a handshake that has begun
// runs to its end (bounded by HandshakeTimeout), so that a Link closing
// meanwhile still gets a session it can say goodbye on; otherwise the
// server, which may already count the link as up, would see it lost.
func handshakeClient(ctx context.Context, name, path string, conf Config, ep *endpoint, finish bool) (_ *Conn, err error) {
	ctl, err := dialControl(ctx, path)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			ctl.Close()
		}
	}()
	if finish {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), conf.HandshakeTimeout)
		defer cancel()
	}
	stop := cutOff(ctx, ctl)
	defer stop()

	cred, err := ctl.PeerCred()
	if err != nil {
		return nil, err
	}
	if !conf.admits(cred) {
		return nil, fmt.Errorf("%w: server runs as uid %d gid %d; to admit it, set AllowUIDs or AllowGIDs in this client's Config", ErrPermission, cred.UID, cred.GID)
	}
	if ep == nil {
		if ep, err = newClientEndpoint(conf, name); err != nil {
			return nil, err
		}
		defer func() {
			if err != nil {
				ep.close(nil)
			}
		}()
	}
	hello := wire.Encode(nil, wire.Msg{Type: wire.Hello, PID: uint32(os.Getpid()),
		MaxMessage: uint64(conf.MaxMessageSize), Flags: helloFlags})
	if err := ctl.Send(hello, ep.seg.Handle(), ep.dataBell.Handle(), ep.spaceBell.Handle()); err != nil {
		return nil, ctxErr(ctx, fmt.Errorf("send hello: %w", err))
	}
	if hook := testHookHelloSent.Load(); hook != nil {
		(*hook)()
	}
	var buf [256]byte
	n, hs, err := ctl.Recv(buf[:], wire.Welcome.Handles())
	if err != nil {
		if errors.Is(err, io.EOF) {
			// The server went away mid-handshake (it may be restarting).
			return nil, fmt.Errorf("%w: server closed during handshake", ErrNoServer)
		}
		return nil, ctxErr(ctx, fmt.Errorf("%w: waiting for welcome: %w", ErrHandshake, err))
	}
	w, err := readWelcome(buf[:n], hs)
	if err != nil {
		return nil, err
	}
	if w.flags&helloFlags&wire.FlagTaken != 0 {
		// The server may be closing already and waits for this before it
		// lets its doorbells go. If it cannot be sent, the server is gone,
		// which the session reports once it starts.
		_ = ctl.Send(wire.Encode(nil, wire.Msg{Type: wire.Taken}))
	}
	if !stop() {
		w.peerData.Close()
		w.peerSpace.Close()
		return nil, ctx.Err()
	}
	ctl.SetDeadline(time.Time{})
	w.local = &Addr{Name: name, Path: path, PID: os.Getpid()}
	w.remote.Name, w.remote.Path = name, path
	w.cred = cred
	return newConn(ep, ctl, w), nil
}

// helloFlags are what this client understands: half-close always, and
// Taken where the server's doorbells are pulled out of its process.
var helloFlags = wire.FlagHalfClose | takenFlag()

func takenFlag() uint32 {
	if sys.HandlesPulled {
		return wire.FlagTaken
	}
	return 0
}

// testHookHelloSent, if set, runs between a client's Hello and its read of
// the Welcome: tests use it to let the server act first.
var testHookHelloSent atomic.Pointer[func()]

// readWelcome decodes the server's answer and takes its doorbells. On any
// error every received handle is closed.
func readWelcome(b []byte, hs []sys.Handle) (p peer, err error) {
	m, err := wire.Decode(b, len(hs))
	switch {
	case err != nil:
		err = fmt.Errorf("%w: %w", ErrHandshake, err)
	case m.Type == wire.Reject:
		err = rejectError(m)
	case m.Type != wire.Welcome || m.Version != wire.Version:
		err = fmt.Errorf("%w: got %s version %d", ErrHandshake, m.Type, m.Version)
	}
	if err != nil {
		sys.CloseHandles(hs)
		return p, err
	}
	data, err := sys.OpenBell(hs[0])
	if err != nil {
		hs[1].Close()
		return p, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	space, err := sys.OpenBell(hs[1])
	if err != nil {
		data.Close()
		return p, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	return peer{remote: &Addr{PID: int(m.PID)}, maxSend: m.MaxMessage, flags: m.Flags,
		peerData: data, peerSpace: space}, nil
}

// ctxOver reports whether ctx is done or past its deadline: a deadline
// taken from ctx can fire a moment before ctx itself reports it.
func ctxOver(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

func ctxOverErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return context.DeadlineExceeded
}

// ctxErr prefers the context's error when the context ended the operation.
func ctxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	return err
}

func rejectError(m wire.Msg) error {
	switch m.Code {
	case wire.RejectPermission:
		return fmt.Errorf("%w: server says: %s", ErrPermission, m.Reason)
	case wire.RejectClosing:
		return fmt.Errorf("%w: server is closing", ErrNoServer)
	case wire.RejectBusy:
		return fmt.Errorf("%w: server says: %s", ErrBusy, m.Reason)
	}
	return fmt.Errorf("%w: server rejected: %s", ErrHandshake, m.Reason)
}

// admits reports whether a peer with these credentials may use the link.
func (c *Config) admits(cred sys.Cred) bool {
	if cred.SameUser {
		return true
	}
	for _, u := range c.AllowUIDs {
		if u == cred.UID {
			return true
		}
	}
	for _, g := range c.AllowGIDs {
		if g == cred.GID {
			return true
		}
		for _, pg := range cred.Groups {
			if g == pg {
				return true
			}
		}
	}
	return false
}
