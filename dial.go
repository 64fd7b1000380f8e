package shmlink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/shmlink/shmlink/internal/sys"
	"github.com/shmlink/shmlink/internal/wake"
	"github.com/shmlink/shmlink/internal/wire"
)

// Dial opens a link to the server listening on name. The client allocates
// the link's memory: a sealed, anonymous memfd holding both rings, which it
// passes to the server over the name's unix socket together with its
// doorbells. ctx bounds the whole handshake. If nobody listens on name, Dial
// fails at once with ErrNoServer, unless cfg.Wait is set.
func Dial(ctx context.Context, name string, cfg *Config) (*Conn, error) {
	c, err := dial(ctx, name, cfg)
	if err != nil {
		return nil, fmt.Errorf("shmlink: dial %q: %w", name, err)
	}
	return c, nil
}

func dial(ctx context.Context, name string, cfg *Config) (*Conn, error) {
	conf, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	if _, err := socketPath(name); err != nil {
		return nil, err
	}
	ep, err := newClientEndpoint(conf, name)
	if err != nil {
		return nil, err
	}
	c, err := connect(ctx, name, ep, conf.Wait)
	if err != nil {
		ep.close(nil)
		return nil, err
	}
	c.start()
	return c, nil
}

// connect runs the client handshake for ep, waiting for a server to appear
// if wait is set.
func connect(ctx context.Context, name string, ep *endpoint, wait bool) (*Conn, error) {
	if !wait {
		return handshakeClient(ctx, name, ep, false)
	}
	path, err := socketPath(name)
	if err != nil {
		return nil, err
	}
	w, err := sys.WatchDir(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	defer w.Close()
	stop := context.AfterFunc(ctx, func() { w.Close() })
	defer stop()
	// Each change in the socket directory triggers a retry. The change may
	// come between the server's bind and its listen, when a dial is still
	// refused, so retries also run on a short timer that backs off to
	// 100ms: a safety net, not the mechanism.
	backoff := time.Millisecond
	for {
		// Watch first, then dial: a server that appears in between is
		// either dialled or seen by the watch.
		c, err := handshakeClient(ctx, name, ep, ep.persistent)
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

// handshakeClient connects to name's socket and hands ep's memory and
// doorbells to the server. The returned session is not started.
//
// If finish is set, ctx bounds only the connect: a handshake that has begun
// runs to its end (bounded by HandshakeTimeout), so that a Link closing
// meanwhile still gets a session it can say goodbye on; otherwise the
// server, which may already count the link as up, would see it lost.
func handshakeClient(ctx context.Context, name string, ep *endpoint, finish bool) (_ *Conn, err error) {
	path, err := socketPath(name)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unixpacket", path)
	switch {
	case err == nil:
	case sys.IsNotExist(err) || sys.IsConnRefused(err):
		return nil, ErrNoServer
	case sys.IsPermission(err):
		return nil, fmt.Errorf("%w: %v", ErrPermission, err)
	case ctxOver(ctx):
		return nil, fmt.Errorf("%w: %w", ctxOverErr(ctx), err)
	default:
		return nil, err
	}
	sock := nc.(*net.UnixConn)
	defer func() {
		if err != nil {
			sock.Close()
		}
	}()
	if finish {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), ep.cfg.HandshakeTimeout)
		defer cancel()
	}
	if dl, ok := ctx.Deadline(); ok {
		sock.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { sock.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	cred, err := sys.PeerCred(sock)
	if err != nil {
		return nil, err
	}
	if !ep.cfg.admits(cred) {
		return nil, fmt.Errorf("%w: server runs as uid %d", ErrPermission, cred.UID)
	}
	hello := wire.Encode(nil, wire.Msg{Type: wire.Hello, PID: uint32(os.Getpid()),
		MaxMessage: uint64(ep.cfg.MaxMessageSize)})
	if err := sys.SendMsg(sock, hello, ep.seg, ep.dataBell.File(), ep.spaceBell.File()); err != nil {
		return nil, ctxErr(ctx, fmt.Errorf("send hello: %w", err))
	}
	var buf [256]byte
	n, files, err := sys.RecvMsg(sock, buf[:], wire.Welcome.Files())
	if err != nil {
		if errors.Is(err, io.EOF) {
			// The server went away mid-handshake (it may be restarting).
			return nil, fmt.Errorf("%w: server closed during handshake", ErrNoServer)
		}
		return nil, ctxErr(ctx, fmt.Errorf("%w: waiting for welcome: %v", ErrHandshake, err))
	}
	bells, err := welcomeBells(buf[:n], files)
	if err != nil {
		return nil, err
	}
	if !stop() {
		bells.close()
		return nil, ctx.Err()
	}
	sock.SetDeadline(time.Time{})
	return newConn(ep, session{
		sock:   sock,
		local:  &Addr{Name: name, Path: path, PID: os.Getpid()},
		remote: &Addr{Name: name, Path: path, PID: int(bells.msg.PID)},
		cred:   cred, maxSend: bells.msg.MaxMessage,
		peerData: bells.data, peerSpace: bells.space,
	}), nil
}

type welcome struct {
	msg         wire.Msg
	data, space *wake.Bell
}

func (w welcome) close() { w.data.Close(); w.space.Close() }

// welcomeBells decodes the server's answer and takes its doorbells. On any
// error every received descriptor is closed.
func welcomeBells(b []byte, files []*os.File) (w welcome, err error) {
	defer func() {
		if err != nil {
			for _, f := range files {
				f.Close()
			}
		}
	}()
	m, err := wire.Decode(b, len(files))
	switch {
	case err != nil:
		return w, fmt.Errorf("%w: %v", ErrHandshake, err)
	case m.Type == wire.Reject:
		return w, rejectError(m)
	case m.Type != wire.Welcome || m.Version != wire.Version:
		return w, fmt.Errorf("%w: got %s version %d", ErrHandshake, m.Type, m.Version)
	}
	data, err := wake.NewBell(files[0])
	if err != nil {
		return w, fmt.Errorf("%w: %v", ErrHandshake, err)
	}
	space, err := wake.NewBell(files[1])
	if err != nil {
		return w, fmt.Errorf("%w: %v", ErrHandshake, err)
	}
	return welcome{msg: m, data: data, space: space}, nil
}

// ctxOver reports whether ctx is done or past its deadline: a socket
// deadline taken from ctx can fire a moment before ctx itself reports it.
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
	}
	return fmt.Errorf("%w: server rejected: %s", ErrHandshake, m.Reason)
}

// admits reports whether a peer with these credentials may use the link.
func (c *Config) admits(cred sys.Cred) bool {
	if cred.UID == os.Getuid() {
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
