//go:build !linux && !windows

package shmlink

import (
	"context"
	"errors"
	"testing"
)

// TestUnsupported: without a backend, every entry point says so first,
// before looking at its arguments or the file system.
func TestUnsupported(t *testing.T) {
	ctx := context.Background()
	bad := &Config{RingSize: 3} // invalid too: the platform must come first
	_, errListen := Listen("x", bad)
	_, errDial := Dial(ctx, "x", bad)
	_, errOpen := Open(ctx, "x", RoleClient, Handlers{}, bad)
	_, errProbe := Probe(ctx, "x")
	_, errList := ListLinks()
	_, errDir := RuntimeDir()
	for what, err := range map[string]error{"Listen": errListen, "Dial": errDial, "Open": errOpen,
		"Probe": errProbe, "ListLinks": errList, "RuntimeDir": errDir} {
		if !errors.Is(err, ErrUnsupported) || !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("%s: %v, want ErrUnsupported", what, err)
		}
	}
}
