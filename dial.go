package shmlink

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/shmlink/shmlink/internal/ring"
	"github.com/shmlink/shmlink/internal/sys"
	"github.com/shmlink/shmlink/internal/wake"
	"github.com/shmlink/shmlink/internal/wire"
)

// Dial opens a link to the server listening on name. The client allocates
// the link's memory: a sealed, anonymous memfd holding both rings, which it
// passes to the server over the name's unix socket together with its
// doorbells. ctx bounds the whole handshake. If nobody listens on name, Dial
// fails at once with ErrNoServer.
func Dial(ctx context.Context, name string, cfg *Config) (*Conn, error) {
	c, err := dial(ctx, name, cfg)
	if errors.Is(err, ErrNoServer) && cfg != nil && cfg.Wait {
		c, err = dialWait(ctx, name, cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("shmlink: dial %q: %w", name, err)
	}
	return c, nil
}

func dial(ctx context.Context, name string, cfg *Config) (_ *Conn, err error) {
	conf, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	path, err := socketPath(name)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unixpacket", path)
	if err != nil {
		if sys.IsNotExist(err) || sys.IsConnRefused(err) {
			return nil, ErrNoServer
		}
		return nil, err
	}
	sock := nc.(*net.UnixConn)
	var cleanup []func() error
	defer func() {
		if err != nil {
			for i := len(cleanup) - 1; i >= 0; i-- {
				cleanup[i]()
			}
		}
	}()
	cleanup = append(cleanup, sock.Close)
	if dl, ok := ctx.Deadline(); ok {
		sock.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { sock.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	cred, err := sys.PeerCred(sock)
	if err != nil {
		return nil, err
	}
	if !conf.admits(cred) {
		return nil, fmt.Errorf("%w: server runs as uid %d", ErrPermission, cred.UID)
	}

	layout := ring.Layout{RingSize: [2]uint64{uint64(conf.RingSize), uint64(conf.RingSize)}}
	seg, err := sys.CreateSegment("shmlink:"+name, int64(layout.Size()))
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, seg.Close)
	mem, err := sys.Map(seg, int(layout.Size()))
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() error { return sys.Unmap(mem) })
	if err := ring.Init(mem, layout); err != nil {
		return nil, err
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

	hello := wire.Encode(nil, wire.Msg{Type: wire.Hello, PID: uint32(os.Getpid()),
		MaxMessage: uint64(conf.MaxMessageSize)})
	if err := sys.SendMsg(sock, hello, seg, dataBell.File(), spaceBell.File()); err != nil {
		return nil, ctxErr(ctx, fmt.Errorf("send hello: %w", err))
	}
	var buf [256]byte
	n, files, err := sys.RecvMsg(sock, buf[:], wire.Welcome.Files())
	if err != nil {
		return nil, ctxErr(ctx, fmt.Errorf("%w: waiting for welcome: %v", ErrHandshake, err))
	}
	closeFiles := func() {
		for _, f := range files {
			f.Close()
		}
	}
	m, err := wire.Decode(buf[:n], len(files))
	switch {
	case err != nil:
		closeFiles()
		return nil, fmt.Errorf("%w: %v", ErrHandshake, err)
	case m.Type == wire.Reject:
		closeFiles()
		return nil, rejectError(m)
	case m.Type != wire.Welcome || m.Version != wire.Version:
		closeFiles()
		return nil, fmt.Errorf("%w: got %s version %d", ErrHandshake, m.Type, m.Version)
	}
	peerData, err := wake.NewBell(files[0])
	if err != nil {
		closeFiles()
		return nil, fmt.Errorf("%w: %v", ErrHandshake, err)
	}
	cleanup = append(cleanup, peerData.Close)
	peerSpace, err := wake.NewBell(files[1])
	if err != nil {
		files[1].Close()
		return nil, fmt.Errorf("%w: %v", ErrHandshake, err)
	}
	cleanup = append(cleanup, peerSpace.Close)
	if !stop() {
		return nil, ctx.Err()
	}
	sock.SetDeadline(time.Time{})
	c, err := newConn(connParts{
		cfg: conf, sock: sock, seg: seg, mem: mem, layout: layout,
		local:  &Addr{Name: name, Path: path, PID: os.Getpid()},
		remote: &Addr{Name: name, Path: path, PID: int(m.PID)},
		cred:   cred, maxSend: m.MaxMessage,
		dataBell: dataBell, spaceBell: spaceBell, peerData: peerData, peerSpace: peerSpace,
	})
	if err != nil {
		return nil, err
	}
	c.start()
	return c, nil
}

// dialWait retries dial each time the socket directory changes. The
// directory event may come between the server's bind and its listen, when a
// dial is still refused, so retries also run on a short timer that backs off
// to 100ms: a safety net, not the mechanism.
func dialWait(ctx context.Context, name string, cfg *Config) (*Conn, error) {
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
	backoff := time.Millisecond
	for {
		// Watch first, then dial: a server that appears in between is
		// either dialled or seen by the watch.
		c, err := dial(ctx, name, cfg)
		if ctx.Err() != nil && err != nil {
			return nil, fmt.Errorf("%w: gave up waiting: %w", ErrNoServer, ctx.Err())
		}
		if !errors.Is(err, ErrNoServer) {
			return c, err
		}
		deadline := time.Now().Add(backoff)
		if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
			deadline = dl
		}
		werr := w.Wait(deadline)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: gave up waiting: %w", ErrNoServer, ctx.Err())
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
