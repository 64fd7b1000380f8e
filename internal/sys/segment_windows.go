package sys

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/windows"
)

const supported = true

// segmentAccess is all a peer's segment handle needs: map it read-write,
// and ask its size.
const segmentAccess = windows.FILE_MAP_READ | windows.FILE_MAP_WRITE | sectionQuery

// Segment is a link's shared memory, mapped read-write into this process.
// On Windows it is an unnamed section backed by the paging file: it has no
// name anyone could open, it lives as long as some process holds a handle
// or a view, and it cannot shrink, so the peer cannot turn our reads into
// faults (the sealed memfd's guarantee on Linux).
type Segment struct {
	h   windows.Handle
	mem []byte
}

// CreateSegment makes a zeroed segment of exactly size bytes and maps it.
// name is not used: an unnamed section is what keeps other processes out.
func CreateSegment(name string, size int) (*Segment, error) {
	if size <= 0 {
		return nil, fmt.Errorf("segment size %d", size)
	}
	s64 := uint64(size)
	h, err := windows.CreateFileMapping(windows.InvalidHandle, nil, windows.PAGE_READWRITE|secCommit,
		uint32(s64>>32), uint32(s64), nil)
	if err != nil {
		// x/sys can return a live handle with ERROR_ALREADY_EXISTS; an
		// unnamed section never exists already, but close what we got.
		if h != 0 {
			windows.CloseHandle(h)
		}
		return nil, fmt.Errorf("CreateFileMapping %d bytes: %w", size, err)
	}
	s, err := mapSegment(h, size)
	if err != nil {
		windows.CloseHandle(h)
		return nil, err
	}
	return s, nil
}

// AttachSegment checks that h, received from the peer, is a committed
// section backed by the paging file whose size lies in [minSize, maxSize],
// and maps it. It takes h: on error h is closed. A section backed by a
// file (its I/O errors would fault our reads), an image, or one that is
// only reserved (its pages fault until committed) is refused, as is one
// that cannot be mapped read-write.
func AttachSegment(h Handle, minSize, maxSize int64) (_ *Segment, err error) {
	if err := checkKind(h, "Section", "segment"); err != nil {
		h.Close()
		return nil, err
	}
	nh, err := narrow(h.h, segmentAccess)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			windows.CloseHandle(nh)
		}
	}()
	info, err := querySection(nh)
	if err != nil {
		return nil, fmt.Errorf("%w: segment: %w", ErrBadHandle, err)
	}
	attr := info.AllocationAttributes
	if attr&secCommit == 0 || attr&(secReserve|secFile|secImage) != 0 {
		return nil, fmt.Errorf("%w: segment is not a committed paging-file section (attributes %#x)", ErrBadHandle, attr)
	}
	if info.MaximumSize < minSize || info.MaximumSize > maxSize {
		return nil, fmt.Errorf("%w: segment of %d bytes is outside [%d, %d]", ErrBadHandle, info.MaximumSize, minSize, maxSize)
	}
	s, err := mapSegment(nh, int(info.MaximumSize))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadHandle, err)
	}
	// A section created read-only may still map (Wine maps it), but
	// writing would fault: every page must be read-write.
	var mbi windows.MemoryBasicInformation
	if err := windows.VirtualQuery(uintptr(unsafe.Pointer(&s.mem[0])), &mbi, unsafe.Sizeof(mbi)); err != nil {
		s.unmap()
		return nil, fmt.Errorf("%w: segment view: %w", ErrBadHandle, err)
	}
	if mbi.Protect != windows.PAGE_READWRITE || mbi.RegionSize < uintptr(len(s.mem)) {
		s.unmap() // the handle is closed by the deferred cleanup
		return nil, fmt.Errorf("%w: segment maps with protection %#x over %d bytes, not read-write over %d",
			ErrBadHandle, mbi.Protect, mbi.RegionSize, len(s.mem))
	}
	return s, nil
}

func mapSegment(h windows.Handle, size int) (*Segment, error) {
	addr, err := windows.MapViewOfFile(h, windows.FILE_MAP_READ|windows.FILE_MAP_WRITE, 0, 0, uintptr(size))
	if err != nil {
		return nil, fmt.Errorf("MapViewOfFile %d bytes: %w", size, err)
	}
	// The view is outside Go's heap; going through a pointer to addr keeps
	// vet's unsafeptr check quiet about the uintptr conversion.
	p := *(*unsafe.Pointer)(unsafe.Pointer(&addr))
	return &Segment{h: h, mem: unsafe.Slice((*byte)(p), size)}, nil
}

// Mem is the mapping. It is valid until Close.
func (s *Segment) Mem() []byte { return s.mem }

// Handle is the segment's handle, to send to the peer (borrowed).
func (s *Segment) Handle() Handle { return Handle{s.h} }

// Close unmaps the segment and releases its handle. The caller guarantees
// that nothing touches Mem any more.
func (s *Segment) Close() error {
	err := s.unmap()
	if cerr := windows.CloseHandle(s.h); err == nil {
		err = cerr
	}
	return err
}

func (s *Segment) unmap() error {
	if s.mem == nil {
		return nil
	}
	err := windows.UnmapViewOfFile(uintptr(unsafe.Pointer(&s.mem[0])))
	s.mem = nil
	return err
}
