package bench

import (
	"context"
	"time"

	"github.com/shmlink/shmlink"
	"github.com/shmlink/shmlink/internal/bench/workload"
)

// Baseline names the transport that ratios are relative to.
const Baseline = "unix"

// Shmlink is a shmlink link whose rings have ring bytes (0: the default).
func Shmlink(ring int) *workload.Transport {
	cfg := &shmlink.Config{RingSize: ring}
	return workload.PathTransport("shmlink",
		func(path string) (*shmlink.Listener, error) { return shmlink.Listen(path, cfg) },
		(*shmlink.Listener).AcceptConn,
		func(path string) (*shmlink.Conn, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return shmlink.Dial(ctx, path, cfg)
		})
}

// Transports returns every transport of a run, shmlink's with the given
// ring size.
func Transports(ring int) []*workload.Transport {
	return []*workload.Transport{Shmlink(ring), workload.Unix, workload.Pipe, workload.TCP}
}
