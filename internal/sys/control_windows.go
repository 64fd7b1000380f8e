package sys

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
)

// On Windows a control connection is a message-mode named pipe opened for
// overlapped I/O and wrapped in an os.File, which puts it on Go's
// netpoller (an I/O completion port): a pending read parks the goroutine,
// deadlines work, and the read ends with io.EOF when the peer process is
// gone, whatever killed it.
//
// A pipe carries bytes, not handles, so each packet ends with a trailer
// (PROTOCOL.md, Windows): the values of the handles it carries in the
// sender's handle table, 8 bytes each, little endian, then one byte with
// their number. The receiver duplicates each one out of the sender's
// process (DuplicateHandle, source = the peer), so that every handle it
// gets is a fresh one it owns, and a peer that sends garbage values can
// only make it duplicate the peer's own objects, or fail. A packet that is
// the single byte finMarker means the sender called CloseWrite.
const (
	maxWireHandles = 16
	finMarker      = 0xFF
	handleSize     = 8
)

// peerAccess is what a side needs on the peer's process: duplicate handles
// out of it, and look up its user.
const peerAccess = windows.PROCESS_DUP_HANDLE | windows.PROCESS_QUERY_LIMITED_INFORMATION

// Conn is a control connection: on Windows one end of a named pipe.
type Conn struct {
	f    *os.File
	h    windows.Handle // the pipe, owned by f
	peer windows.Handle // the peer's process, 0 if it could not be opened
	cred Cred
	cerr error // why cred is unknown

	rmu  sync.Mutex
	rbuf []byte
	eof  bool // the peer called CloseWrite, guarded by rmu

	wmu       sync.Mutex
	wclosed   bool         // guarded by wmu
	wdeadline atomic.Int64 // Unix nanoseconds, 0 for none
	wclose    atomic.Bool  // Close has begun: no new write may use h

	unreg func() // the listener's bookkeeping of its instances
	once  sync.Once
}

// Dial connects to the listener at path. Nobody listening (no pipe of that
// name) is ErrNoListener; a pipe this user may not open, or a server that
// runs as another user, is ErrAccess: the pipe namespace is open to every
// user, so this is what keeps a name from being squatted. While every
// instance of the pipe is busy it waits, as a socket's backlog would,
// until ctx ends.
func Dial(ctx context.Context, path string) (*Conn, error) {
	if err := checkPipeName(path, false); err != nil {
		return nil, fmt.Errorf("%w: %q: %w", ErrNoListener, path, err)
	}
	p16, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return nil, err
	}
	var h windows.Handle
	for {
		// SECURITY_IDENTIFICATION: the server may learn who we are but not
		// act as us.
		h, err = windows.CreateFile(p16, windows.GENERIC_READ|windows.GENERIC_WRITE, 0, nil, windows.OPEN_EXISTING,
			windows.FILE_FLAG_OVERLAPPED|windows.SECURITY_SQOS_PRESENT|windows.SECURITY_IDENTIFICATION, 0)
		if err == nil {
			break
		}
		switch {
		case errors.Is(err, windows.ERROR_FILE_NOT_FOUND) || errors.Is(err, windows.ERROR_PATH_NOT_FOUND):
			return nil, fmt.Errorf("%w: %s: %w", ErrNoListener, path, err)
		case errors.Is(err, windows.ERROR_ACCESS_DENIED):
			return nil, fmt.Errorf("%w: %s: %w", ErrAccess, path, err)
		case !errors.Is(err, windows.ERROR_PIPE_BUSY):
			return nil, fmt.Errorf("open pipe %s: %w", path, err)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("open pipe %s: %w: %w", path, err, ctx.Err())
		}
		// Busy instances and no existence lock: the listener is gone, and
		// what remains are connections it accepted.
		if !lockHeld(path) {
			return nil, fmt.Errorf("%w: %s: %w, and no listener holds the name", ErrNoListener, path, err)
		}
		// Every instance is taken: wait for the server's next one, in
		// slices, to notice ctx ending.
		procWaitNamedPipeW.Call(uintptr(unsafe.Pointer(p16)), pipeWaitSlice)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("open pipe %s: %w: %w", path, err, ctx.Err())
		}
	}
	mode := uint32(windows.PIPE_READMODE_MESSAGE)
	if err := windows.SetNamedPipeHandleState(h, &mode, nil, nil); err != nil {
		windows.CloseHandle(h)
		return nil, fmt.Errorf("pipe %s: message mode: %w", path, err)
	}
	var pid uint32
	if err := windows.GetNamedPipeServerProcessId(h, &pid); err != nil {
		windows.CloseHandle(h)
		return nil, fmt.Errorf("pipe %s: server process: %w", path, err)
	}
	c := newConn(h, path, pid)
	if c.cerr == nil && !c.cred.SameUser {
		c.Close()
		return nil, fmt.Errorf("%w: the server of %s (pid %d) runs as another user", ErrAccess, path, pid)
	}
	return c, nil
}

// lockHeld reports whether some process holds the existence lock of the
// pipe at path (Listen).
func lockHeld(path string) bool {
	n, err := windows.UTF16PtrFromString(lockName(path))
	if err != nil {
		return false
	}
	h, err := windows.OpenEvent(windows.SYNCHRONIZE, false, n)
	if err == nil {
		windows.CloseHandle(h)
		return true
	}
	// Access denied: it exists, someone else's.
	return !errors.Is(err, windows.ERROR_FILE_NOT_FOUND)
}

// newConn wraps the connected pipe h, whose peer is process pid, and
// looks the peer up: its process handle for duplicating what it sends, its
// user for PeerCred.
func newConn(h windows.Handle, path string, pid uint32) *Conn {
	c := &Conn{h: h, cred: Cred{PID: int(pid), UID: -1, GID: -1}}
	c.f = os.NewFile(uintptr(h), path)
	proc, err := windows.OpenProcess(peerAccess, false, pid)
	if err != nil {
		c.cerr = fmt.Errorf("open peer process %d: %w", pid, err)
		return c
	}
	// The pid was read from the pipe before the process was opened: if the
	// peer died in between, the pid may name another process now. The
	// pipe still being connected after the open proves it did not.
	var avail uint32
	if r, _, err := procPeekNamedPipe.Call(uintptr(h), 0, 0, 0, uintptr(unsafe.Pointer(&avail)), 0); r == 0 {
		windows.CloseHandle(proc)
		c.cerr = fmt.Errorf("peer process %d: pipe: %w", pid, err)
		return c
	}
	c.peer = proc
	same, err := sameUser(proc)
	if err != nil {
		c.cerr = fmt.Errorf("peer process %d: %w", pid, err)
		return c
	}
	c.cred.SameUser = same
	return c
}

// sameUser reports whether process proc runs as this process's user.
func sameUser(proc windows.Handle) (bool, error) {
	var tok windows.Token
	if err := windows.OpenProcessToken(proc, windows.TOKEN_QUERY, &tok); err != nil {
		return false, fmt.Errorf("open token: %w", err)
	}
	defer tok.Close()
	u, err := tok.GetTokenUser()
	if err != nil {
		return false, fmt.Errorf("token user: %w", err)
	}
	own, err := ownSID()
	if err != nil {
		return false, err
	}
	return u.User.Sid.Equals(own), nil
}

// Send writes one packet carrying b and the handles hs. The handles must
// stay open until the peer has read the packet: the peer duplicates them
// out of this process when it does.
func (c *Conn) Send(b []byte, hs ...Handle) error {
	if len(hs) > maxWireHandles {
		return fmt.Errorf("%w: %d handles in one packet, at most %d", ErrTooManyHandles, len(hs), maxWireHandles)
	}
	pkt := make([]byte, len(b), len(b)+len(hs)*handleSize+1)
	copy(pkt, b)
	for _, h := range hs {
		pkt = binary.LittleEndian.AppendUint64(pkt, uint64(h.h))
	}
	pkt = append(pkt, byte(len(hs)))
	return c.write(pkt)
}

func (c *Conn) write(pkt []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wclosed {
		return fmt.Errorf("send: %w", io.ErrClosedPipe)
	}
	return c.writeFile(pkt)
}

// writeFile writes one packet with an overlapped WriteFile of its own
// rather than through c.f: os.File keeps a file offset that its Read and
// Write update without synchronisation (internal/poll, Go 1.26), which the
// race detector reports when Recv and Send overlap, as they do on every
// link. The event's low bit keeps the completion off Go's I/O completion
// port, which only knows its own operations. A write to a pipe with room
// completes at once; one that waits for the peer to read blocks this
// thread until the peer reads, the deadline passes or Close.
func (c *Conn) writeFile(pkt []byte) error {
	if c.wclose.Load() {
		return &os.PathError{Op: "write", Path: c.f.Name(), Err: os.ErrClosed}
	}
	ev, err := windows.CreateEvent(nil, 1, 0, nil)
	if err != nil {
		return fmt.Errorf("send: CreateEvent: %w", err)
	}
	ov := &windows.Overlapped{HEvent: ev | 1}
	owned := true // ev, ov and pkt are ours again: no write of them is pending
	defer func() {
		if owned {
			windows.CloseHandle(ev)
		}
	}()
	var n uint32
	err = windows.WriteFile(c.h, pkt, &n, ov)
	if errors.Is(err, windows.ERROR_IO_PENDING) {
		// The peer is not reading. Wait in slices, so that Close and the
		// deadline end the wait: nothing else would.
		for {
			slice := 50 * time.Millisecond
			var late error
			if d := c.wdeadline.Load(); d != 0 {
				if left := time.Until(time.Unix(0, d)); left <= 0 {
					late = os.ErrDeadlineExceeded
				} else {
					slice = min(slice, left)
				}
			}
			if c.wclose.Load() {
				late = os.ErrClosed
			}
			if late != nil {
				owned = c.cancelWrite(ov, ev, pkt)
				return &os.PathError{Op: "write", Path: c.f.Name(), Err: late}
			}
			r, _ := windows.WaitForSingleObject(ev, uint32(slice.Milliseconds())+1)
			if r == windows.WAIT_OBJECT_0 {
				break
			}
		}
		err = windows.GetOverlappedResult(c.h, ov, &n, false)
	}
	switch {
	case err != nil && c.wclose.Load():
		return &os.PathError{Op: "write", Path: c.f.Name(), Err: os.ErrClosed}
	case err != nil:
		return &os.PathError{Op: "write", Path: c.f.Name(), Err: err}
	case int(n) != len(pkt):
		return fmt.Errorf("send: short write of %d of %d bytes", n, len(pkt))
	}
	return nil
}

// cancelWrite cancels the pending write ov, of pkt, signalled on ev, and
// reports whether it ended: until it does, the system may still write to
// ov and read pkt. Windows ends a cancelled write at once; Wine once never
// did (a CI run of TestSendToPeerNotReading hung ten minutes in a wait for
// it), so after about a second the wait goes on in a goroutine that keeps
// the three alive and closes ev at the end, and the caller returns.
func (c *Conn) cancelWrite(ov *windows.Overlapped, ev windows.Handle, pkt []byte) bool {
	for range 20 {
		windows.CancelIoEx(c.h, ov)
		if r, _ := windows.WaitForSingleObject(ev, 50); r == windows.WAIT_OBJECT_0 {
			return true
		}
	}
	go func() {
		var n uint32
		windows.GetOverlappedResult(c.h, ov, &n, true)
		windows.CloseHandle(ev)
		runtime.KeepAlive(pkt)
	}()
	return false
}

// YieldToPeer does nothing here: the Linux socket's wake-up of a reader on
// the writer's CPU, which it is for, has not been measured on Windows.
func (c *Conn) YieldToPeer() {}

// Recv reads one packet into b and returns its length and the handles it
// carried, at most maxHandles: a packet with more is refused with
// ErrTooManyHandles, and none of them is taken. A handle that cannot be
// duplicated out of the peer is ErrBadHandle. End of stream is io.EOF: the
// peer called CloseWrite, closed its end, or its process is gone.
// The deadline set with SetDeadline applies.
func (c *Conn) Recv(b []byte, maxHandles int) (int, []Handle, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.eof {
		return 0, nil, io.EOF
	}
	// Room for a few handles more than allowed, so that an excess is seen
	// rather than taken for a truncated packet.
	size := len(b) + (maxHandles+4)*handleSize + 1
	if cap(c.rbuf) < size {
		c.rbuf = make([]byte, size)
	}
	buf := c.rbuf[:size]
	n, err := c.f.Read(buf)
	switch {
	case errors.Is(err, windows.ERROR_MORE_DATA):
		// Message mode: the rest of a packet too long for buf waits for
		// the next read. Drain it, so that the next Recv starts at a
		// packet boundary.
		for errors.Is(err, windows.ERROR_MORE_DATA) {
			_, err = c.f.Read(buf)
		}
		if err == nil {
			err = fmt.Errorf("%w: truncated packet", ErrTooManyHandles)
		}
		return 0, nil, eofOf(err)
	case err != nil || n == 0:
		// A message of no bytes at all reads as io.EOF through os.File:
		// the peer is hanging up or broken, and it is the end either way.
		if err = eofOf(err); err == io.EOF || err == nil {
			c.eof = true
			err = io.EOF
		}
		return 0, nil, err
	}
	count := int(buf[n-1])
	if count == finMarker && n == 1 {
		c.eof = true
		return 0, nil, io.EOF
	}
	if count > maxHandles {
		return 0, nil, fmt.Errorf("%w: got %d, allowed %d", ErrTooManyHandles, count, maxHandles)
	}
	body := n - 1 - count*handleSize
	if body < 0 {
		return 0, nil, fmt.Errorf("%w: packet of %d bytes cannot carry %d handles", ErrBadHandle, n, count)
	}
	if body > len(b) {
		return 0, nil, fmt.Errorf("%w: truncated packet", ErrTooManyHandles)
	}
	copy(b, buf[:body])
	var hs []Handle
	for i := range count {
		v := binary.LittleEndian.Uint64(buf[body+i*handleSize:])
		h, err := c.pull(v)
		if err != nil {
			CloseHandles(hs)
			return 0, nil, err
		}
		hs = append(hs, h)
	}
	return body, hs, nil
}

// pull duplicates the handle whose value in the peer's process is v.
func (c *Conn) pull(v uint64) (Handle, error) {
	// Handle values fit in 32 bits (they are shared with 32-bit
	// processes); the negative ones are pseudo-handles, such as "the
	// current process", which would name the peer itself.
	if v == 0 || v > 0x7FFFFFFF {
		return Handle{}, fmt.Errorf("%w: handle value %#x", ErrBadHandle, v)
	}
	if c.peer == 0 {
		return Handle{}, fmt.Errorf("%w: cannot take handles from the peer: %w", ErrBadHandle, c.cerr)
	}
	var h windows.Handle
	err := windows.DuplicateHandle(c.peer, windows.Handle(v), currentProcess, &h, 0, false, windows.DUPLICATE_SAME_ACCESS)
	if err != nil {
		return Handle{}, fmt.Errorf("%w: duplicate the peer's handle %#x: %w", ErrBadHandle, v, err)
	}
	return Handle{h}, nil
}

// eofOf maps the ways a pipe reports that its other end is gone to
// io.EOF.
func eofOf(err error) error {
	if errors.Is(err, windows.ERROR_BROKEN_PIPE) || errors.Is(err, windows.ERROR_PIPE_NOT_CONNECTED) ||
		errors.Is(err, windows.ERROR_NO_DATA) {
		return io.EOF
	}
	return err
}

// PeerCred returns the identity of the peer: its process id (from the
// pipe: GetNamedPipeClientProcessId or GetNamedPipeServerProcessId) and
// whether its token's user is this process's. Windows has no numeric user
// or group ids: UID and GID are -1 and Groups is nil.
func (c *Conn) PeerCred() (Cred, error) {
	if c.cerr != nil {
		return Cred{}, c.cerr
	}
	return c.cred, nil
}

// SetDeadline bounds Send and Recv; a time in the past cuts off a call in
// progress. A zero t means none.
func (c *Conn) SetDeadline(t time.Time) error {
	var d int64
	if !t.IsZero() {
		d = t.UnixNano()
	}
	c.wdeadline.Store(d)
	return c.f.SetDeadline(t)
}

// CloseWrite shuts down the sending side: the peer reads end of file, as if
// this process were gone, while this side may still read. A pipe cannot
// be half closed, so this sends the end-of-stream packet.
func (c *Conn) CloseWrite() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wclosed {
		return nil
	}
	c.wclosed = true
	return c.writeFile([]byte{finMarker})
}

// Close closes the connection.
func (c *Conn) Close() error {
	err := os.ErrClosed
	c.once.Do(func() {
		// A write blocked on a peer that does not read gives up within a
		// wait slice; the lock waits it out, so that no write reaches the
		// handle's number after it is closed and perhaps reused.
		c.wclose.Store(true)
		c.wmu.Lock()
		c.wmu.Unlock()
		err = c.f.Close()
		if c.peer != 0 {
			windows.CloseHandle(c.peer)
		}
		if c.unreg != nil {
			c.unreg()
		}
	})
	return err
}

// Listener accepts control connections on a pipe name. It holds the
// name's existence lock and keeps listenBacklog instances of the pipe
// waiting for a client (ConnectNamedPipe), so that clients that come
// while nobody calls Accept connect at once, as into a socket's backlog;
// beyond that, clients wait in Dial.
type Listener struct {
	path   string
	p16    *uint16
	sa     *windows.SecurityAttributes
	lock   windows.Handle
	ready  chan struct{} // poked by the connect events
	closed chan struct{}

	mu      sync.Mutex // guards pending; Accept calls are serialised by amu
	amu     sync.Mutex
	pending []*instance
	once    sync.Once
}

// listenBacklog is the number of pipe instances kept waiting for a client.
const listenBacklog = 4

// instance is one pipe instance waiting in ConnectNamedPipe.
type instance struct {
	h    windows.Handle
	ov   windows.Overlapped // must stay put until the connect completes
	wait *registeredWait
	done bool
}

// Listen takes the name at path and starts listening on it. The name is
// owned through the existence lock, an event named after the pipe in
// Global\ that this process holds: it vanishes with the process, so a
// dead server never leaves a stale name, and a second Listen while a live
// listener has it is ErrInUse. The first pipe instance is also created
// with FILE_FLAG_FIRST_PIPE_INSTANCE, which Windows (though not Wine)
// enforces against any other process that already has a pipe of that
// name. The pipe and the lock are for this user only; shared lets every
// user connect, for a server that admits other users by credentials.
func Listen(path string, shared bool) (_ *Listener, err error) {
	if err := checkPipeName(path, false); err != nil {
		return nil, fmt.Errorf("listen %q: %w", path, err)
	}
	l := &Listener{path: path, ready: make(chan struct{}, 1), closed: make(chan struct{})}
	if l.p16, err = windows.UTF16PtrFromString(path); err != nil {
		return nil, err
	}
	lockSA, err := ownSecurity(false)
	if err != nil {
		return nil, err
	}
	if l.sa, err = ownSecurity(shared); err != nil {
		return nil, err
	}
	ln, err := windows.UTF16PtrFromString(lockName(path))
	if err != nil {
		return nil, err
	}
	lock, err := windows.CreateEvent(lockSA, 1, 0, ln)
	switch {
	case errors.Is(err, windows.ERROR_ALREADY_EXISTS):
		// x/sys returns the live handle with this error: closing it is
		// what keeps the name the holder's alone.
		windows.CloseHandle(lock)
		return nil, fmt.Errorf("%w: %s", ErrInUse, path)
	case errors.Is(err, windows.ERROR_ACCESS_DENIED):
		// Someone else's lock of that name, which we may not open.
		return nil, fmt.Errorf("%w: %s (held by another user)", ErrInUse, path)
	case err != nil:
		return nil, fmt.Errorf("existence lock of %s: %w", path, err)
	}
	l.lock = lock
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	first := !ownsInstances(path)
	for range listenBacklog {
		if err := l.addInstance(first); err != nil {
			return nil, err
		}
		first = false
	}
	return l, nil
}

// addInstance creates a pipe instance and starts waiting for a client on
// it.
func (l *Listener) addInstance(first bool) error {
	flags := uint32(pipeAccessFlags)
	if first {
		flags |= windows.FILE_FLAG_FIRST_PIPE_INSTANCE
	}
	h, err := windows.CreateNamedPipe(l.p16, flags, pipeModeFlags, windows.PIPE_UNLIMITED_INSTANCES,
		pipeBufferSize, pipeBufferSize, 0, l.sa)
	if err != nil {
		if first && errors.Is(err, windows.ERROR_ACCESS_DENIED) {
			return fmt.Errorf("%w: %s (a pipe of that name exists)", ErrInUse, l.path)
		}
		return fmt.Errorf("create pipe %s: %w", l.path, err)
	}
	in := &instance{h: h}
	// The pipe is not yet on any completion port, so the connect
	// completes by signalling this event only. Once connected, the handle
	// goes to os.NewFile and Go's netpoller.
	if in.ov.HEvent, err = windows.CreateEvent(nil, 1, 0, nil); err != nil {
		windows.CloseHandle(h)
		return fmt.Errorf("CreateEvent: %w", err)
	}
	err = windows.ConnectNamedPipe(h, &in.ov)
	switch {
	case errors.Is(err, windows.ERROR_IO_PENDING):
		if in.wait, err = registerWait(in.ov.HEvent, l.ready, true); err != nil {
			windows.CancelIoEx(h, &in.ov)
			var n uint32
			windows.GetOverlappedResult(h, &in.ov, &n, true)
			in.free(true)
			return err
		}
	case err == nil || errors.Is(err, windows.ERROR_PIPE_CONNECTED):
		// A client came between CreateNamedPipe and ConnectNamedPipe.
		in.done = true
		poke(l.ready)
	default:
		in.free(true)
		return fmt.Errorf("ConnectNamedPipe %s: %w", l.path, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.closed:
		// Close ran meanwhile and freed the instances it saw.
		windows.CancelIoEx(h, &in.ov)
		var n uint32
		windows.GetOverlappedResult(h, &in.ov, &n, true)
		in.free(true)
		return fmt.Errorf("accept %s: %w", l.path, net.ErrClosed)
	default:
	}
	l.pending = append(l.pending, in)
	trackInstance(l.path, 1)
	return nil
}

func poke(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// free releases what the instance holds besides a connected pipe, and the
// pipe too with pipe set.
func (in *instance) free(pipe bool) {
	if in.wait != nil {
		in.wait.stop()
		in.wait = nil
	}
	windows.CloseHandle(in.ov.HEvent)
	if pipe {
		windows.CloseHandle(in.h)
	}
}

// Accept waits for the next connection. After Close it returns an error
// matching net.ErrClosed.
func (l *Listener) Accept() (*Conn, error) {
	l.amu.Lock()
	defer l.amu.Unlock()
	for {
		in, cerr, err := l.takeConnected()
		if err != nil {
			return nil, err
		}
		if in == nil && l.pendingCount() == 0 {
			// An earlier replacement failed (out of resources, say): try
			// again, or nothing would ever connect.
			if err := l.addInstance(false); err != nil {
				return nil, err
			}
			continue
		}
		if in == nil {
			// The timer keeps the runtime from taking a process that only
			// waits for clients for deadlocked (see Doorbell.Wait).
			t := time.NewTimer(keepAlive)
			select {
			case <-l.ready:
			case <-t.C:
			case <-l.closed:
				t.Stop()
				return nil, fmt.Errorf("accept %s: %w", l.path, net.ErrClosed)
			}
			t.Stop()
			continue
		}
		// Replace it first, so that clients keep finding waiting
		// instances. If that fails, this client is still served; the next
		// Accept tries again.
		if err := l.addInstance(false); errors.Is(err, net.ErrClosed) {
			l.drop(in)
			return nil, err
		}
		var pid uint32
		if cerr == nil {
			cerr = windows.GetNamedPipeClientProcessId(in.h, &pid)
		}
		if cerr != nil {
			// A client that came and went.
			l.drop(in)
			continue
		}
		in.free(false)
		c := newConn(in.h, l.path, pid)
		path := l.path
		c.unreg = func() { trackInstance(path, -1) }
		return c, nil
	}
}

func (l *Listener) pendingCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.pending)
}

func (l *Listener) drop(in *instance) {
	in.free(true)
	trackInstance(l.path, -1)
}

// takeConnected removes and returns a pending instance whose connect has
// completed, with the connect's error, or nil if none has.
func (l *Listener) takeConnected() (*instance, error, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.closed:
		return nil, nil, fmt.Errorf("accept %s: %w", l.path, net.ErrClosed)
	default:
	}
	for i, in := range l.pending {
		var cerr error
		if !in.done {
			var n uint32
			cerr = windows.GetOverlappedResult(in.h, &in.ov, &n, false)
			if errors.Is(cerr, windows.ERROR_IO_INCOMPLETE) {
				continue
			}
			if errors.Is(cerr, windows.ERROR_PIPE_CONNECTED) {
				cerr = nil
			}
		}
		l.pending = append(l.pending[:i], l.pending[i+1:]...)
		// More may be ready: let the next look not wait.
		poke(l.ready)
		return in, cerr, nil
	}
	return nil, nil, nil
}

// Close stops listening: it closes the waiting instances, then gives the
// name up by closing the lock. Connections accepted before stay open.
func (l *Listener) Close() error {
	first := true
	l.once.Do(func() {
		first = false
		close(l.closed)
		l.mu.Lock()
		pending := l.pending
		l.pending = nil
		l.mu.Unlock()
		for _, in := range pending {
			// The connect must be over before its OVERLAPPED goes.
			windows.CancelIoEx(in.h, &in.ov)
			var n uint32
			windows.GetOverlappedResult(in.h, &in.ov, &n, true)
			in.free(true)
			trackInstance(l.path, -1)
		}
		if l.lock != 0 {
			windows.CloseHandle(l.lock)
		}
	})
	if first {
		return fmt.Errorf("close %s: %w", l.path, net.ErrClosed)
	}
	return nil
}

// This process's live instances per pipe name. Windows refuses
// FILE_FLAG_FIRST_PIPE_INSTANCE while any instance of the name exists,
// also a connection that an earlier listener of this process accepted
// and that is still open; the flag is there to refuse another process's
// pipe, so it is left out when the instances are ours.
var instances struct {
	sync.Mutex
	m map[string]int
}

func trackInstance(path string, d int) {
	instances.Lock()
	defer instances.Unlock()
	if instances.m == nil {
		instances.m = make(map[string]int)
	}
	key := strings.ToLower(path) // pipe names ignore case
	instances.m[key] += d
	if instances.m[key] <= 0 {
		delete(instances.m, key)
	}
}

func ownsInstances(path string) bool {
	instances.Lock()
	defer instances.Unlock()
	return instances.m[strings.ToLower(path)] > 0
}
