package sys

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// requiredSeals fixes the size of a segment: neither side can shrink it (which
// would turn the other side's reads into SIGBUS) nor change the seal set.
const requiredSeals = unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_SEAL

// CreateSegment returns an anonymous, sealed memfd of exactly size bytes.
// Nothing appears in the file system; the memory lives as long as some
// process holds the descriptor or a mapping of it.
func CreateSegment(name string, size int64) (*os.File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "memfd:"+name)
	if err := unix.Ftruncate(fd, size); err != nil {
		f.Close()
		return nil, fmt.Errorf("ftruncate memfd to %d bytes: %w", size, err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, requiredSeals); err != nil {
		f.Close()
		return nil, fmt.Errorf("seal memfd: %w", err)
	}
	return f, nil
}

// ErrNotSealed reports a segment descriptor that a peer could still resize.
var ErrNotSealed = errors.New("segment is not a sealed memfd")

// CheckSegment verifies that f is a memfd whose size is sealed and returns
// that size. A peer-supplied descriptor must pass this before it is mapped.
func CheckSegment(f *os.File) (int64, error) {
	seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
	if err != nil {
		return 0, fmt.Errorf("%w: F_GET_SEALS: %v", ErrNotSealed, err)
	}
	if seals&requiredSeals != requiredSeals {
		return 0, fmt.Errorf("%w: seals %#x, need %#x", ErrNotSealed, seals, requiredSeals)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return 0, fmt.Errorf("fstat segment: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return 0, fmt.Errorf("%w: not a regular memfd", ErrNotSealed)
	}
	return st.Size, nil
}

// Map maps size bytes of f shared and read-write.
func Map(f *os.File, size int) ([]byte, error) {
	b, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap %d bytes: %w", size, err)
	}
	return b, nil
}

// Unmap releases a mapping made by Map. The caller guarantees that nothing
// touches b afterwards.
func Unmap(b []byte) error {
	if b == nil {
		return nil
	}
	return unix.Munmap(b)
}
