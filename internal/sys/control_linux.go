package sys

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Conn is a control connection: on Linux a SOCK_SEQPACKET unix socket,
// whose packets keep their boundaries and carry descriptors (SCM_RIGHTS).
// Every operation goes through the socket's RawConn, so a Conn works the
// same whether its socket came from Accept (a *net.UnixConn) or from Dial
// (an *os.File over a socket made here).
type Conn struct{ c socket }

// socket is what a Conn needs of the runtime's wrapper of its descriptor.
type socket interface {
	SyscallConn() (syscall.RawConn, error)
	SetDeadline(t time.Time) error
	Close() error
}

// Dial connects to the listener at path. Nobody listening (no socket file,
// or a stale one) is ErrNoListener; a socket this user may not connect to
// is ErrAccess.
//
// It makes the socket itself rather than through net.Dial, which would add
// a resolver pass and getsockname and getpeername calls to every link's
// set-up; a unix connect completes at once or fails (a full backlog is
// EAGAIN, as it is for net.Dial).
func Dial(ctx context.Context, path string) (*Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	for {
		err = unix.Connect(fd, &unix.SockaddrUnix{Name: path})
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		unix.Close(fd)
		err = &net.OpError{Op: "dial", Net: "unixpacket", Addr: &net.UnixAddr{Name: path, Net: "unixpacket"},
			Err: os.NewSyscallError("connect", err)}
		switch {
		case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ECONNREFUSED):
			return nil, fmt.Errorf("%w: %w", ErrNoListener, err)
		case errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM):
			return nil, fmt.Errorf("%w: %w", ErrAccess, err)
		}
		return nil, err
	}
	// A non-blocking descriptor: os.NewFile registers it with the poller,
	// so reads park the goroutine and deadlines work.
	return &Conn{os.NewFile(uintptr(fd), "unixpacket:"+path)}, nil
}

// Send writes one packet carrying b and the handles hs.
func (c *Conn) Send(b []byte, hs ...Handle) error {
	var oob []byte
	if len(hs) > 0 {
		fds := make([]int, len(hs))
		for i, h := range hs {
			if !h.ok {
				return fmt.Errorf("%w: no handle to send", ErrBadHandle)
			}
			fds[i] = h.fd
		}
		oob = unix.UnixRights(fds...)
	}
	rc, err := c.c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Write(func(fd uintptr) bool {
		_, serr = unix.SendmsgN(int(fd), b, oob, nil, unix.MSG_NOSIGNAL)
		return serr != unix.EAGAIN
	})
	if err == nil && serr != nil {
		err = os.NewSyscallError("sendmsg", serr)
	}
	return err
}

// YieldToPeer gives this thread's CPU away for a moment, after a Send that
// the peer was waiting for. A unix socket wakes its reader with the hint
// that the writer is about to sleep, so the kernel runs the reader on the
// writer's CPU, and only once the writer sleeps or its time slice ends: a
// server that went on with its own work after the welcome (making the
// Conn, the application's Accept, its first read) kept a client it had
// just answered waiting 50-70 µs (docs/wakeup.md, Dial). sched_yield lets
// the reader run now.
func (c *Conn) YieldToPeer() { YieldCPU() }

// Recv reads one packet into b and returns its length and the handles it
// carried, at most maxHandles: a packet with more is refused with
// ErrTooManyHandles and every handle in it closed. End of stream is
// io.EOF: the peer closed its end, or its process is gone.
// The deadline set with SetDeadline applies.
func (c *Conn) Recv(b []byte, maxHandles int) (int, []Handle, error) {
	rc, err := c.c.SyscallConn()
	if err != nil {
		return 0, nil, err
	}
	// Room for a few more than allowed, so an excess is seen (and closed)
	// rather than silently truncated.
	oob := make([]byte, unix.CmsgSpace((maxHandles+4)*4))
	var n, oobn, flags int
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		n, oobn, flags, _, rerr = unix.Recvmsg(int(fd), b, oob, unix.MSG_CMSG_CLOEXEC)
		return rerr != unix.EAGAIN
	})
	if err == nil {
		err = rerr
	}
	hs, herr := parseRights(oob[:oobn])
	if err == nil {
		err = herr
	}
	if err == nil && flags&(unix.MSG_CTRUNC|unix.MSG_TRUNC) != 0 {
		err = fmt.Errorf("%w: truncated packet (flags %#x)", ErrTooManyHandles, flags)
	}
	if err == nil && len(hs) > maxHandles {
		err = fmt.Errorf("%w: got %d, allowed %d", ErrTooManyHandles, len(hs), maxHandles)
	}
	if err == nil && n == 0 && len(hs) == 0 {
		err = io.EOF
	}
	if errors.Is(err, unix.ECONNRESET) {
		// The peer's end was destroyed with our packet unread: a listener
		// whose process died with us in its backlog. It is gone all the
		// same.
		err = io.EOF
	}
	if err != nil {
		CloseHandles(hs)
		return 0, nil, err
	}
	return n, hs, nil
}

func parseRights(oob []byte) ([]Handle, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("parse control message: %w", err)
	}
	var hs []Handle
	var perr error
	for i := range msgs {
		fds, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			perr = err
			continue
		}
		for _, fd := range fds {
			hs = append(hs, Handle{fd: fd, ok: true})
		}
	}
	return hs, perr
}

// PeerCred returns the credentials of the peer (SO_PEERCRED and
// SO_PEERGROUPS), as the kernel recorded them at connect time.
func (c *Conn) PeerCred() (Cred, error) {
	rc, err := c.c.SyscallConn()
	if err != nil {
		return Cred{}, err
	}
	var cred Cred
	var cerr error
	err = rc.Control(func(fd uintptr) {
		var u *unix.Ucred
		u, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if cerr != nil {
			return
		}
		cred = Cred{PID: int(u.Pid), UID: int(u.Uid), GID: int(u.Gid), SameUser: int(u.Uid) == os.Getuid()}
		cred.Groups = peerGroups(int(fd))
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		return Cred{}, fmt.Errorf("SO_PEERCRED: %w", err)
	}
	return cred, nil
}

func peerGroups(fd int) []int {
	buf := make([]byte, 4*256)
	l := uint32(len(buf))
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
		uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&l)), 0)
	if e != 0 || l > uint32(len(buf)) {
		return nil
	}
	groups := make([]int, 0, l/4)
	for i := uint32(0); i+4 <= l; i += 4 {
		groups = append(groups, int(binary.NativeEndian.Uint32(buf[i:])))
	}
	return groups
}

// SetDeadline bounds Send and Recv; a time in the past cuts off a call in
// progress. A zero t means none.
func (c *Conn) SetDeadline(t time.Time) error { return c.c.SetDeadline(t) }

// CloseWrite shuts down the sending side: the peer reads end of file, as if
// this process were gone, while this side may still read.
func (c *Conn) CloseWrite() error {
	rc, err := c.c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Shutdown(int(fd), unix.SHUT_WR) }); err != nil {
		return err
	}
	if serr != nil {
		return os.NewSyscallError("shutdown", serr)
	}
	return nil
}

// Close closes the connection.
func (c *Conn) Close() error { return c.c.Close() }

// Listener accepts control connections on a name.
type Listener struct {
	l    *net.UnixListener
	path string
	ino  [2]uint64 // device and inode of the socket file it bound
}

// Listen binds a listener at path. The socket directory is locked for the
// check-remove-bind sequence, so two Listens cannot both take a name: a
// socket left by a dead server (nobody accepts on it) is replaced, one with
// a live listener is ErrInUse, and a file that is not a socket is refused.
// shared makes the socket connectable by every user, for a server that
// admits other users by credentials.
func Listen(path string, shared bool) (*Listener, error) {
	unlock, err := lockDir(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := removeStale(path); err != nil {
		return nil, err
	}
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		return nil, err
	}
	// Close removes the file itself, and only if it is still this one.
	ln.SetUnlinkOnClose(false)
	l := &Listener{l: ln, path: path}
	var st unix.Stat_t
	err = unix.Lstat(path, &st)
	if err == nil && shared {
		// Others must be able to connect; the credential check decides.
		err = os.Chmod(path, 0o666)
	}
	if err != nil {
		ln.Close()
		os.Remove(path)
		return nil, err
	}
	l.ino = [2]uint64{st.Dev, st.Ino}
	return l, nil
}

// removeStale removes a socket file nobody listens on, and refuses a name
// that a live server holds.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket", path)
	}
	c, err := net.DialTimeout("unixpacket", path, time.Second)
	if err == nil {
		c.Close()
		return ErrInUse
	}
	if !errors.Is(err, unix.ECONNREFUSED) {
		return fmt.Errorf("probe existing socket: %w", err)
	}
	return os.Remove(path)
}

// lockDir takes an exclusive flock on directory dir and returns the
// function that releases it. The kernel drops the lock if the process
// dies, so a crashed holder never wedges the directory.
func lockDir(dir string) (unlock func(), err error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("flock %s: %w", dir, err)
	}
	return func() { unix.Close(fd) }, nil
}

// Accept waits for the next connection. After Close it returns an error
// matching net.ErrClosed.
func (l *Listener) Accept() (*Conn, error) {
	c, err := l.l.AcceptUnix()
	if err != nil {
		return nil, err
	}
	return &Conn{c}, nil
}

// Close stops listening and removes the socket file, if the file at the
// path is still the one this listener bound (PROTOCOL.md, 2): a successor
// may have replaced it, if someone removed ours. The file goes while the
// socket still listens and the directory is locked, so that no Listen can
// take it for stale and put a successor in its place meanwhile.
func (l *Listener) Close() error {
	if unlock, err := lockDir(filepath.Dir(l.path)); err == nil {
		var st unix.Stat_t
		if unix.Lstat(l.path, &st) == nil && [2]uint64{st.Dev, st.Ino} == l.ino {
			unix.Unlink(l.path)
		}
		unlock()
	}
	return l.l.Close()
}
