package shmlink

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestCrossUserOptionsRefused: links are same-user only on Windows, so a
// Config that admits other users is an error there, at every entry point,
// naming the option: never a silent no-op.
func TestCrossUserOptionsRefused(t *testing.T) {
	linkDir(t)
	ctx := context.Background()
	for _, tc := range []struct {
		field string
		cfg   *Config
	}{
		{"AllowUIDs", &Config{AllowUIDs: []int{1000}}},
		{"AllowGIDs", &Config{AllowGIDs: []int{0}}},
	} {
		check := func(what string, err error) {
			t.Helper()
			if !errors.Is(err, ErrInvalidConfig) || !errors.Is(err, errors.ErrUnsupported) ||
				!strings.Contains(err.Error(), tc.field) {
				t.Errorf("%s with %s: %v; want ErrInvalidConfig and errors.ErrUnsupported, naming %s",
					what, tc.field, err, tc.field)
			}
		}
		check("Validate", tc.cfg.Validate())
		l, err := Listen("cross", tc.cfg)
		if err == nil {
			l.Close()
		}
		check("Listen", err)
		c, err := Dial(ctx, "cross", tc.cfg)
		if err == nil {
			c.Close()
		}
		check("Dial", err)
		link, err := Open(ctx, "cross", RoleServer, Handlers{}, tc.cfg)
		if err == nil {
			link.Close()
		}
		check("Open", err)
	}
}
