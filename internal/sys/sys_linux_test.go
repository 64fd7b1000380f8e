package sys

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestSegmentCreateAttach(t *testing.T) {
	s, err := CreateSegment("test", 8192)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Mem()[100] = 42
	h, err := dup(s.Handle())
	if err != nil {
		t.Fatal(err)
	}
	a, err := AttachSegment(h, 4096, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if len(a.Mem()) != 8192 || a.Mem()[100] != 42 {
		t.Fatalf("attached %d bytes, byte 100 = %d", len(a.Mem()), a.Mem()[100])
	}
	// The seals hold against both sides.
	if err := unix.Ftruncate(a.h.fd, 4096); err == nil {
		t.Error("a sealed segment shrank")
	}
	h2, _ := dup(s.Handle())
	if _, err := AttachSegment(h2, 16384, 1<<20); !errors.Is(err, ErrBadHandle) {
		t.Errorf("segment under the minimum: %v", err)
	}
}

func TestAttachRefusesUnsealedAndOtherFiles(t *testing.T) {
	fd, err := unix.MemfdCreate("unsealed", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		t.Fatal(err)
	}
	unix.Ftruncate(fd, 8192)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for name, h := range map[string]Handle{
		"unsealed memfd": {fd: fd, ok: true},
		"pipe":           fileHandle(r),
		"none":           {},
	} {
		if _, err := AttachSegment(h, 0, 1<<20); !errors.Is(err, ErrBadHandle) {
			t.Errorf("%s: %v, want ErrBadHandle", name, err)
		}
	}
}

func TestDoorbell(t *testing.T) {
	d, err := NewDoorbell()
	if err != nil {
		t.Fatal(err)
	}
	h, err := dup(d.Handle())
	if err != nil {
		t.Fatal(err)
	}
	b, err := OpenBell(h)
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
	if err := d.Wait(time.Now().Add(10 * time.Millisecond)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("second wait: %v, want a timeout", err)
	}
	go b.Ring()
	if err := d.Wait(time.Time{}); err != nil {
		t.Fatal(err)
	}
	go d.Close()
	for {
		// A wait may return without a ring, as documented: here when the
		// timed wait's own ring at its deadline came late.
		err := d.Wait(time.Time{})
		if err == nil {
			continue
		}
		if !errors.Is(err, os.ErrClosed) {
			t.Fatalf("wait on a closed doorbell: %v", err)
		}
		break
	}
	b.Ring() // the other end is gone: dropped, not an error or a block
}

func TestOpenBellRefusesOtherFiles(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := OpenBell(fileHandle(r)); !errors.Is(err, ErrBadHandle) {
		t.Fatalf("pipe as a bell: %v", err)
	}
	if _, err := r.Stat(); err == nil {
		t.Error("a refused handle was left open")
	}
}

func listenTest(t *testing.T) (string, *Listener) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "x.sock")
	l, err := Listen(path, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return path, l
}

// connPair returns both ends of a control connection, closed when the test
// ends.
func connPair(t *testing.T) (client, server *Conn) {
	t.Helper()
	path, l := listenTest(t)
	accepted := make(chan *Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	c, err := Dial(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s := <-accepted
	if s == nil {
		t.FailNow()
	}
	t.Cleanup(func() { s.Close() })
	return c, s
}

func TestConnPacketsWithHandles(t *testing.T) {
	c, s := connPair(t)

	cred, err := s.PeerCred()
	if err != nil || cred.PID != os.Getpid() || !cred.SameUser || cred.UID != os.Getuid() {
		t.Fatalf("PeerCred = %+v, %v", cred, err)
	}
	d, _ := NewDoorbell()
	defer d.Close()
	if err := c.Send([]byte("hello"), d.Handle(), d.Handle()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if _, _, err := s.Recv(buf, 1); !errors.Is(err, ErrTooManyHandles) {
		t.Fatalf("two handles where one is allowed: %v", err)
	}
	c.Send([]byte("again"), d.Handle())
	n, hs, err := s.Recv(buf, 1)
	if err != nil || string(buf[:n]) != "again" || len(hs) != 1 {
		t.Fatalf("Recv = %q, %d handles, %v", buf[:n], len(hs), err)
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
	// End of file is how a side learns that the other is gone.
	c.CloseWrite()
	if _, _, err := s.Recv(buf, 0); err != io.EOF {
		t.Fatalf("after CloseWrite: %v, want io.EOF", err)
	}
	c.SetDeadline(time.Unix(1, 0))
	if _, _, err := c.Recv(buf, 0); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("recv past the deadline: %v", err)
	}
}

func TestListenNames(t *testing.T) {
	path, l := listenTest(t)
	if _, err := Listen(path, false); !errors.Is(err, ErrInUse) {
		t.Fatalf("second Listen on a live name: %v", err)
	}
	l.Close()
	if _, err := Dial(context.Background(), path); !errors.Is(err, ErrNoListener) {
		t.Fatalf("Dial after Close: %v", err)
	}
	// A stale socket, left by a listener that died, is replaced.
	stale, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(stale, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	unix.Close(stale)
	if _, err := Dial(context.Background(), path); !errors.Is(err, ErrNoListener) {
		t.Fatalf("Dial to a stale socket: %v", err)
	}
	l2, err := Listen(path, false)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	l2.Close()
	// A file that is not a socket is never removed.
	os.WriteFile(path, []byte("keep"), 0o600)
	if _, err := Listen(path, false); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("Listen over a regular file: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "keep" {
		t.Error("a regular file was replaced")
	}
}

// TestCloseRemovesOnlyItsOwnSocket: a listener whose socket file was
// removed and taken by a successor leaves the successor's file alone when
// it closes.
func TestCloseRemovesOnlyItsOwnSocket(t *testing.T) {
	path, first := listenTest(t)
	os.Remove(path) // by hand, say: the name looks free
	second, err := Listen(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	first.Close()
	c, err := Dial(context.Background(), path)
	if err != nil {
		t.Fatalf("the successor's socket is gone after its predecessor closed: %v", err)
	}
	c.Close()
	second.Close()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Fatalf("socket file left after its own listener closed: %v", err)
	}
}

func TestSharedListenerMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared.sock")
	l, err := Listen(path, true)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o666 {
		t.Fatalf("shared socket mode %v, %v", fi.Mode().Perm(), err)
	}
}

func TestRuntimeDirPolicy(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rt")
	got, err := RuntimeDir(dir)
	if err != nil || got != dir {
		t.Fatalf("RuntimeDir = %q, %v", got, err)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("created with mode %v", fi.Mode().Perm())
	}
	// Open to others, or shared with a group (a volume shared by
	// containers of one group, say), a directory is refused: only an
	// absolute socket path puts a link in such a directory.
	for _, mode := range []os.FileMode{0o755, 0o750, 0o770, os.ModeSetgid | 0o770, 0o701} {
		os.Chmod(dir, mode)
		if _, err := RuntimeDir(dir); err == nil || !strings.Contains(err.Error(), "mode") {
			t.Errorf("a directory of mode %v: %v", mode, err)
		}
	}
	os.Chmod(dir, 0o700)
	if os.Getuid() == 0 {
		os.Chown(dir, 65534, 65534)
		if _, err := RuntimeDir(dir); err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
			t.Errorf("a directory of another user: %v", err)
		}
	}
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	if _, err := RuntimeDir(file); err == nil {
		t.Error("a regular file accepted as the runtime dir")
	}
}

func TestNames(t *testing.T) {
	dir := t.TempDir()
	if _, err := EndpointPath(dir, strings.Repeat("n", 120)); err == nil {
		t.Error("a socket path over the kernel's limit accepted")
	}
	p, err := EndpointPath(dir, "a")
	if err != nil || p != filepath.Join(dir, "a.sock") {
		t.Fatalf("EndpointPath = %q, %v", p, err)
	}
	for _, bad := range []string{"/a/../b", "/a//b", "/" + strings.Repeat("x", 107), "/a\x00b"} {
		if CheckPathName(bad) == nil {
			t.Errorf("CheckPathName(%q) accepted", bad)
		}
	}
	if !IsPathName("/x") || IsPathName("x") {
		t.Error("IsPathName")
	}
	l, err := Listen(p, false)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	os.WriteFile(filepath.Join(dir, "b.sock"), nil, 0o600) // not a socket
	names, err := ListNames(dir)
	if err != nil || len(names) != 1 || names[0] != (Entry{Name: "a", Path: p}) {
		t.Fatalf("ListNames = %v, %v", names, err)
	}
}

func TestWatchDir(t *testing.T) {
	dir := t.TempDir()
	w, err := WatchDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Wait(time.Now().Add(10 * time.Millisecond)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("quiet directory: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "new"), nil, 0o600)
	if err := w.Wait(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatalf("a new entry was not reported: %v", err)
	}
}

// dup returns a second handle to the object behind h, as passing it to a
// peer would.
func dup(h Handle) (Handle, error) {
	fd, err := unix.FcntlInt(uintptr(h.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return Handle{}, err
	}
	return Handle{fd: fd, ok: true}, nil
}

// doorbellAndPeerHandle makes a doorbell, closed when the test ends, and
// the handle to it that its peer would get.
func doorbellAndPeerHandle(t *testing.T) (*Doorbell, Handle) {
	t.Helper()
	d, err := NewDoorbell()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	h, err := dup(d.Handle())
	if err != nil {
		t.Fatal(err)
	}
	return d, h
}

// TestBellOutsidePoller checks that a Bell rings through a descriptor of
// its own that the runtime's poller does not watch (else each ring would
// wake this process's poller thread for nothing), that OpenBell takes the
// handle, and that rings racing Close are dropped.
func TestBellOutsidePoller(t *testing.T) {
	d, h := doorbellAndPeerHandle(t)
	b, err := OpenBell(h)
	if err != nil {
		t.Fatal(err)
	}
	watched := pollerWatches(t)
	if watched[b.fd] {
		t.Errorf("the bell's descriptor %d is in the poller's set", b.fd)
	}
	if !watched[d.h.fd] {
		t.Errorf("the doorbell's descriptor %d is not in the poller's set: the check sees nothing", d.h.fd)
	}
	b.Ring()
	if err := d.Wait(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				b.Ring()
			}
		}()
	}
	b.Close()
	wg.Wait()
	if err := b.Close(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("second Close: %v, want os.ErrClosed", err)
	}
}

// pollerWatches returns the descriptors that any epoll instance of this
// process watches, from /proc/self/fdinfo.
func pollerWatches(t *testing.T) map[int]bool {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	watched := map[int]bool{}
	for _, e := range fds {
		if link, _ := os.Readlink("/proc/self/fd/" + e.Name()); link != "anon_inode:[eventpoll]" {
			continue
		}
		info, err := os.ReadFile("/proc/self/fdinfo/" + e.Name())
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(info), "\n") {
			var fd int
			if _, err := fmt.Sscanf(line, "tfd: %d", &fd); err == nil {
				watched[fd] = true
			}
		}
	}
	return watched
}

// TestSentHandlesStayAsTheyWere: sending a doorbell leaves its eventfd
// non-blocking (a blocking one would make every wait on it hold a thread
// and ignore deadlines, and a peer need not set the flag back: the C
// library does not), and a received handle is not registered with the
// poller: a Bell rings through it outside the poller, and registering it
// only to drop it again cost each dial two epoll_ctl calls.
func TestSentHandlesStayAsTheyWere(t *testing.T) {
	c, s := connPair(t)
	d, err := NewDoorbell()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := c.Send([]byte("bell"), d.Handle()); err != nil {
		t.Fatal(err)
	}
	flags, err := unix.FcntlInt(uintptr(d.h.fd), unix.F_GETFL, 0)
	if err != nil || flags&unix.O_NONBLOCK == 0 {
		t.Errorf("the doorbell's flags after Send: %#x, %v; want O_NONBLOCK", flags, err)
	}
	buf := make([]byte, 16)
	_, hs, err := s.Recv(buf, 1)
	if err != nil || len(hs) != 1 {
		t.Fatalf("Recv: %d handles, %v", len(hs), err)
	}
	if pollerWatches(t)[hs[0].fd] {
		t.Errorf("the received descriptor %d is in the poller's set", hs[0].fd)
	}
	// A deadline still ends a wait on the doorbell that was sent.
	if err := d.Wait(time.Now().Add(10 * time.Millisecond)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("wait past the deadline: %v", err)
	}
	CloseHandles(hs)
}

// TestDoorbellMadeBlockingByPeer: the peer shares our eventfd's file
// description and can clear O_NONBLOCK on it. A wait must still end at its
// deadline (a plain read of the empty eventfd would block the thread for
// good), and still see a ring.
func TestDoorbellMadeBlockingByPeer(t *testing.T) {
	d, h := doorbellAndPeerHandle(t)
	defer h.Close()
	flags, err := unix.FcntlInt(uintptr(h.fd), unix.F_GETFL, 0)
	if err == nil {
		_, err = unix.FcntlInt(uintptr(h.fd), unix.F_SETFL, flags&^unix.O_NONBLOCK)
	}
	if err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- d.Wait(time.Now().Add(20 * time.Millisecond)) }()
	select {
	case err := <-waited:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("wait: %v, want a timeout", err)
		}
	case <-time.After(10 * time.Second):
		d.Ring() // let the goroutine go
		t.Fatal("a wait on a doorbell the peer made blocking ignored its deadline")
	}
	go unix.Write(h.fd, one[:])
	if err := d.Wait(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatalf("ring after the peer made the doorbell blocking: %v", err)
	}
}

// blockAndFill does what a hostile peer can do to an eventfd whose file
// description it shares: clear O_NONBLOCK and fill the counter, so that
// the next ring (a write of one) blocks.
func blockAndFill(t *testing.T, fd int) {
	t.Helper()
	if err := fill(fd); err != nil {
		t.Fatal(err)
	}
}

// fill is blockAndFill for any goroutine. It empties the counter first,
// while the eventfd is still non-blocking, so that its own write fits.
func fill(fd int) error {
	var count [8]byte
	unix.Read(fd, count[:])
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err == nil {
		_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, flags&^unix.O_NONBLOCK)
	}
	var full [8]byte
	binary.NativeEndian.PutUint64(full[:], 1<<64-2)
	if err == nil {
		_, err = unix.Write(fd, full[:])
	}
	return err
}

// fastRingWatch makes the watchdog look every 10 ms for the test.
func fastRingWatch(t *testing.T) {
	testRingWatchEvery.Store(int64(10 * time.Millisecond))
	t.Cleanup(func() { testRingWatchEvery.Store(0) })
}

// ringsWithin rings with ring on another goroutine and fails the test
// unless it returns within 10 s.
func ringsWithin(t *testing.T, what string, ring func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { ring(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: a ring the peer made blocking was never freed", what)
	}
}

// TestBellMadeBlockingByPeer: a peer clears O_NONBLOCK on the doorbell it
// gave us and fills its counter. Our ring blocks, until the watchdog frees
// it and reports the peer; later rings go nowhere, and Close returns.
func TestBellMadeBlockingByPeer(t *testing.T) {
	fastRingWatch(t)
	peer, h := doorbellAndPeerHandle(t) // peer's doorbell, h our handle of it
	b, err := OpenBell(h)
	if err != nil {
		t.Fatal(err)
	}
	hostile := make(chan struct{})
	b.OnHostile(func() { close(hostile) })
	b.Ring() // rings normally
	if err := peer.Wait(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatalf("an honest ring: %v", err)
	}
	blockAndFill(t, peer.h.fd)
	ringsWithin(t, "first ring", b.Ring)
	select {
	case <-hostile:
	case <-time.After(10 * time.Second):
		t.Fatal("the blocked ring was freed, but OnHostile never ran")
	}
	// A later ring goes nowhere: the counter, emptied, stays empty. (The
	// watchdog made the eventfd non-blocking again.)
	var count [8]byte
	unix.Read(peer.h.fd, count[:])
	ringsWithin(t, "later ring", b.Ring)
	if n, err := unix.Read(peer.h.fd, count[:]); err != unix.EAGAIN {
		t.Errorf("read after a ring of a peer found hostile: %d, %v; want the ring dropped (EAGAIN)", n, err)
	}
	ringsWithin(t, "Close", func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	})
}

// TestDoorbellStuckUnderClose: a ring of our own doorbell blocked by the
// peer while Close runs. The runtime's close waits for the ring, and the
// watchdog, looking at a copy of the descriptor by then, frees it.
func TestDoorbellStuckUnderClose(t *testing.T) {
	fastRingWatch(t)
	d, h := doorbellAndPeerHandle(t)
	defer h.Close()
	rings := d.rg.begun.Load()
	blockAndFill(t, h.fd)
	go d.Ring()
	for d.rg.begun.Load() == rings {
		runtime.Gosched() // until the ring is under way
	}
	ringsWithin(t, "Close", func() { d.Close() })
}

// TestDoorbellAttackedAgain: a peer that blocks our doorbell again right
// after the watchdog freed it, when our report of the first attack rings
// the doorbell once more (as a failing endpoint wakes its waiters). That
// ring must be freed too, and Close must end.
func TestDoorbellAttackedAgain(t *testing.T) {
	fastRingWatch(t)
	d, h := doorbellAndPeerHandle(t)
	defer h.Close()
	reported := make(chan error, 1)
	d.OnHostile(func() {
		err := fill(h.fd) // the peer, again
		d.Ring()
		reported <- err
	})
	blockAndFill(t, h.fd)
	ringsWithin(t, "ring", d.Ring)
	select {
	case err := <-reported:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the report's own ring, blocked by a second attack, was never freed")
	}
	ringsWithin(t, "Close", func() { d.Close() })
}

// TestRingWatchIdle: the watchdog runs only while a doorbell or bell is
// open, so an idle process with no link has no timer of ours.
func TestRingWatchIdle(t *testing.T) {
	d, err := NewDoorbell()
	if err != nil {
		t.Fatal(err)
	}
	watch.mu.Lock()
	running := watch.timer != nil
	watch.mu.Unlock()
	if !running {
		t.Error("no watchdog with a doorbell open")
	}
	d.Close()
	watch.mu.Lock()
	n, running := len(watch.ringers), watch.timer != nil
	watch.mu.Unlock()
	if n != 0 || running {
		t.Errorf("after the last close: %d watched, timer running %v; want none and stopped", n, running)
	}
}

// TestNudgeInterleaving: a whole Wait between Nudge's count and its past
// deadline must not leave that deadline in force for the waits after it
// (they would return at once, and a parked wait would spin).
func TestNudgeInterleaving(t *testing.T) {
	d, err := NewDoorbell()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	d.nudges.Add(1) // Nudge, first step
	if err := d.Wait(time.Time{}); err != nil {
		t.Fatalf("nudged wait: %v", err)
	}
	_ = d.f.SetReadDeadline(time.Unix(1, 0)) // Nudge, the rest
	d.nudged.Add(1)
	for i := range 3 {
		done := make(chan error, 1)
		go func() { done <- d.Wait(time.Time{}) }()
		select {
		case err := <-done:
			t.Fatalf("wait %d after the nudge, no deadline, no ring: %v at once", i, err)
		case <-time.After(50 * time.Millisecond): // it blocks, as it should
			d.Ring()
			<-done
		}
	}
}

// TestNudgeStress: nudges that land next to a Wait's start, at varying
// offsets, never leave a later Wait failing with a ring pending.
func TestNudgeStress(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("needs two processors")
	}
	d, err := NewDoorbell()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var start, nudged, delay atomic.Int64
	quit := make(chan struct{})
	defer close(quit)
	go func() {
		for r := int64(1); ; r++ {
			for start.Load() < r {
				select {
				case <-quit:
					return
				default:
				}
			}
			for range delay.Load() {
			}
			d.Nudge()
			nudged.Store(r)
		}
	}()
	for r, end := int64(1), time.Now().Add(2*time.Second); time.Now().Before(end); r++ {
		delay.Store(r % 200)
		start.Store(r)
		if err := d.Wait(time.Time{}); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal(err)
		}
		for nudged.Load() < r {
		}
		d.Ring()
		if err := d.Wait(time.Time{}); err != nil {
			t.Fatalf("round %d: wait with no deadline and a ring pending: %v", r, err)
		}
	}
}
