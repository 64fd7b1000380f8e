package shmlink

import (
	"context"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/shmlink/shmlink/internal/sys"
	"github.com/shmlink/shmlink/internal/wire"
)

// ServerInfo is what a listener says about itself when probed.
type ServerInfo struct {
	PID     int       // the server's process id
	Clients int       // links accepted and not yet closed
	Since   time.Time // when the server started listening
}

// LinkInfo describes one name in RuntimeDir, as ListLinks found it.
type LinkInfo struct {
	Name string // the link name (the socket file without ".sock")
	Path string // the socket file
	ServerInfo
	// Stale is true when the socket file is left over from a server that
	// is gone: nobody accepts connections on it. The next Listen on the
	// name removes it.
	Stale bool
	// Err is set when the server could not be asked (it did not answer in
	// time, or refused the probe); ServerInfo is then zero.
	Err error
}

// probeTimeout bounds each probe ListLinks makes, so that one hung server
// does not hang the listing.
const probeTimeout = 2 * time.Second

// Probe asks the server listening on name who it is, over a connection of
// its own: the server answers from its handshake and never hands the
// connection to Accept. A name nobody listens on gives ErrNoServer.
func Probe(ctx context.Context, name string) (ServerInfo, error) {
	path, err := socketPath(name)
	if err != nil {
		return ServerInfo{}, fmt.Errorf("shmlink: probe %q: %w", name, err)
	}
	info, err := probePath(ctx, path)
	if err != nil {
		return ServerInfo{}, fmt.Errorf("shmlink: probe %q: %w", name, err)
	}
	return info, nil
}

func probePath(ctx context.Context, path string) (ServerInfo, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unixpacket", path)
	if err != nil {
		if sys.IsNotExist(err) || sys.IsConnRefused(err) {
			return ServerInfo{}, ErrNoServer
		}
		return ServerInfo{}, err
	}
	sock := nc.(*net.UnixConn)
	defer sock.Close()
	if dl, ok := ctx.Deadline(); ok {
		sock.SetDeadline(dl)
	}
	// A context cancelled mid-exchange must unblock the read at once.
	stop := context.AfterFunc(ctx, func() { sock.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if err := sys.SendMsg(sock, wire.Encode(nil, wire.Msg{Type: wire.Probe})); err != nil {
		return ServerInfo{}, ctxErr(ctx, fmt.Errorf("send probe: %w", err))
	}
	var buf [256]byte
	n, files, err := sys.RecvMsg(sock, buf[:], 0)
	if err != nil {
		return ServerInfo{}, ctxErr(ctx, fmt.Errorf("%w: waiting for info: %v", ErrHandshake, err))
	}
	m, err := wire.Decode(buf[:n], len(files))
	switch {
	case err != nil:
		return ServerInfo{}, fmt.Errorf("%w: %v", ErrHandshake, err)
	case m.Type == wire.Reject:
		return ServerInfo{}, rejectError(m)
	case m.Type != wire.Info || m.Version != wire.Version:
		return ServerInfo{}, fmt.Errorf("%w: got %s version %d, want info", ErrHandshake, m.Type, m.Version)
	}
	return ServerInfo{PID: int(m.PID), Clients: int(m.Clients), Since: time.Unix(0, m.Since)}, nil
}

// ListLinks probes every socket in RuntimeDir and returns what it found,
// sorted by name. Names whose server is gone are listed with Stale set.
// Links named by an absolute path elsewhere are not seen.
func ListLinks() ([]LinkInfo, error) {
	dir, err := RuntimeDir()
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("shmlink: list links: %w", err)
	}
	var links []LinkInfo
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), socketSuffix)
		if !ok || e.Type()&os.ModeSocket == 0 || validName(name) != nil {
			continue
		}
		links = append(links, LinkInfo{Name: name, Path: dir + string(os.PathSeparator) + e.Name()})
	}
	// Probe in parallel: a listing costs one probe time, not one per link.
	var wg sync.WaitGroup
	for i := range links {
		wg.Add(1)
		go func(l *LinkInfo) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
			defer cancel()
			l.ServerInfo, l.Err = probePath(ctx, l.Path)
			if l.Err == ErrNoServer {
				l.Stale, l.Err = true, nil
			}
		}(&links[i])
	}
	wg.Wait()
	sort.Slice(links, func(i, j int) bool { return links[i].Name < links[j].Name })
	return links, nil
}
