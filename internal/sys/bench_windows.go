package sys

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/windows"
)

// InheritFile returns an inheritable duplicate of a borrowed handle, as a
// file, for a child process to inherit (SysProcAttr.AdditionalInheritedHandles
// with its value). Unlike on Linux the file is the caller's: it closes it
// once the child has started. The handle itself stays uninheritable, so
// no other child gets it by accident.
func InheritFile(h Handle) (*os.File, error) {
	if h.h == 0 {
		return nil, fmt.Errorf("%w: no handle to inherit", ErrBadHandle)
	}
	var dup windows.Handle
	if err := windows.DuplicateHandle(currentProcess, h.h, currentProcess, &dup, 0, true, windows.DUPLICATE_SAME_ACCESS); err != nil {
		return nil, fmt.Errorf("duplicate handle to inherit: %w", err)
	}
	return os.NewFile(uintptr(dup), "inherit"), nil
}

// InheritedHandle takes a file that this process inherited (from
// os.NewFile on the handle's value) as a Handle, for AttachSegment: a
// duplicate, so that the file can be closed (and its finalizer never closes
// the handle under the Handle's feet). On failure the Handle is empty and
// AttachSegment refuses it.
func InheritedHandle(f *os.File) Handle {
	defer f.Close()
	var dup windows.Handle
	if err := windows.DuplicateHandle(currentProcess, windows.Handle(f.Fd()), currentProcess, &dup, 0, false, windows.DUPLICATE_SAME_ACCESS); err != nil {
		return Handle{}
	}
	return Handle{dup}
}

// SleepThread pauses for d.
func SleepThread(d time.Duration) { time.Sleep(d) }
