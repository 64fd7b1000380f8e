package ring

import (
	"time"
	"unsafe"
)

// How a producer copies payloads into the ring (docs/copy.md).
//
// The store kind that moves a large payload fastest to the consumer
// depends on where the two processes run, and the host moves them: with
// both on cores that share a cache, ordinary (temporal) stores leave the
// bytes in that cache and the consumer finds them there, two to three
// times faster than through memory; with the two on distant cores,
// every line the producer overwrites must first be taken back from the
// consumer's cache, and non-temporal stores, which write whole lines to
// memory without that, are three to eight times faster. No fixed choice
// is within a factor of two of the best in both placements, so each
// producer measures and chooses (copyPolicy).
const (
	// CopyAdaptive measures both kinds of store on the producer's large
	// chunks and uses the faster (the default).
	CopyAdaptive = iota
	// CopyTemporal always uses ordinary stores.
	CopyTemporal
	// CopyNonTemporal always uses non-temporal stores for large chunks.
	CopyNonTemporal
	// CopyRuntime leaves every copy to the runtime's copy, which switches
	// to non-temporal stores by itself from 1 MiB on.
	CopyRuntime
)

// CopyMode is how every producer copies payloads. A variable only so that
// the benchmarks can compare the modes in one run (BenchmarkCopyStrategy
// in package shmlink); nothing else sets it.
var CopyMode = CopyAdaptive

// ntMin is the least payload copied with anything but the runtime's copy:
// below it, a copy is too short for the store kind to matter against the
// cost of the chunk, and for the clock readings that measure it.
const ntMin = 16 << 10

// temporalPiece is the most that a temporal copy hands the runtime's copy
// at once: less than its 1 MiB threshold for non-temporal stores.
const temporalPiece = 512 << 10

// copyTemporal copies src into dst with ordinary stores only.
func copyTemporal(dst, src []byte) int {
	n := min(len(dst), len(src))
	for k := 0; k < n; k += temporalPiece {
		copy(dst[k:min(k+temporalPiece, n)], src[k:n])
	}
	return n
}

// copyNonTemporal copies src into dst, with non-temporal stores where
// the machine has them (amd64) and the runtime's copy elsewhere. The
// stores are fenced before it returns, so publishing the tail afterwards
// orders them as any store.
func copyNonTemporal(dst, src []byte) int {
	n := min(len(dst), len(src))
	if !haveNT || n < 128 {
		return copy(dst, src[:n])
	}
	dst, src = dst[:n], src[:n]
	// The body starts at the first 16-byte boundary of dst and is a whole
	// number of 64-byte lines; head and tail go through copy.
	head := int(-uintptr(unsafe.Pointer(&dst[0])) & 15)
	body := (n - head) &^ 63
	copy(dst[:head], src[:head])
	d, s := dst[head:head+body], src[head:head+body] // bounds checked here, not in the assembly
	copyNT(unsafe.Pointer(&d[0]), unsafe.Pointer(&s[0]), uintptr(body))
	copy(dst[head+body:], src[head+body:])
	return n
}

// The phases of a copyPolicy.
const (
	choosing   = iota // the window uses the cheaper kind
	probing           // the window tries the other kind
	confirming        // the window re-measures the usual kind after a probe
)

// copyPolicy is one producer's choice of store kind for its large
// chunks. It charges each chunk's cost, from the start of its wait for
// room to the end of its copy, to the kind it was copied with: with the
// consumer keeping up, that is the producer's copy; with the consumer
// behind, it includes the wait for the consumer, which reads what the
// producer wrote, so it also measures how fast the consumer reads each
// kind. Every window of bytes updates the kind's cost per byte; the next
// window uses the cheaper kind, except that every probeEvery windows,
// or after two windows in a row much dearer than their kind's record (the
// processes may have moved), it tries the other, so that the choice
// follows the placement. A probe is followed by a window of the usual kind, so that
// the two costs compared come from adjacent windows; one noisy window
// only triggers a probe, it does not by itself change the choice.
type copyPolicy struct {
	nt      bool       // the kind in use: non-temporal
	cost    [2]float64 // ns per byte of each kind (0 temporal, 1 non-temporal); 0 until measured
	skip    uint64     // bytes not to charge yet: the consumer still reads the other kind
	phase   int        // choosing, probing (this window tries the other kind) or confirming
	dear    int        // windows in a row much dearer than their kind's record
	bytes   uint64     // charged in this window
	ns      int64
	windows uint64
}

const (
	// copyWindow is the payload a window charges before it decides.
	copyWindow = 4 << 20
	// probeEvery is how many windows go by between tries of the kind
	// not in use: 1/128 of the bytes at worst in the slower kind.
	probeEvery = 128
	// moved is how much dearer than its record a window must be for the
	// other kind to be tried at once.
	moved = 2.0
)

// copyChunk copies src into the ring at dst, a chunk's payload, with the
// store kind that CopyMode and the policy choose, and returns the bytes
// copied, min(len(dst), len(src)). start is when the write of the chunk
// began, before its wait for room, for the policy's accounting; ringSize
// is the ring's size.
func (cp *copyPolicy) copyChunk(dst, src []byte, start time.Time, ringSize uint64) int {
	n := min(len(dst), len(src))
	if n < ntMin {
		return copy(dst, src[:n])
	}
	switch CopyMode {
	case CopyTemporal:
		return copyTemporal(dst, src)
	case CopyNonTemporal:
		return copyNonTemporal(dst, src)
	case CopyRuntime:
		return copy(dst, src[:n])
	}
	if !haveNT {
		return copyTemporal(dst, src)
	}
	if cp.nt {
		copyNonTemporal(dst, src)
	} else {
		copyTemporal(dst, src)
	}
	cp.charge(uint64(n), time.Since(start), ringSize)
	return n
}

// charge accounts a chunk of n bytes that took d, and decides at the end
// of a window.
func (cp *copyPolicy) charge(n uint64, d time.Duration, ringSize uint64) {
	if cp.skip > 0 {
		cp.skip -= min(cp.skip, n)
		return
	}
	cp.bytes += n
	cp.ns += d.Nanoseconds()
	if cp.bytes < copyWindow {
		return
	}
	rate := float64(cp.ns) / float64(cp.bytes)
	cp.bytes, cp.ns = 0, 0
	cp.windows++
	k := 0
	if cp.nt {
		k = 1
	}
	dear := cp.phase == choosing && cp.cost[k] > 0 && rate > moved*cp.cost[k]
	if dear {
		cp.dear++
	} else {
		cp.dear = 0
	}
	jump := cp.dear >= 2 // one dear window is noise (a wake-up, a preemption); two in a row, news
	switch {
	case cp.cost[k] == 0 || cp.phase != choosing:
		// A probe, or the window right after one: both kinds' costs
		// come fresh from adjacent windows, and the old ones may be
		// from another placement.
		cp.cost[k] = rate
	default:
		cp.cost[k] = (3*cp.cost[k] + rate) / 4
	}
	next := cp.nt
	switch {
	case cp.phase == probing:
		cp.phase, next = confirming, !cp.nt // back, to measure the usual kind afresh
	case cp.cost[1-k] == 0 || jump || cp.windows%probeEvery == 0:
		cp.phase, next = probing, !cp.nt
	default:
		cp.phase, next = choosing, cp.cost[1] < cp.cost[0]
	}
	if next != cp.nt {
		cp.nt = next
		// The consumer reads up to a ring of the old kind before it
		// reaches the new one; that is not the new kind's cost.
		cp.skip = ringSize
	}
}
