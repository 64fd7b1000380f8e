package sys

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

const supported = true

// requiredSeals fix a segment's size: neither side can shrink it (which
// would turn the other side's reads into SIGBUS) nor change the seal set.
const requiredSeals = unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_SEAL

// Segment is a link's shared memory, mapped read-write into this process.
// On Linux it is an anonymous, sealed memfd: nothing appears in the file
// system, and the memory lives as long as some process holds the
// descriptor or a mapping.
type Segment struct {
	f   *os.File
	h   Handle
	mem []byte
}

// CreateSegment makes a zeroed segment of exactly size bytes and maps it.
// name only labels it for debugging (/proc/PID/fd).
func CreateSegment(name string, size int) (_ *Segment, err error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "memfd:"+name)
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		return nil, fmt.Errorf("ftruncate memfd to %d bytes: %w", size, err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, requiredSeals); err != nil {
		return nil, fmt.Errorf("seal memfd: %w", err)
	}
	return mapSegment(f, fd, size)
}

// AttachSegment checks that h, received from the peer, is shared memory
// whose size is sealed and lies in [minSize, maxSize], and maps it. It
// takes h: on error h is closed.
func AttachSegment(h Handle, minSize, maxSize int64) (_ *Segment, err error) {
	defer func() {
		if err != nil {
			h.Close()
		}
	}()
	if !h.ok {
		return nil, fmt.Errorf("%w: no segment", ErrBadHandle)
	}
	fd := h.fd
	seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: segment is not a memfd: F_GET_SEALS: %w", ErrBadHandle, err)
	}
	if seals&requiredSeals != requiredSeals {
		return nil, fmt.Errorf("%w: segment seals %#x, need %#x", ErrBadHandle, seals, requiredSeals)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("fstat segment: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("%w: segment is not a regular memfd", ErrBadHandle)
	}
	if st.Size < minSize || st.Size > maxSize {
		return nil, fmt.Errorf("%w: segment of %d bytes is outside [%d, %d]", ErrBadHandle, st.Size, minSize, maxSize)
	}
	if h.f == nil {
		// From here the File owns the descriptor (and closes it on error).
		h.f = os.NewFile(uintptr(fd), "memfd:received") // blocking: not for the poller
	}
	return mapSegment(h.f, fd, int(st.Size))
}

func mapSegment(f *os.File, fd, size int) (*Segment, error) {
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap %d bytes: %w", size, err)
	}
	return &Segment{f: f, h: Handle{f: f, fd: fd, ok: true}, mem: mem}, nil
}

// Mem is the mapping. It is valid until Close.
func (s *Segment) Mem() []byte { return s.mem }

// Handle is the segment's handle, to send to the peer (borrowed).
func (s *Segment) Handle() Handle { return s.h }

// Close unmaps the segment and releases its handle. The caller guarantees
// that nothing touches Mem any more.
func (s *Segment) Close() error {
	err := unix.Munmap(s.mem)
	s.mem = nil
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	return err
}
