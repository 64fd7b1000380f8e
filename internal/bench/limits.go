package bench

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/shmlink/shmlink/internal/bench/limit"
)

// The limit rows: what two processes sharing memory get with nothing of
// shmlink in between (package limit).
const (
	// LimitPingPong is a cache line bounced between the processes, both
	// spinning: the round trip limit, and where the host placed the vCPUs.
	LimitPingPong = "ping-pong"
	// LimitRing is a bare busy-spin ring of limit.RingSize: each message
	// one copy in and one copy out behind a length. The one-way limit.
	// For round trips, each message goes through one limit.RTRing ring and
	// comes back through another, each reader polling the writer's index:
	// the least a round trip can cost in the shape of shmlink's protocol.
	LimitRing = "bare ring"
	// LimitRingChunked is the bare ring with messages over LimitChunk
	// sent in records of LimitChunk, the reader copying one out while the
	// writer fills the next. The one-way limit is the faster of the two.
	LimitRingChunked = "bare ring/256K"
	// LimitMemcpy is one process copying each message once, for scale.
	LimitMemcpy = "memcpy"
)

// LimitChunk is the chunk size of LimitRingChunked: a quarter of a 1 MiB
// ring, as shmlink streamed a large message through its default ring when
// the row was made (the default ring is 2 MiB now, whose chunks are
// 512 KiB; the row is kept as it was, so that runs stay comparable).
const LimitChunk = 256 << 10

// How the limit rows move messages, in Result.Writes.
const (
	writesPingPong = "spin, 1 line"
	writesRing     = "spin, 4 MiB ring"
	writesRingRT   = "spin, 2 MiB rings"
	writesChunked  = "spin, 256 KiB chunks"
	writesMemcpy   = "1 process"
)

// NearNs is the bare ping-pong time below which the two vCPUs count as
// near each other (about 0.1 µs here, against about 0.4 µs distant).
const NearNs = 250

// ContendedNs is the bare ping-pong time above which the two processes
// did not run at once: a third thread held one of the CPUs, and a round
// trip waited for time slices instead of a cache line.
const ContendedNs = 2000

// limits are the limit rows' runners. peer is nil where the system could
// not run the two-process limits; why says why.
type limits struct {
	peer *limit.Peer
	why  string
	cp   limit.Copier
}

func startLimits(command func() *exec.Cmd, pin int) (*limits, error) {
	p, err := limit.Start(command(), pin)
	if errors.Is(err, limit.ErrNotMeasured) {
		return &limits{why: strings.TrimPrefix(err.Error(), limit.ErrNotMeasured.Error()+": ")}, nil
	}
	if err != nil {
		return nil, err
	}
	return &limits{peer: p}, nil
}

// cells returns the limit cells of a workload.
func (l *limits) cells(w Workload) []*cell {
	if w.RoundTrip {
		return []*cell{l.cell(w, row{name: LimitPingPong, writes: writesPingPong, limit: true}, pingPong{l.peer}),
			l.cell(w, row{name: LimitRing, writes: writesRingRT, limit: true}, bareRing{l.peer, 0})}
	}
	cs := []*cell{l.cell(w, row{name: LimitRing, writes: writesRing, limit: true}, bareRing{l.peer, 0})}
	if w.Size > LimitChunk {
		cs = append(cs, l.cell(w, row{name: LimitRingChunked, writes: writesChunked, limit: true}, bareRing{l.peer, LimitChunk}))
	}
	return append(cs, &cell{w: w, row: row{name: LimitMemcpy, writes: writesMemcpy, limit: true}, peer: memcpy{&l.cp}})
}

func (l *limits) cell(w Workload, r row, run runner) *cell {
	if l.peer == nil {
		r.notMeasured = l.why
	}
	return &cell{w: w, row: r, peer: run}
}

func (l *limits) Close() error {
	if l.peer == nil {
		return nil
	}
	return l.peer.Close()
}

var errNotRoundTrip = errors.New("measures one way only")

type pingPong struct{ p *limit.Peer }

func (r pingPong) RoundTrips(_, n int, lat []time.Duration) (time.Duration, error) {
	return r.p.PingPong(n, lat)
}

func (pingPong) OneWay(int, int) (time.Duration, error) {
	return 0, errors.New("ping-pong measures round trips only")
}

type bareRing struct {
	p     *limit.Peer
	chunk int
}

func (r bareRing) RoundTrips(size, n int, lat []time.Duration) (time.Duration, error) {
	return r.p.RingRoundTrip(size, n, limit.Indexed, lat)
}

func (r bareRing) OneWay(size, n int) (time.Duration, error) { return r.p.Ring(size, n, r.chunk) }

type memcpy struct{ c *limit.Copier }

func (memcpy) RoundTrips(int, int, []time.Duration) (time.Duration, error) {
	return 0, errNotRoundTrip
}

func (r memcpy) OneWay(size, n int) (time.Duration, error) { return r.c.Copy(size, n), nil }

// Placement is where the host put the two vCPUs during a run, told by the
// bare ping-pong's round trip.
type Placement struct {
	// PingPongNs is the ping-pong's round trip over the run (its near-best
	// figure, see Result.MedianNs); MinNs and MaxNs the extremes of the
	// rounds'.
	PingPongNs float64 `json:"ping_pong_ns,omitempty"`
	MinNs      float64 `json:"min_ns,omitempty"`
	MaxNs      float64 `json:"max_ns,omitempty"`
	// Where is "near" or "distant" (see NearNs), "contended" (see
	// ContendedNs), or "moved" if the rounds disagree.
	Where string `json:"where,omitempty"`
	// NotMeasured says why there is no figure.
	NotMeasured string `json:"not_measured,omitempty"`
}

// PlacementOf reads the placement from a run's ping-pong row, if any.
func PlacementOf(rs []Result) Placement {
	i := slices.IndexFunc(rs, func(r Result) bool { return r.Transport == LimitPingPong })
	if i < 0 {
		return Placement{NotMeasured: "no ping-pong in this run"}
	}
	r := rs[i]
	if r.NotMeasured != "" {
		return Placement{NotMeasured: r.NotMeasured}
	}
	p := Placement{PingPongNs: r.MedianNs, MinNs: slices.Min(r.RoundNs), MaxNs: slices.Max(r.RoundNs)}
	class := func(ns float64) string {
		switch {
		case ns < NearNs:
			return "near"
		case ns < ContendedNs:
			return "distant"
		}
		return "contended"
	}
	if p.Where = class(p.MinNs); class(p.MaxNs) != p.Where {
		p.Where = "moved"
	}
	return p
}

// String describes the placement for a table's header.
func (p Placement) String() string {
	if p.NotMeasured != "" {
		return "placement not measured (" + p.NotMeasured + ")"
	}
	s := fmt.Sprintf("bare ping-pong %.2f µs: vCPUs %s", p.PingPongNs/1e3, p.Where)
	if p.Where == "contended" {
		s = fmt.Sprintf("bare ping-pong %.2f µs: contended, the two processes rarely ran at once", p.PingPongNs/1e3)
	}
	if p.Where == "moved" {
		s += fmt.Sprintf(" (rounds from %.2f to %.2f µs)", p.MinNs/1e3, p.MaxNs/1e3)
	}
	return s
}

// ProbePlacement measures the placement by itself, in rounds short
// ping-pong runs, for the header of a sweep.
func ProbePlacement(ctx context.Context, command func() *exec.Cmd, pin []int, rounds int, d time.Duration) (Placement, error) {
	rs, err := Run(ctx, Options{Workloads: Workloads[:1], Limits: true, Rounds: rounds, Duration: d, Command: command, Pin: pin})
	if err != nil {
		return Placement{}, err
	}
	return PlacementOf(rs), nil
}
