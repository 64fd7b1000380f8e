package shmlink

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"testing"

	"github.com/shmlink/shmlink/internal/wire"
)

// fakeStatServer answers one STAT at path with the packet answer, as a
// hostile server would.
func fakeStatServer(t *testing.T, path string, answer []byte) {
	t.Helper()
	l, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		c, err := l.AcceptUnix()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 64)
		if _, err := c.Read(buf); err == nil {
			c.Write(answer)
		}
	}()
}

// TestStatRefusesImplausibleAnswer: the counters come from another
// process; an answer that cannot be true is refused, not displayed.
func TestStatRefusesImplausibleAnswer(t *testing.T) {
	good := wire.LinkRecord{PID: 7, RingSize: 4096}
	overfull := good
	overfull.Sent.Fill = 1 << 40
	badRing := good
	badRing.RingSize = 4097
	for name, answer := range map[string][]byte{
		"fill beyond the ring": wire.Encode(nil, wire.Msg{Type: wire.Links, Clients: 1, Links: []wire.LinkRecord{overfull}}),
		"ring size":            wire.Encode(nil, wire.Msg{Type: wire.Links, Clients: 1, Links: []wire.LinkRecord{badRing}}),
		"truncated":            wire.Encode(nil, wire.Msg{Type: wire.Links, Clients: 1, Links: []wire.LinkRecord{good}})[:40],
		"wrong type":           wire.Encode(nil, wire.Msg{Type: wire.Info, Clients: 1}),
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "fake.sock")
			fakeStatServer(t, path, answer)
			if _, _, err := Stat(context.Background(), path); !errors.Is(err, ErrHandshake) {
				t.Fatalf("Stat = %v, want ErrHandshake", err)
			}
		})
	}
	path := filepath.Join(t.TempDir(), "fake.sock")
	fakeStatServer(t, path, wire.Encode(nil, wire.Msg{Type: wire.Links, Clients: 3, Links: []wire.LinkRecord{good}}))
	info, links, err := Stat(context.Background(), path)
	if err != nil || info.Clients != 3 || len(links) != 1 || links[0].PeerPID != 7 {
		t.Fatalf("a plausible answer: %+v, %+v, %v", info, links, err)
	}
}
