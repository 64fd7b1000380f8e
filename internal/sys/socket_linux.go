package sys

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// SendMsg writes one packet carrying b and, as SCM_RIGHTS, the descriptors of
// files.
func SendMsg(c *net.UnixConn, b []byte, files ...*os.File) error {
	var oob []byte
	if len(files) > 0 {
		fds := make([]int, len(files))
		for i, f := range files {
			fds[i] = int(f.Fd())
		}
		oob = unix.UnixRights(fds...)
	}
	_, _, err := c.WriteMsgUnix(b, oob, nil)
	return err
}

// ErrTooManyFiles reports a packet that carried more descriptors than the
// protocol allows at that point; all of them have been closed.
var ErrTooManyFiles = errors.New("packet carried unexpected descriptors")

// RecvMsg reads one packet into b and returns its length and the descriptors
// it carried (at most maxFiles; a packet with more is refused and every
// descriptor in it closed). Received descriptors are close-on-exec from the
// start. A zero-length read at end of stream is io.EOF. The connection's read
// deadline applies.
func RecvMsg(c *net.UnixConn, b []byte, maxFiles int) (int, []*os.File, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, nil, err
	}
	// Room for a few more than allowed, so an excess is seen (and closed)
	// rather than silently truncated.
	oob := make([]byte, unix.CmsgSpace((maxFiles+4)*4))
	var n, oobn, flags int
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		n, oobn, flags, _, rerr = unix.Recvmsg(int(fd), b, oob, unix.MSG_CMSG_CLOEXEC)
		return rerr != unix.EAGAIN
	})
	if err == nil {
		err = rerr
	}
	files, ferr := parseRights(oob[:oobn])
	if err == nil {
		err = ferr
	}
	if err == nil && flags&(unix.MSG_CTRUNC|unix.MSG_TRUNC) != 0 {
		err = fmt.Errorf("%w: truncated packet (flags %#x)", ErrTooManyFiles, flags)
	}
	if err == nil && len(files) > maxFiles {
		err = fmt.Errorf("%w: got %d, allowed %d", ErrTooManyFiles, len(files), maxFiles)
	}
	if err == nil && n == 0 && len(files) == 0 {
		err = io.EOF
	}
	if err != nil {
		closeAll(files)
		return 0, nil, err
	}
	return n, files, nil
}

func parseRights(oob []byte) ([]*os.File, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("parse control message: %w", err)
	}
	var files []*os.File
	var perr error
	for i := range msgs {
		fds, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			perr = err
			continue
		}
		for _, fd := range fds {
			files = append(files, os.NewFile(uintptr(fd), "received"))
		}
	}
	return files, perr
}

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// Cred is the identity of the process at the other end of a unix socket,
// as the kernel recorded it at connect (or listen) time.
type Cred struct {
	PID    int
	UID    int
	GID    int
	Groups []int // supplementary groups; nil if the kernel cannot say
}

// PeerCred returns the credentials of c's peer (SO_PEERCRED, SO_PEERGROUPS).
func PeerCred(c *net.UnixConn) (Cred, error) {
	rc, err := c.SyscallConn()
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
		cred = Cred{PID: int(u.Pid), UID: int(u.Uid), GID: int(u.Gid)}
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
