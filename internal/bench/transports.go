package bench

import (
	"context"
	"time"

	"github.com/shmlink/shmlink"
	"github.com/shmlink/shmlink/internal/bench/workload"
)

// Subject names the transport measured against the others: shmlink's.
const Subject = "shmlink"

// RoundTripBaseline names the transport that the ratios of round trips
// are relative to. Buffering cannot help a round trip, so the plain unix
// socket is the usual alternative. One-way ratios are relative to the
// fastest transport other than the Subject (see Result.Baseline).
const RoundTripBaseline = "unix"

// Shmlink is a shmlink link whose rings have ring bytes (0: the default).
func Shmlink(ring int) *workload.Transport {
	cfg := &shmlink.Config{RingSize: ring}
	t := workload.PathTransport(Subject,
		func(path string) (*shmlink.Listener, error) { return shmlink.Listen(path, cfg) },
		(*shmlink.Listener).AcceptConn,
		func(path string) (*shmlink.Conn, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return shmlink.Dial(ctx, path, cfg)
		})
	// The workloads write with WriteMessage, one message at a time: the best
	// shmlink has for a stream until it has a batch API. They read with
	// ReadMessageInto.
	t.Writes = "WriteMessage"
	return t
}

// Transports returns every transport of a run, shmlink's with the given
// ring size: each stream transport writing every message at once, then
// buffered.
func Transports(ring int) []*workload.Transport {
	return []*workload.Transport{Shmlink(ring),
		workload.Unix, workload.UnixBuffered,
		workload.Pipe, workload.PipeBuffered,
		workload.TCP, workload.TCPBuffered}
}
