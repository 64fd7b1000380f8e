package wire

import (
	"errors"
	"reflect"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	msgs := []Msg{
		{Type: Hello, PID: 42, MaxMessage: 1 << 30},
		{Type: Hello, PID: 42, MaxMessage: 1 << 30, Flags: FlagHalfClose},
		{Type: Shut},
		{Type: Welcome, PID: 7, MaxMessage: 99},
		{Type: Reject, Code: RejectPermission, Reason: "uid 1000 not allowed"},
		{Type: Bye},
		{Type: Probe},
		{Type: Info, PID: 3, Clients: 12, Since: 1700000000000000000},
		{Type: Stat},
		{Type: Taken},
		{Type: Welcome, PID: 7, MaxMessage: 99, Flags: FlagHalfClose | FlagTaken},
		{Type: Links, PID: 3, Clients: 2, Since: 17, Links: []LinkRecord{
			{PID: 9, Since: 5, RingSize: 4096, Sent: DirRecord{1, 2, 3, 4, 5, 6, 7}, Received: DirRecord{Fill: 8}},
			{PID: 10}}},
	}
	for _, m := range msgs {
		m.Version = Version
		got, err := Decode(Encode(nil, m), m.Type.Handles())
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Errorf("%v: got %+v, %v", m.Type, got, err)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	hello := Encode(nil, Msg{Type: Hello, PID: 1, MaxMessage: 1})
	cases := map[string]struct {
		b      []byte
		nfiles int
	}{
		"short":          {hello[:5], 3},
		"magic":          {append([]byte("XXXX"), hello[4:]...), 3},
		"truncated":      {hello[:len(hello)-1], 3},
		"trailing":       {append(hello, 0), 3},
		"missing fds":    {hello, 1},
		"extra fds":      {Encode(nil, Msg{Type: Bye}), 1},
		"unknown type":   {[]byte("SHLK\x09\x00\x01\x00"), 0},
		"long reason":    {[]byte("SHLK\x03\x00\x01\x00\x01\x00\xff\x00"), 0},
		"zero max":       {Encode(nil, Msg{Type: Hello, PID: 1}), 3},
		"reason too big": {append(Encode(nil, Msg{Type: Reject, Reason: "ab"}), 'c'), 0},
	}
	for name, c := range cases {
		if _, err := Decode(c.b, c.nfiles); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

// TestForeignVersion: a packet of another version decodes to its header,
// whatever follows it and however many handles it carries, so that a
// listener can answer it with RejectVersion.
func TestForeignVersion(t *testing.T) {
	b := Encode(nil, Msg{Type: Hello, PID: 1, MaxMessage: 1})
	b[6] = 9
	for _, c := range []struct {
		b        []byte
		nhandles int
	}{{b, 3}, {append(b, make([]byte, 40)...), 3}, {b, 2}, {b[:8], 0}} {
		m, err := Decode(c.b, c.nhandles)
		if err != nil || m.Version != 9 || m.Type != Hello {
			t.Errorf("%d bytes, %d handles: got %+v, %v", len(c.b), c.nhandles, m, err)
		}
	}
}

// TestReservedIgnored: the header's reserved byte and the flags of Hello
// and Welcome are ignored (PROTOCOL.md, "Reserved fields").
func TestReservedIgnored(t *testing.T) {
	for _, typ := range []Type{Hello, Welcome} {
		want := Msg{Type: typ, Version: Version, PID: 7, MaxMessage: 4096}
		b := Encode(nil, want)
		b[5] = 0xFF
		copy(b[12:16], []byte{1, 2, 3, 0x80})
		if got, err := Decode(b, typ.Handles()); err != nil || got.Type != want.Type || got.PID != want.PID || got.MaxMessage != want.MaxMessage {
			t.Errorf("%v with reserved bits set: got %+v, %v", typ, got, err)
		}
	}
	if m, err := Decode([]byte("SHLK\x04\x01\x01\x00"), 0); err != nil || m.Type != Bye {
		t.Errorf("bye with reserved byte set: %+v, %v", m, err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Encode(nil, Msg{Type: Hello, PID: 1, MaxMessage: 1}), 3)
	f.Add(Encode(nil, Msg{Type: Welcome, PID: 1, MaxMessage: 1}), 2)
	f.Add(Encode(nil, Msg{Type: Reject, Code: 2, Reason: "no"}), 0)
	f.Add(Encode(nil, Msg{Type: Info, Clients: 2}), 0)
	f.Add(Encode(nil, Msg{Type: Links, Clients: 3, Links: []LinkRecord{{PID: 1, RingSize: 4096}}}), 0)
	f.Add([]byte("SHLK\x04\x00\x01\x00"), 0)
	f.Fuzz(func(t *testing.T, b []byte, nfiles int) {
		m, err := Decode(b, nfiles)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		if m.Version != Version {
			return
		}
		// A packet that decodes must encode back to the same bytes, but
		// for its reserved fields, which are ignored and encoded as zero.
		// (Hello and Welcome flags are kept: the known bits mean something.)
		want := append([]byte(nil), b...)
		want[5] = 0
		if m.Type == Links {
			copy(want[headerLen+20:], []byte{0, 0, 0, 0})
			for off := headerLen + linksHeadLen; off < len(want); off += linkRecordLen {
				copy(want[off+4:], []byte{0, 0, 0, 0})
			}
		}
		if got := Encode(nil, m); string(got) != string(want) {
			t.Fatalf("re-encoding differs:\n%x\n%x", got, want)
		}
	})
}
