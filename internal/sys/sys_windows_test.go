package sys

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/shmlink/shmlink/internal/testproc"
	"golang.org/x/sys/windows"
)

func TestMain(m *testing.M) {
	testproc.Main(m, map[string]func([]string) error{
		"peer":    childPeer,
		"hostile": childHostile,
		"hold":    childHold,
		"alone":   childAlone,
	})
}

var procGetProcessHandleCount = kernel32.NewProc("GetProcessHandleCount")

// handleCount is the number of handles in this process's table.
func handleCount(t testing.TB) int {
	t.Helper()
	var n uint32
	if r, _, err := procGetProcessHandleCount.Call(uintptr(currentProcess), uintptr(unsafe.Pointer(&n))); r == 0 {
		t.Fatalf("GetProcessHandleCount: %v", err)
	}
	return int(n)
}

// threadCount is the number of OS threads of this process (Toolhelp).
func threadCount(t testing.TB) int {
	t.Helper()
	snap, err := windows.CreateToolhelp32Snapshot(windows.TH32CS_SNAPTHREAD, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer windows.CloseHandle(snap)
	var e windows.ThreadEntry32
	e.Size = uint32(unsafe.Sizeof(e))
	n := 0
	pid := uint32(os.Getpid())
	for err = windows.Thread32First(snap, &e); err == nil; err = windows.Thread32Next(snap, &e) {
		if e.OwnerProcessID == pid {
			n++
		}
	}
	return n
}

// dup returns a second handle to the object behind h, as receiving it from
// a peer would.
func dup(t testing.TB, h Handle) Handle {
	t.Helper()
	var nh windows.Handle
	if err := windows.DuplicateHandle(currentProcess, h.h, currentProcess, &nh, 0, false, windows.DUPLICATE_SAME_ACCESS); err != nil {
		t.Fatal(err)
	}
	return Handle{nh}
}

// pipeName is a pipe path private to this test.
func pipeName(t testing.TB) string {
	t.Helper()
	dir, err := RuntimeDir(t.Name() + strconv.Itoa(os.Getpid()) + strconv.FormatInt(time.Now().UnixNano(), 10))
	if err != nil {
		t.Fatal(err)
	}
	p, err := EndpointPath(dir, "x")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSegmentCreateAttach(t *testing.T) {
	s, err := CreateSegment("test", 8192)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Mem()[100] = 42
	a, err := AttachSegment(dup(t, s.Handle()), 4096, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if len(a.Mem()) != 8192 || a.Mem()[100] != 42 {
		t.Fatalf("attached %d bytes, byte 100 = %d", len(a.Mem()), a.Mem()[100])
	}
	a.Mem()[8191] = 7
	if s.Mem()[8191] != 7 {
		t.Fatal("a write through the attached view is not seen by the creator")
	}
	for _, r := range [][2]int64{{16384, 1 << 20}, {0, 4096}} {
		if _, err := AttachSegment(dup(t, s.Handle()), r[0], r[1]); !errors.Is(err, ErrBadHandle) {
			t.Errorf("segment of 8192 bytes, range %v: %v", r, err)
		}
	}
}

// TestAttachRefusesOtherObjects: only a committed paging-file section,
// mappable read-write, is a segment; only an event is a doorbell; a refused
// handle is closed.
func TestAttachRefusesOtherObjects(t *testing.T) {
	before := handleCount(t)
	section := func(prot uint32) Handle {
		h, err := windows.CreateFileMapping(windows.InvalidHandle, nil, prot, 0, 8192, nil)
		if err != nil {
			t.Fatal(err)
		}
		return Handle{h}
	}
	ev, err := windows.CreateEvent(nil, 0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	defer w.Close()
	fh := dup(t, Handle{windows.Handle(f.Fd())})
	// A section created PAGE_READONLY is refused on Windows, where it
	// cannot be mapped for writing; Wine maps it read-write, so it is not
	// among these cases.
	for name, h := range map[string]Handle{
		"event":            {ev},
		"file":             fh,
		"reserved section": section(windows.PAGE_READWRITE | secReserve),
		"none":             {},
		"garbage value":    {windows.Handle(0x7ff0)},
	} {
		if _, err := AttachSegment(h, 0, 1<<20); !errors.Is(err, ErrBadHandle) {
			t.Errorf("%s as a segment: %v, want ErrBadHandle", name, err)
		}
	}
	s, err := CreateSegment("s", 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for name, h := range map[string]Handle{
		"section":       dup(t, s.Handle()),
		"file":          dup(t, Handle{windows.Handle(f.Fd())}),
		"none":          {},
		"garbage value": {windows.Handle(0x7ff0)},
	} {
		if _, err := OpenBell(h); !errors.Is(err, ErrBadHandle) {
			t.Errorf("%s as a bell: %v, want ErrBadHandle", name, err)
		}
	}
	s.Close()
	if after := handleCount(t); after != before {
		t.Errorf("%d handles before, %d after: refused handles leak", before, after)
	}
}

func TestDoorbell(t *testing.T) {
	d, err := NewDoorbell()
	if err != nil {
		t.Fatal(err)
	}
	b, err := OpenBell(dup(t, d.Handle()))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// Rings before the wait are not lost; several coalesce into one.
	b.Ring()
	b.Ring()
	if err := d.Wait(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	// The second ring may still be on its way from the thread pool: a
	// wait may see it, but then the next one times out.
	err = d.Wait(time.Now().Add(20 * time.Millisecond))
	if err == nil {
		err = d.Wait(time.Now().Add(20 * time.Millisecond))
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("wait after the rings were taken: %v, want a timeout", err)
	}
	go b.Ring()
	if err := d.Wait(time.Time{}); err != nil {
		t.Fatal(err)
	}
	d.Ring()
	if err := d.Wait(time.Time{}); err != nil {
		t.Fatalf("ring from this process: %v", err)
	}
	if err := d.Wait(time.Now().Add(-time.Second)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("deadline in the past: %v", err)
	}
	go d.Close()
	if err := d.Wait(time.Time{}); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("wait on a closed doorbell: %v", err)
	}
	b.Ring() // the doorbell is gone: dropped, not an error or a block
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b.Ring() // after Close: dropped
}

// listenTest listens on a pipe private to the test, until its end.
func listenTest(t testing.TB) (string, *Listener) {
	t.Helper()
	path := pipeName(t)
	l, err := Listen(path, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return path, l
}

// connPair returns both ends of a control connection within this process.
func connPair(t testing.TB) (client, server *Conn, l *Listener) {
	t.Helper()
	path, l := listenTest(t)
	client, err := Dial(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	if server, err = l.Accept(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	return client, server, l
}

func TestConnPacketsWithHandles(t *testing.T) {
	c, s, _ := connPair(t)
	for _, end := range []*Conn{c, s} {
		cred, err := end.PeerCred()
		if err != nil || cred.PID != os.Getpid() || !cred.SameUser || cred.UID != -1 || cred.GID != -1 {
			t.Fatalf("PeerCred = %+v, %v", cred, err)
		}
	}
	d, err := NewDoorbell()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	buf := make([]byte, 64)
	// Both directions carry handles: the receiver always duplicates them
	// out of the sender.
	for _, ends := range [][2]*Conn{{c, s}, {s, c}} {
		from, to := ends[0], ends[1]
		if err := from.Send([]byte("hello"), d.Handle(), d.Handle()); err != nil {
			t.Fatal(err)
		}
		if _, _, err := to.Recv(buf, 1); !errors.Is(err, ErrTooManyHandles) {
			t.Fatalf("two handles where one is allowed: %v", err)
		}
		from.Send([]byte("again"), d.Handle())
		n, hs, err := to.Recv(buf, 1)
		if err != nil || string(buf[:n]) != "again" || len(hs) != 1 {
			t.Fatalf("Recv = %q, %d handles, %v", buf[:n], len(hs), err)
		}
		if hs[0].h == d.ev {
			t.Fatal("the received handle is the sender's own, not a duplicate")
		}
		b, err := OpenBell(hs[0])
		if err != nil {
			t.Fatal(err)
		}
		b.Ring()
		b.Close()
		if err := d.Wait(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatalf("doorbell passed over the connection did not ring: %v", err)
		}
	}
	// A packet longer than the buffer is refused whole; the next one
	// arrives intact.
	c.Send(make([]byte, 1000))
	if _, _, err := s.Recv(buf, 0); !errors.Is(err, ErrTooManyHandles) {
		t.Fatalf("oversized packet: %v", err)
	}
	c.Send([]byte("next"))
	if n, _, err := s.Recv(buf, 0); err != nil || string(buf[:n]) != "next" {
		t.Fatalf("after an oversized packet: %q, %v", buf[:n], err)
	}
	// An empty packet is a packet, not the end.
	c.Send(nil)
	if n, hs, err := s.Recv(buf, 0); err != nil || n != 0 || len(hs) != 0 {
		t.Fatalf("empty packet: %d, %v", n, err)
	}
	// End of file is how a side learns that the other is gone.
	c.CloseWrite()
	if err := c.Send([]byte("x")); err == nil {
		t.Error("Send after CloseWrite succeeded")
	}
	for range 2 {
		if _, _, err := s.Recv(buf, 0); err != io.EOF {
			t.Fatalf("after CloseWrite: %v, want io.EOF", err)
		}
	}
	s.Send([]byte("still"))
	if n, _, err := c.Recv(buf, 0); err != nil || string(buf[:n]) != "still" {
		t.Fatalf("reading after CloseWrite: %q, %v", buf[:n], err)
	}
	c.SetDeadline(time.Unix(1, 0))
	if _, _, err := c.Recv(buf, 0); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("recv past the deadline: %v", err)
	}
	c.SetDeadline(time.Time{})
	go func() { s.Close() }()
	if _, _, err := c.Recv(buf, 0); err != io.EOF {
		t.Fatalf("after the peer's Close: %v, want io.EOF", err)
	}
}

// TestRecvRefusesBadTrailers: what a peer writes is parsed with bounds
// checks; garbage handle values fail to duplicate, never name one of ours.
func TestRecvRefusesBadTrailers(t *testing.T) {
	c, s, _ := connPair(t)
	buf := make([]byte, 64)
	for _, ends := range [][2]*Conn{{c, s}, {s, c}} {
		badTrailers(t, ends[0], ends[1])
	}
	s.Send([]byte("ok"))
	if n, _, err := c.Recv(buf, 0); err != nil || string(buf[:n]) != "ok" {
		t.Fatalf("connection unusable after bad packets: %q, %v", buf[:n], err)
	}
	// A message without even the trailer's count reads as the end.
	c.write(nil)
	for range 2 {
		if _, _, err := s.Recv(buf, 2); err != io.EOF {
			t.Fatalf("empty message: %v, want io.EOF", err)
		}
	}
}

// badTrailers sends malformed trailers from one end and checks that the
// other refuses each with ErrBadHandle.
func badTrailers(t *testing.T, from, to *Conn) {
	t.Helper()
	buf := make([]byte, 64)
	for name, pkt := range map[string][]byte{
		"count past the packet": {1, 2, 2},
		"pseudo handle":         append(le64(^uint64(0)), 1),
		"high value":            append(le64(1<<40), 1),
		"zero value":            append(le64(0), 1),
		"unused value":          append(le64(0x7ff0), 1),
	} {
		if err := from.write(pkt); err != nil {
			t.Fatal(err)
		}
		n, hs, err := to.Recv(buf, 2)
		if !errors.Is(err, ErrBadHandle) {
			t.Errorf("%s: Recv = %d, %d handles, %v; want ErrBadHandle", name, n, len(hs), err)
		}
	}
}

func le64(v uint64) []byte {
	b := make([]byte, 8)
	for i := range b {
		b[i] = byte(v >> (8 * i))
	}
	return b
}

func TestListenNames(t *testing.T) {
	path := pipeName(t)
	if _, err := Dial(context.Background(), path); !errors.Is(err, ErrNoListener) {
		t.Fatalf("Dial before Listen: %v", err)
	}
	l, err := Listen(path, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(path, false); !errors.Is(err, ErrInUse) {
		t.Fatalf("second Listen on a live name: %v", err)
	}
	if _, err := Listen(strings.ToUpper(path[:9])+path[9:], false); !errors.Is(err, ErrInUse) {
		t.Fatalf("second Listen with another case: %v", err)
	}
	dir := path[:len(path)-1]
	names, err := ListNames(dir)
	if err != nil || len(names) != 1 || names[0] != (Entry{Name: "x", Path: path}) {
		t.Fatalf("ListNames(%q) = %v, %v", dir, names, err)
	}
	// A connection accepted before the listener closes outlives it, and
	// does not keep the name.
	c, err := Dial(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	accepting := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		accepting <- err
	}()
	l.Close()
	if err := <-accepting; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept during Close: %v", err)
	}
	if _, err := Dial(context.Background(), path); !errors.Is(err, ErrNoListener) {
		t.Fatalf("Dial after Close: %v", err)
	}
	if names, _ := ListNames(dir); len(names) != 0 {
		t.Fatalf("ListNames after Close: %v", names)
	}
	s.Send([]byte("x"))
	if n, _, err := c.Recv(make([]byte, 8), 0); err != nil || n != 1 {
		t.Fatalf("accepted connection after the listener closed: %v", err)
	}
	l2, err := Listen(path, false)
	if err != nil {
		t.Fatalf("Listen again while an old connection is open: %v", err)
	}
	l2.Close()
}

// TestBacklog: clients that dial while nobody accepts are all served.
func TestBacklog(t *testing.T) {
	path, l := listenTest(t)
	const n = 3 * listenBacklog
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, err := Dial(ctx, path)
			if err == nil {
				err = c.Send([]byte{byte(i)})
				c.Recv(make([]byte, 1), 0) // until the server closes
				c.Close()
			}
			errs <- err
		}()
	}
	seen := map[byte]bool{}
	for range n {
		s, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 1)
		if _, _, err := s.Recv(b, 0); err != nil {
			t.Fatal(err)
		}
		seen[b[0]] = true
		s.Close()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if len(seen) != n {
		t.Fatalf("%d distinct clients of %d", len(seen), n)
	}
}

// TestNoHandleLeak: a whole link's worth of objects, made and released
// many times, leaves the handle table as it was.
func TestNoHandleLeak(t *testing.T) {
	cycle := func() {
		c, s, l := connPair(t)
		seg, err := CreateSegment("s", 1<<16)
		if err != nil {
			t.Fatal(err)
		}
		d1, _ := NewDoorbell()
		d2, _ := NewDoorbell()
		if err := c.Send([]byte("hello"), seg.Handle(), d1.Handle(), d2.Handle()); err != nil {
			t.Fatal(err)
		}
		_, hs, err := s.Recv(make([]byte, 64), 3)
		if err != nil {
			t.Fatal(err)
		}
		a, err := AttachSegment(hs[0], 0, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		b1, err := OpenBell(hs[1])
		if err != nil {
			t.Fatal(err)
		}
		hs[2].Close()
		b1.Ring()
		d1.Wait(time.Now().Add(10 * time.Second))
		for _, f := range []func() error{a.Close, b1.Close, seg.Close, d1.Close, d2.Close, c.Close, s.Close, l.Close} {
			if err := f(); err != nil {
				t.Fatal(err)
			}
		}
	}
	cycle() // the runtime's and the thread pool's own first handles
	before := handleCount(t)
	for range 20 {
		cycle()
	}
	// The runtime may add a thread (a handle or two) meanwhile: allow less
	// than one handle per cycle.
	if after := handleCount(t); after-before >= 10 {
		t.Fatalf("%d handles before 20 cycles, %d after", before, after)
	}
}

// TestWaitersHoldNoThreads: 256 goroutines parked on doorbells do not
// cost an OS thread each.
func TestWaitersHoldNoThreads(t *testing.T) {
	const n = 256
	before := threadCount(t)
	bells := make([]*Bell, n)
	acks := make(chan int, n)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		d, err := NewDoorbell()
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if bells[i], err = OpenBell(dup(t, d.Handle())); err != nil {
			t.Fatal(err)
		}
		defer bells[i].Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if err := d.Wait(time.Now().Add(time.Minute)); err != nil {
					t.Error(err)
					return
				}
				select {
				case <-stop:
					return
				default:
				}
				acks <- i
			}
		}()
	}
	// Two rounds through every doorbell: each waiter has parked, woken
	// and parked again.
	most := 0
	for range 2 {
		for _, b := range bells {
			b.Ring()
		}
		for range n {
			<-acks
		}
		most = max(most, threadCount(t))
	}
	close(stop)
	for _, b := range bells {
		b.Ring()
	}
	wg.Wait()
	t.Logf("threads: %d before, at most %d with %d waiters", before, most, n)
	if most-before > n/4 {
		t.Fatalf("%d waiters took %d threads", n, most-before)
	}
}

func TestNames(t *testing.T) {
	sid, err := ownSID()
	if err != nil {
		t.Fatal(err)
	}
	def, err := RuntimeDir("")
	if err != nil || def != `\\.\pipe\shmlink-`+sid.String()+"." {
		t.Fatalf("RuntimeDir() = %q, %v", def, err)
	}
	a, _ := RuntimeDir(`C:\a`)
	a2, _ := RuntimeDir(`C:\a`)
	b, _ := RuntimeDir(`C:\b`)
	if a != a2 || a == b || a == def || strings.HasPrefix(a, def) || !strings.HasPrefix(a, `\\.\pipe\shmlink-`+sid.String()) {
		t.Fatalf("RuntimeDir overrides: %q %q %q", a, a2, b)
	}
	if p, err := RuntimeDir(`\\.\pipe\mine-`); err != nil || p != `\\.\pipe\mine-` {
		t.Fatalf("RuntimeDir(pipe prefix) = %q, %v", p, err)
	}
	if p, err := EndpointPath(def, "chat"); err != nil || p != def+"chat" {
		t.Fatalf("EndpointPath = %q, %v", p, err)
	}
	if _, err := EndpointPath(def, strings.Repeat("n", 250)); err == nil {
		t.Error("a pipe path over 256 characters accepted")
	}
	for _, bad := range []string{`\\.\pipe\`, `\\.\pipe\a\b`, `\\.\pipe\a/b`, "\\\\.\\pipe\\a\x00", `C:\x`, `\\.\pipe\` + strings.Repeat("x", 250)} {
		if CheckPathName(bad) == nil {
			t.Errorf("CheckPathName(%q) accepted", bad)
		}
	}
	if CheckPathName(`\\.\pipe\my-app`) != nil || !IsPathName(`\\.\PIPE\x`) || IsPathName("x") || IsPathName(`C:\x`) {
		t.Error("IsPathName/CheckPathName")
	}
}

func TestWatchDir(t *testing.T) {
	w, err := WatchDir(`\\.\pipe\`)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Wait(time.Now().Add(-time.Millisecond)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("past deadline: %v", err)
	}
	if err := w.Wait(time.Time{}); err != nil {
		t.Fatalf("poll: %v", err)
	}
	go w.Close()
	for err == nil {
		err = w.Wait(time.Time{})
	}
	if !errors.Is(err, os.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

// TestNanotime: the clock is monotonic and fine grained, unlike Go's own
// on Windows.
func TestNanotime(t *testing.T) {
	prev, smallest := Nanotime(), int64(1<<62)
	for range 100000 {
		now := Nanotime()
		if now < prev {
			t.Fatalf("Nanotime went back from %d to %d", prev, now)
		}
		if now > prev {
			smallest = min(smallest, now-prev)
		}
		prev = now
	}
	if smallest > 10000 {
		t.Fatalf("smallest step of Nanotime %d ns", smallest)
	}
	t.Logf("smallest step %d ns", smallest)
}

func TestPinProcess(t *testing.T) {
	if PinProcess(nil) == nil || PinProcess([]int{64}) == nil || PinProcess([]int{-1}) == nil {
		t.Error("bad CPU lists accepted")
	}
	var all []int
	for i := range min(runtime.NumCPU(), 64) {
		all = append(all, i)
	}
	if err := PinProcess([]int{0}); err != nil {
		t.Fatal(err)
	}
	if err := PinProcess(all); err != nil {
		t.Fatal(err)
	}
}

// childPeer plays one side of a link against the test process.
//
//	peer PATH client: dials, hands over a segment and two doorbells, takes
//	the server's two doorbells; then each side writes into the segment and
//	rings the other, who checks what it reads. Prints "eof" when the server
//	hangs up.
//	peer PATH idle: dials, sends "hi", prints ready and reads until EOF.
//	peer PATH server: listens, prints ready, accepts one client and reads
//	until EOF.
func childPeer(args []string) error {
	path, mode := args[0], args[1]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	buf := make([]byte, 64)
	switch mode {
	case "server":
		l, err := Listen(path, false)
		if err != nil {
			return err
		}
		testproc.Ready()
		s, err := l.Accept()
		if err != nil {
			return err
		}
		for {
			if _, _, err := s.Recv(buf, 0); err != nil {
				return err
			}
		}
	case "idle":
		c, err := Dial(ctx, path)
		if err != nil {
			return err
		}
		if err := c.Send([]byte("hi")); err != nil {
			return err
		}
		testproc.Ready()
		for {
			if _, _, err := c.Recv(buf, 0); err != nil {
				return err
			}
		}
	}
	c, err := Dial(ctx, path)
	if err != nil {
		return err
	}
	cred, err := c.PeerCred()
	if err != nil || cred.PID != os.Getppid() || !cred.SameUser {
		return fmt.Errorf("server's PeerCred = %+v, %v; parent %d", cred, err, os.Getppid())
	}
	seg, err := CreateSegment("child", 1<<16)
	if err != nil {
		return err
	}
	copy(seg.Mem(), "from the client")
	data, err := NewDoorbell()
	if err != nil {
		return err
	}
	space, err := NewDoorbell()
	if err != nil {
		return err
	}
	if err := c.Send([]byte("hello"), seg.Handle(), data.Handle(), space.Handle()); err != nil {
		return err
	}
	n, hs, err := c.Recv(buf, 2)
	if err != nil || string(buf[:n]) != "welcome" || len(hs) != 2 {
		return fmt.Errorf("welcome: %q, %d handles, %v", buf[:n], len(hs), err)
	}
	peerData, err := OpenBell(hs[0])
	if err != nil {
		return err
	}
	hs[1].Close()
	// The server writes at 1000 and rings our data doorbell.
	want := "from the server"
	for string(seg.Mem()[1000:1000+len(want)]) != want {
		if err := data.Wait(time.Now().Add(30 * time.Second)); err != nil {
			return fmt.Errorf("waiting for the server's write: %w", err)
		}
	}
	copy(seg.Mem()[2000:], "reply from the client")
	peerData.Ring()
	if _, _, err := c.Recv(buf, 0); err != io.EOF {
		return fmt.Errorf("after the server's close: %v", err)
	}
	fmt.Println("eof")
	return nil
}

// TestTwoProcesses: a segment and doorbells handed over between two real
// processes, both ways; writes seen on both sides; a parked waiter in each
// process woken by the other.
func TestTwoProcesses(t *testing.T) {
	path, l := listenTest(t)
	p := testproc.Start(t, "peer", path, "client")
	s, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if cred, err := s.PeerCred(); err != nil || cred.PID != p.Pid() || !cred.SameUser {
		t.Fatalf("client's PeerCred = %+v, %v; child %d", cred, err, p.Pid())
	}
	buf := make([]byte, 64)
	n, hs, err := s.Recv(buf, 3)
	if err != nil || string(buf[:n]) != "hello" || len(hs) != 3 {
		t.Fatalf("hello: %q, %d handles, %v", buf[:n], len(hs), err)
	}
	seg, err := AttachSegment(hs[0], 4096, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer seg.Close()
	if got := string(seg.Mem()[:15]); got != "from the client" {
		t.Fatalf("segment starts with %q", got)
	}
	peerData, err := OpenBell(hs[1])
	if err != nil {
		t.Fatal(err)
	}
	defer peerData.Close()
	hs[2].Close()
	data, _ := NewDoorbell()
	defer data.Close()
	space, _ := NewDoorbell()
	defer space.Close()
	if err := s.Send([]byte("welcome"), data.Handle(), space.Handle()); err != nil {
		t.Fatal(err)
	}
	copy(seg.Mem()[1000:], "from the server")
	peerData.Ring()
	want := "reply from the client"
	for string(seg.Mem()[2000:2000+len(want)]) != want {
		if err := data.Wait(time.Now().Add(30 * time.Second)); err != nil {
			t.Fatalf("waiting for the client's write: %v", err)
		}
	}
	s.Close()
	p.Stdout.Expect(t, "eof")
	p.Wait(t)
}

// TestPeerDeath: when the process at the other end is killed, a pending
// Recv returns io.EOF, on either side.
func TestPeerDeath(t *testing.T) {
	t.Run("client", func(t *testing.T) {
		path, l := listenTest(t)
		p := testproc.Options{WaitReady: true}.Start(t, "peer", path, "idle")
		s, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		buf := make([]byte, 8)
		if n, _, err := s.Recv(buf, 0); err != nil || string(buf[:n]) != "hi" {
			t.Fatalf("%q, %v", buf[:n], err)
		}
		recvEOF(t, s, func() { p.Kill(t) })
	})
	t.Run("server", func(t *testing.T) {
		path := pipeName(t)
		p := testproc.Options{WaitReady: true}.Start(t, "peer", path, "server")
		c, err := Dial(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Send([]byte("hi")); err != nil {
			t.Fatal(err)
		}
		recvEOF(t, c, func() { p.Kill(t) })
		// The dead server's name is free again.
		waitFor(t, "the dead server's name to be free", func() bool {
			l, err := Listen(path, false)
			if err == nil {
				l.Close()
			}
			return err == nil
		})
	})
}

// recvEOF checks that a Recv pending on c when kill runs returns io.EOF.
func recvEOF(t *testing.T, c *Conn, kill func()) {
	t.Helper()
	got := make(chan error, 1)
	var start time.Time
	go func() {
		_, _, err := c.Recv(make([]byte, 8), 0)
		got <- err
	}()
	start = time.Now()
	kill()
	select {
	case err := <-got:
		if err != io.EOF {
			t.Fatalf("Recv after the peer was killed: %v, want io.EOF", err)
		}
		t.Logf("peer death seen %v after the kill (Go's clock, coarse on Windows)", time.Since(start))
	case <-time.After(30 * time.Second):
		t.Fatal("Recv still pending 30s after the peer was killed")
	}
}

// waitFor polls cond until it holds, failing the test after 30s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// childHold listens on args[0] until its stdin closes.
func childHold(args []string) error {
	l, err := Listen(args[0], false)
	if err != nil {
		return err
	}
	defer l.Close()
	testproc.Ready()
	io.Copy(io.Discard, os.Stdin)
	return nil
}

// TestNameHeldByAnotherProcess: a live listener elsewhere holds the name
// (ErrInUse); once it is killed, the name is free, with nothing stale.
func TestNameHeldByAnotherProcess(t *testing.T) {
	path := pipeName(t)
	p := testproc.Options{WaitReady: true}.Start(t, "hold", path)
	if _, err := Listen(path, false); !errors.Is(err, ErrInUse) {
		t.Fatalf("Listen on a name another process holds: %v", err)
	}
	names, err := ListNames(path[:len(path)-1])
	if err != nil || len(names) != 1 || names[0].Name != "x" {
		t.Fatalf("ListNames = %v, %v", names, err)
	}
	p.Kill(t)
	p.Exit(t)
	waitFor(t, "the killed holder's name to be free", func() bool {
		l, err := Listen(path, false)
		if err == nil {
			l.Close()
		}
		return err == nil
	})
}

// childHostile dials args[0] and sends one hostile hello, chosen by
// args[1]; then it waits for the server to hang up.
func childHostile(args []string) error {
	c, err := Dial(context.Background(), args[0])
	if err != nil {
		return err
	}
	seg, err := CreateSegment("small", 4096)
	if err != nil {
		return err
	}
	d, err := NewDoorbell()
	if err != nil {
		return err
	}
	garbage := Handle{windows.Handle(0x7ff0)}
	switch args[1] {
	case "wrong-kinds":
		err = c.Send([]byte("hello"), d.Handle(), seg.Handle(), seg.Handle())
	case "small":
		err = c.Send([]byte("hello"), seg.Handle(), d.Handle(), d.Handle())
	case "garbage":
		err = c.Send([]byte("hello"), garbage, garbage, garbage)
	case "too-many":
		err = c.Send([]byte("hello"), seg.Handle(), d.Handle(), d.Handle(), d.Handle(), d.Handle(), d.Handle())
	case "closed":
		// Handles that are gone by the time the server reads them.
		h := seg.Handle()
		seg.Close()
		err = c.Send([]byte("hello"), h, h, h)
	}
	if err != nil {
		return err
	}
	c.Recv(make([]byte, 8), 0)
	return nil
}

// TestHostileClient: a client process sending the wrong kinds of handles,
// a segment that is too small, garbage or stale handle values, or too many
// of them, gets ErrBadHandle or ErrTooManyHandles, and the server keeps
// nothing of it.
func TestHostileClient(t *testing.T) {
	path, l := listenTest(t)
	for _, mode := range []string{"wrong-kinds", "small", "garbage", "too-many", "closed"} {
		p := testproc.Start(t, "hostile", path, mode)
		s, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		before := handleCount(t)
		err = serve(s)
		if !errors.Is(err, ErrBadHandle) && !errors.Is(err, ErrTooManyHandles) {
			t.Errorf("%s: %v, want ErrBadHandle or ErrTooManyHandles", mode, err)
		} else {
			t.Logf("%s: %v", mode, err)
		}
		if after := handleCount(t); after != before {
			t.Errorf("%s: %d handles before, %d after", mode, before, after)
		}
		s.Close()
		p.Wait(t)
	}
}

// serve does what a server does with a hello: take three handles, attach
// the first as the segment and open the others as bells.
func serve(s *Conn) error {
	_, hs, err := s.Recv(make([]byte, 64), 3)
	if err != nil {
		return err
	}
	defer CloseHandles(hs[1:])
	seg, err := AttachSegment(hs[0], 8192, 1<<20)
	if err != nil {
		return err
	}
	defer seg.Close()
	for i := 1; i < 3; i++ {
		b, err := OpenBell(hs[i])
		hs[i] = Handle{}
		if err != nil {
			return err
		}
		defer b.Close()
	}
	return nil
}

// BenchmarkDoorbellPingPong: one round trip is two rings, each a SetEvent
// that the thread pool turns into a channel send, within one process.
// Under Wine every step is a wineserver request: a sanity figure only.
func BenchmarkDoorbellPingPong(b *testing.B) {
	var ds [2]*Doorbell
	var bells [2]*Bell
	for i := range ds {
		d, err := NewDoorbell()
		if err != nil {
			b.Fatal(err)
		}
		defer d.Close()
		ds[i] = d
		if bells[i], err = OpenBell(dup(b, d.Handle())); err != nil {
			b.Fatal(err)
		}
		defer bells[i].Close()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range b.N {
			if ds[1].Wait(time.Now().Add(time.Minute)) != nil {
				return
			}
			bells[0].Ring()
		}
	}()
	b.ResetTimer()
	for range b.N {
		bells[1].Ring()
		if err := ds[0].Wait(time.Now().Add(time.Minute)); err != nil {
			b.Fatal(err)
		}
	}
	<-done
}

func BenchmarkNanotime(b *testing.B) {
	for range b.N {
		Nanotime()
	}
}

// childAlone has no work but waiting, which Go's runtime must not take
// for a deadlock although only a thread-pool callback can wake it: it
// waits on a doorbell (printing its handle value first, then "parked" each
// time, for the parent to ring it) three times, then waits in Accept on
// args[0] until a client comes.
func childAlone(args []string) error {
	d, err := NewDoorbell()
	if err != nil {
		return err
	}
	fmt.Println(uint64(d.ev))
	for range 3 {
		fmt.Println("parked")
		if err := d.Wait(time.Time{}); err != nil {
			return err
		}
	}
	l, err := Listen(args[0], false)
	if err != nil {
		return err
	}
	fmt.Println("accepting")
	c, err := l.Accept()
	if err != nil {
		return err
	}
	return c.Close()
}

// TestOnlyWaitingIsNotDeadlock: a process whose goroutines all wait on
// doorbells or in Accept lives on and is woken.
func TestOnlyWaitingIsNotDeadlock(t *testing.T) {
	path := pipeName(t)
	p := testproc.Start(t, "alone", path)
	v, err := strconv.ParseUint(p.Stdout.Next(t), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	proc, err := windows.OpenProcess(windows.PROCESS_DUP_HANDLE, false, uint32(p.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	defer windows.CloseHandle(proc)
	var h windows.Handle
	if err := windows.DuplicateHandle(proc, windows.Handle(v), currentProcess, &h, 0, false, windows.DUPLICATE_SAME_ACCESS); err != nil {
		t.Fatal(err)
	}
	b, err := OpenBell(Handle{h})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for range 3 {
		p.Stdout.Expect(t, "parked")
		b.Ring()
	}
	p.Stdout.Expect(t, "accepting")
	c, err := Dial(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p.Wait(t)
}

// TestSendToPeerNotReading fills the pipe towards a peer that does not
// read: the blocked Send ends at its deadline, and another one ends when
// the Conn is closed, so neither a deadline nor Close is ignored by the
// writes that do not go through os.File. Recv and Send run at once on
// each end, as on every link (the race detector watches that).
func TestSendToPeerNotReading(t *testing.T) {
	c, s, _ := connPair(t)
	pkt := make([]byte, 32<<10)
	c.SetDeadline(time.Now().Add(200 * time.Millisecond))
	var err error
	for i := 0; i < 10000 && err == nil; i++ {
		err = c.Send(pkt)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Send to a full pipe: %v, want a deadline error", err)
	}

	// The peer reads and writes at once; the pipe drains.
	c.SetDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, len(pkt))
		for {
			if _, _, err := s.Recv(buf, 0); err != nil {
				done <- err
				return
			}
		}
	}()
	go func() {
		for s.Send([]byte("x")) == nil {
		}
	}()
	buf := make([]byte, 8)
	for i := 0; i < 100; i++ {
		if err := c.Send(pkt); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.Recv(buf, 0); err != nil {
			t.Fatal(err)
		}
	}

	// A Send blocked on a peer that stopped reading ends with Close.
	s2c, s2s, _ := connPair(t)
	blocked := make(chan error, 1)
	go func() {
		var err error
		for err == nil {
			err = s2c.Send(pkt)
		}
		blocked <- err
	}()
	waitFor(t, "a Send to block", func() bool {
		// A packet sits unread: the writer is at the next one, or blocked.
		var avail uint32
		r, _, _ := procPeekNamedPipe.Call(uintptr(s2s.h), 0, 0, 0, uintptr(unsafe.Pointer(&avail)), 0)
		return r != 0 && avail >= uint32(len(pkt))
	})
	s2c.Close()
	select {
	case err := <-blocked:
		if !errors.Is(err, os.ErrClosed) {
			t.Fatalf("Send ended by Close: %v, want os.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a blocked Send did not end when its Conn was closed")
	}
	c.Close()
	<-done
}
