package shmlink

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/shmlink/shmlink/internal/ring"
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
	m, err := ask(ctx, path, wire.Probe, wire.Info, 256)
	if err != nil {
		return ServerInfo{}, err
	}
	return ServerInfo{PID: int(m.PID), Clients: int(m.Clients), Since: time.Unix(0, m.Since)}, nil
}

// ask sends a listener one request on a connection of its own and returns
// its answer, of type want.
func ask(ctx context.Context, path string, req, want wire.Type, size int) (wire.Msg, error) {
	ctl, err := dialControl(ctx, path)
	if err != nil {
		return wire.Msg{}, err
	}
	defer ctl.Close()
	// A context cancelled mid-exchange must unblock the read at once.
	defer cutOff(ctx, ctl)()

	if err := ctl.Send(wire.Encode(nil, wire.Msg{Type: req})); err != nil {
		return wire.Msg{}, ctxErr(ctx, fmt.Errorf("send %s: %w", req, err))
	}
	buf := make([]byte, size)
	n, hs, err := ctl.Recv(buf, 0)
	if err != nil {
		return wire.Msg{}, ctxErr(ctx, fmt.Errorf("%w: waiting for %s: %w", ErrHandshake, want, err))
	}
	m, err := wire.Decode(buf[:n], len(hs))
	switch {
	case err != nil:
		return m, fmt.Errorf("%w: %w", ErrHandshake, err)
	case m.Type == wire.Reject:
		return m, rejectError(m)
	case m.Type != want || m.Version != wire.Version:
		return m, fmt.Errorf("%w: got %s version %d, want %s", ErrHandshake, m.Type, m.Version, want)
	}
	return m, nil
}

// LinkStats is one link a server serves, as Stat reports it: the client,
// when it connected, and the server side's counters (Sent is what the
// server sent its client).
type LinkStats struct {
	PeerPID int
	Since   time.Time
	Stats
}

// Stat asks the server listening on name, as Probe does, for itself and
// for each link it serves (at most 256) with its live counters. The
// answer comes from another process: Stat checks that it is plausible (a
// valid ring size, fills and high-water marks within the ring) and refuses
// it with ErrHandshake otherwise.
func Stat(ctx context.Context, name string) (ServerInfo, []LinkStats, error) {
	path, err := endpointPath(name)
	if err != nil {
		return ServerInfo{}, nil, opErr("stat", name, err)
	}
	m, err := ask(ctx, path, wire.Stat, wire.Links, wire.MaxLinksLen)
	if err != nil {
		return ServerInfo{}, nil, opErr("stat", name, err)
	}
	links := make([]LinkStats, 0, len(m.Links))
	for _, r := range m.Links {
		ls, err := linkStats(r)
		if err != nil {
			return ServerInfo{}, nil, opErr("stat", name, fmt.Errorf("%w: %w", ErrHandshake, err))
		}
		links = append(links, ls)
	}
	return ServerInfo{PID: int(m.PID), Clients: int(m.Clients), Since: time.Unix(0, m.Since)}, links, nil
}

// linkStats checks one record from a server for sense.
func linkStats(r wire.LinkRecord) (LinkStats, error) {
	if err := ring.CheckRingSize(r.RingSize); err != nil {
		return LinkStats{}, fmt.Errorf("implausible link stats: %w", err)
	}
	dir := func(d wire.DirRecord) (DirectionStats, error) {
		if d.Fill > r.RingSize || d.HighWater > r.RingSize {
			return DirectionStats{}, fmt.Errorf("implausible link stats: fill %d, high water %d in a ring of %d",
				d.Fill, d.HighWater, r.RingSize)
		}
		return DirectionStats{Messages: d.Messages, Bytes: d.Bytes, Waits: d.Waits, Sleeps: d.Sleeps,
			Wakeups: d.Wakeups, HighWater: d.HighWater, Fill: d.Fill}, nil
	}
	sent, err := dir(r.Sent)
	if err != nil {
		return LinkStats{}, err
	}
	received, err := dir(r.Received)
	if err != nil {
		return LinkStats{}, err
	}
	return LinkStats{PeerPID: int(r.PID), Since: time.Unix(0, r.Since),
		Stats: Stats{Sent: sent, Received: received, RingSize: int(r.RingSize)}}, nil
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
