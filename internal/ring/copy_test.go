package ring

import (
	"bytes"
	"testing"
	"time"
)

// TestCopyKinds checks both store kinds, and the policy's copy, at every
// alignment of source and destination and at lengths around the edges of
// the non-temporal copy's 16-byte head and 64-byte lines.
func TestCopyKinds(t *testing.T) {
	src := make([]byte, 3*temporalPiece+300)
	for i := range src {
		src[i] = byte(i*7 + i>>8)
	}
	dst := make([]byte, len(src)+64)
	var cp copyPolicy
	kinds := map[string]func(d, s []byte) int{
		"temporal":     copyTemporal,
		"non-temporal": copyNonTemporal,
		"policy":       func(d, s []byte) int { return cp.copyChunk(d, s, time.Now(), 1<<20) },
	}
	lengths := []int{0, 1, 15, 16, 63, 64, 127, 128, 129, 191, 4096, ntMin - 1, ntMin, ntMin + 77, temporalPiece + 1, len(src) - 64}
	for name, f := range kinds {
		for _, n := range lengths {
			for _, so := range []int{0, 1, 8, 13} {
				for _, do := range []int{0, 3, 8, 16, 40} {
					clear(dst)
					k := f(dst[do:do+n], src[so:so+n+5]) // a longer source: copies the shorter
					if k != n || !bytes.Equal(dst[do:do+n], src[so:so+n]) {
						t.Fatalf("%s: %d bytes from +%d to +%d: copied %d, wrong bytes", name, n, so, do, k)
					}
					if bytes.IndexFunc(dst[:do], func(r rune) bool { return r != 0 }) >= 0 ||
						bytes.IndexFunc(dst[do+n:], func(r rune) bool { return r != 0 }) >= 0 {
						t.Fatalf("%s: %d bytes from +%d to +%d: wrote outside the destination", name, n, so, do)
					}
				}
			}
		}
	}
}

// TestCopyPolicyFollowsTheFaster feeds the policy costs for each kind and
// checks that it settles on the cheaper one, keeps trying the other now
// and then, and switches when the costs swap (the processes moved).
func TestCopyPolicyFollowsTheFaster(t *testing.T) {
	const ringSize = 1 << 20
	var cp copyPolicy
	cost := [2]time.Duration{10, 30} // ns per KiB: temporal cheaper
	run := func(windows int) (ntWindows int) {
		for range windows {
			k := 0
			if cp.nt {
				k = 1
				ntWindows++
			}
			// One window, and the ring that follows a switch.
			for b := uint64(0); b < copyWindow+ringSize; b += 1 << 10 {
				cp.charge(1<<10, cost[k], ringSize)
				if cp.nt != (k == 1) {
					break
				}
			}
		}
		return ntWindows
	}
	if n := run(200); n > 200/probeEvery+3 {
		t.Fatalf("temporal cheaper: %d of 200 windows non-temporal", n)
	}
	if cp.nt {
		run(1) // it may be probing
	}
	cost = [2]time.Duration{30, 10}
	run(probeEvery + 5)
	if n := run(200); n < 200-200/probeEvery-3 {
		t.Fatalf("non-temporal cheaper: only %d of 200 windows non-temporal", n)
	}
}
