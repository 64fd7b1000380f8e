package main

import (
	"encoding/json"
	"testing"

	"github.com/shmlink/shmlink/internal/bench"
)

// TestBenchQuickJSON runs a quick benchmark end to end, peers and all,
// and checks that every workload has a row per transport with figures.
// It asserts nothing about speed.
func TestBenchQuickJSON(t *testing.T) {
	stdout, stderr, code := runCLI(t, "", "bench", "--quick", "--json", "--rounds", "1")
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	var rep benchReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, stdout)
	}
	transports := bench.Transports(0)
	if want := len(bench.Workloads) * len(transports); len(rep.Results) != want {
		t.Fatalf("%d results, want %d:\n%s", len(rep.Results), want, stdout)
	}
	for i, r := range rep.Results {
		w, tr := bench.Workloads[i/len(transports)], transports[i%len(transports)]
		if r.Workload != w.Name || r.Transport != tr.Name {
			t.Errorf("row %d is %s over %s, want %s over %s", i, r.Workload, r.Transport, w.Name, tr.Name)
		}
		positive := r.Messages > 0 && r.MsgPerSec > 0 && r.Ratio > 0
		if w.RoundTrip {
			positive = positive && r.MedianNs > 0 && r.P99Ns >= r.MedianNs
		} else {
			positive = positive && r.GBPerSec > 0
		}
		if !positive {
			t.Errorf("row %d lacks figures: %+v", i, r)
		}
	}
}

// TestBenchUsage checks that bad flags are usage errors, before any peer
// starts.
func TestBenchUsage(t *testing.T) {
	for _, args := range [][]string{{"--pin", "0"}, {"--pin", "a,b"}, {"--ring", "3000"}, {"--ring", "x"}, {"extra"}} {
		_, stderr, code := runCLI(t, "", append([]string{"bench"}, args...)...)
		if code != 2 || stderr == "" {
			t.Errorf("bench %v: exit %d, stderr %q; want 2 and a message", args, code, stderr)
		}
	}
	stdout, _, code := runCLI(t, "", "bench", "--help")
	if code != 0 || stdout == "" {
		t.Errorf("bench --help: exit %d, stdout %q", code, stdout)
	}
}
