package shmlink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/shmlink/shmlink/internal/ring"
)

// Config tunes a link. The zero value of every field means its default; a
// nil *Config means all defaults. DefaultConfig documents them.
type Config struct {
	// RingSize is the size in bytes of each of the link's two rings. The
	// client's value decides (the client allocates the memory). It must be a
	// power of two from 4 KiB to 1 GiB. Default 2 MiB (docs/copy.md says why).
	RingSize int

	// MaxMessageSize bounds the messages this side accepts and therefore
	// what ReadMessage allocates; the peer learns it in the handshake and
	// refuses to send larger ones. Default 1 GiB.
	MaxMessageSize int64

	// SpinTime caps how long a reader or writer polls the ring before it
	// goes to sleep in the kernel. Spinning turns a tens-of-microseconds
	// wake-up into a sub-microsecond hand-off when the peer answers
	// quickly, at the price of CPU while it waits.
	//
	// Within the cap each direction of a link learns how long spinning
	// pays: it spins up to the cap while recent waits were short, less or
	// not at all when spins kept timing out (an idle peer), and more again
	// once waits turn short. A wait right after this side had to wake the
	// peer does not spin (the answer comes after the peer's wake-up), and
	// no wait spins while the machine has more runnable threads than CPUs
	// or this process has goroutines waiting for a processor: the spin
	// would take the CPU they need.
	//
	// A wait that would go to sleep goes first to the process's poller
	// (unless NoPoller):
	// one goroutine that polls, for every such wait of the process, the
	// rings they wait for, and hands each its message as it comes, without
	// the peer having to ring (many links busy at once thus cost no system
	// call per message). The poller keeps polling while messages keep
	// coming within 100µs of each other, or the largest SpinTime among its
	// waits if that is less (it learns how long pays, as each link does),
	// then sends its waits to sleep. Negative disables spinning and the poller
	// altogether. Default 100µs (see docs/wakeup.md).
	SpinTime time.Duration

	// NoPoller keeps this side's waits on the link out of its process's
	// poller (see SpinTime) and leaves its spinning as it is: a wait that
	// would go to the poller sleeps at once. It is not negotiated: the
	// peer's waits follow the peer's Config. The poller's thread does not sleep while
	// it holds waits, so on a CPU that is saturated it is preempted for
	// whole time slices, and the waits it holds with it. Measured here
	// (docs/wakeup.md), net/http with 32 requests in flight on two vCPUs
	// had, with the poller, a 5× lower median latency and a 2× higher 99th
	// percentile than without, at the same rate: set NoPoller where the
	// tail counts more than the median.
	NoPoller bool

	// Wait makes Dial wait for a server that is not listening yet, until
	// its context ends, and connect as soon as one appears (the socket
	// directory is watched with inotify). Without it, Dial to a missing
	// server fails at once with ErrNoServer.
	Wait bool

	// FailFast makes a Link's Send fail at once with ErrNoPeer while no
	// peer is connected, instead of queueing the message in the ring (a
	// client-role link) or waiting for a client (a server-role link).
	FailFast bool

	// MaxClients, if positive, bounds how many links a listener serves at
	// once: a client beyond it is refused with ErrBusy. Default 0, no
	// bound.
	MaxClients int

	// Logger, if set, receives the link's lifecycle as structured events:
	// listening, connected (with the peer's pid), peer closed, peer lost,
	// handshake rejected (with the reason), corruption detected. Nil is
	// silent.
	Logger *slog.Logger

	// HandshakeTimeout bounds how long a listener waits for a connecting
	// client to complete the handshake. Default 5s.
	HandshakeTimeout time.Duration

	// AllowUIDs and AllowGIDs admit peers running as other users, or in
	// other groups (primary or supplementary), in addition to the default:
	// the same user as this process. They apply to a listener's clients
	// and to the server a client dials. A listener that admits others makes
	// its socket file world-connectable, so it needs a name that is an
	// absolute path in a directory those users can reach.
	//
	// On Windows links are same-user only: the server takes the client's
	// handles by duplicating them out of its process, which another user's
	// process does not allow. There a Config that sets either field fails
	// Validate (and so Listen, Dial and Open) with an error that names the
	// field and matches both ErrInvalidConfig and errors.ErrUnsupported,
	// rather than being ignored.
	AllowUIDs []int
	AllowGIDs []int
}

// log records a lifecycle event, if the Config has a Logger.
func (c *Config) log(level slog.Level, msg string, args ...any) {
	if c.Logger != nil {
		c.Logger.Log(context.Background(), level, msg, args...)
	}
}

// Defaults, as DefaultConfig returns them.
const (
	DefaultRingSize         = 2 << 20
	DefaultMaxMessageSize   = 1 << 30
	DefaultSpinTime         = 100 * time.Microsecond
	DefaultHandshakeTimeout = 5 * time.Second
)

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() *Config {
	return &Config{
		RingSize:         DefaultRingSize,
		MaxMessageSize:   DefaultMaxMessageSize,
		SpinTime:         DefaultSpinTime,
		HandshakeTimeout: DefaultHandshakeTimeout,
	}
}

// Validate reports the first invalid field, wrapped in ErrInvalidConfig.
func (c *Config) Validate() error {
	if c == nil {
		return nil
	}
	if c.RingSize != 0 {
		if err := ring.CheckRingSize(uint64(c.RingSize)); err != nil || c.RingSize < 0 {
			return fmt.Errorf("%w: RingSize %d: must be a power of two from %d to %d",
				ErrInvalidConfig, c.RingSize, ring.MinRingSize, ring.MaxRingSize)
		}
	}
	if c.MaxMessageSize < 0 {
		return fmt.Errorf("%w: MaxMessageSize %d is negative", ErrInvalidConfig, c.MaxMessageSize)
	}
	if c.MaxClients < 0 {
		return fmt.Errorf("%w: MaxClients %d is negative", ErrInvalidConfig, c.MaxClients)
	}
	if c.HandshakeTimeout < 0 {
		return fmt.Errorf("%w: HandshakeTimeout %v is negative", ErrInvalidConfig, c.HandshakeTimeout)
	}
	if runtime.GOOS == "windows" {
		for _, f := range []struct {
			name string
			ids  []int
		}{{"AllowUIDs", c.AllowUIDs}, {"AllowGIDs", c.AllowGIDs}} {
			if len(f.ids) > 0 {
				return fmt.Errorf("%w: %s %v: links are same-user only on windows: %w",
					ErrInvalidConfig, f.name, f.ids, errors.ErrUnsupported)
			}
		}
	}
	return nil
}

// resolve returns a copy of c with defaults filled in, after validation.
func (c *Config) resolve() (Config, error) {
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	r := *DefaultConfig()
	if c == nil {
		return r, nil
	}
	if c.RingSize != 0 {
		r.RingSize = c.RingSize
	}
	if c.MaxMessageSize != 0 {
		r.MaxMessageSize = c.MaxMessageSize
	}
	if c.SpinTime != 0 {
		r.SpinTime = c.SpinTime
	}
	if c.HandshakeTimeout != 0 {
		r.HandshakeTimeout = c.HandshakeTimeout
	}
	r.Wait = c.Wait
	r.NoPoller = c.NoPoller
	r.FailFast = c.FailFast
	r.MaxClients = c.MaxClients
	r.Logger = c.Logger
	r.AllowUIDs = append([]int(nil), c.AllowUIDs...)
	r.AllowGIDs = append([]int(nil), c.AllowGIDs...)
	return r, nil
}
