package shmlink

import (
	"context"
	"errors"
	"fmt"
	"sort"
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
	Name string // the link name
	Path string // its endpoint (on Linux, the socket file)
	ServerInfo
	// Stale is true when the name is left over from a server that is gone: nobody accepts connections on it. The next Listen on the
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
	path, err := endpointPath(name)
	if err != nil {
		return ServerInfo{}, opErr("probe", name, err)
	}
	info, err := probePath(ctx, path)
	if err != nil {
		return ServerInfo{}, opErr("probe", name, err)
	}
	return info, nil
}

func probePath(ctx context.Context, path string) (ServerInfo, error) {
	ctl, err := dialControl(ctx, path)
	if err != nil {
		return ServerInfo{}, err
	}
	defer ctl.Close()
	// A context cancelled mid-exchange must unblock the read at once.
	defer cutOff(ctx, ctl)()

	if err := ctl.Send(wire.Encode(nil, wire.Msg{Type: wire.Probe})); err != nil {
		return ServerInfo{}, ctxErr(ctx, fmt.Errorf("send probe: %w", err))
	}
	var buf [256]byte
	n, hs, err := ctl.Recv(buf[:], 0)
	if err != nil {
		return ServerInfo{}, ctxErr(ctx, fmt.Errorf("%w: waiting for info: %w", ErrHandshake, err))
	}
	m, err := wire.Decode(buf[:n], len(hs))
	switch {
	case err != nil:
		return ServerInfo{}, fmt.Errorf("%w: %w", ErrHandshake, err)
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
	dir, err := runtimeDir()
	if err != nil {
		return nil, fmt.Errorf("shmlink: list links: %w", err)
	}
	names, err := sys.ListNames(dir)
	if err != nil {
		return nil, fmt.Errorf("shmlink: list links: %w", err)
	}
	var links []LinkInfo
	for _, e := range names {
		if validName(e.Name) == nil {
			links = append(links, LinkInfo{Name: e.Name, Path: e.Path})
		}
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
			if errors.Is(l.Err, ErrNoServer) {
				l.Stale, l.Err = true, nil
			}
		}(&links[i])
	}
	wg.Wait()
	sort.Slice(links, func(i, j int) bool { return links[i].Name < links[j].Name })
	return links, nil
}
