package sys

import "testing"

func TestParseLoadavg(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		okay bool
	}{
		{"0.52 0.58 0.59 3/112 1750\n", 3, true},
		{"10.00 9.00 8.00 123/4567 99999\n", 123, true},
		{"0.52 0.58 0.59 x/112 1750\n", 0, false},
		{"0.52 0.58", 0, false},
		{"0.52 0.58 0.59 3", 0, false},
		{"", 0, false},
	} {
		n, ok := parseLoadavg([]byte(c.in))
		if n != c.n || ok != c.okay {
			t.Errorf("parseLoadavg(%q) = %d, %v; want %d, %v", c.in, n, ok, c.n, c.okay)
		}
	}
}

func TestCountCPUs(t *testing.T) {
	for in, want := range map[string]int{"0": 1, "0-1": 2, "0-3,5,7-8": 7, "": 0, "3-1": 0, "a": 0} {
		if got := countCPUs(in); got != want {
			t.Errorf("countCPUs(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestRunnable(t *testing.T) {
	running, cpus, ok := Runnable()
	if !ok {
		t.Skip("no /proc/loadavg here")
	}
	// The calling thread is running, so the count is never zero.
	if running < 1 || cpus < 1 {
		t.Errorf("Runnable() = %d, %d", running, cpus)
	}
	if a := testing.AllocsPerRun(100, func() { Runnable() }); a != 0 {
		t.Errorf("Runnable allocates %v times", a)
	}
}
