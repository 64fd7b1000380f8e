package sys

import (
	"fmt"
	"sync"
	"unsafe"

	"golang.org/x/sys/windows"
)

// Procedures that golang.org/x/sys/windows v0.49.0 does not wrap. They are
// resolved when first called; every one exists since Windows Vista and in
// Wine 8.
var (
	kernel32 = windows.NewLazySystemDLL("kernel32.dll")
	ntdll    = windows.NewLazySystemDLL("ntdll.dll")

	procQueryPerformanceCounter     = kernel32.NewProc("QueryPerformanceCounter")
	procQueryPerformanceFrequency   = kernel32.NewProc("QueryPerformanceFrequency")
	procRegisterWaitForSingleObject = kernel32.NewProc("RegisterWaitForSingleObject")
	procUnregisterWaitEx            = kernel32.NewProc("UnregisterWaitEx")
	procSetProcessAffinityMask      = kernel32.NewProc("SetProcessAffinityMask")
	procWaitNamedPipeW              = kernel32.NewProc("WaitNamedPipeW")
	procPeekNamedPipe               = kernel32.NewProc("PeekNamedPipe")
	procNtQueryObject               = ntdll.NewProc("NtQueryObject")
	procNtQuerySection              = ntdll.NewProc("NtQuerySection")
	procNtOpenDirectoryObject       = ntdll.NewProc("NtOpenDirectoryObject")
	procNtQueryDirectoryObject      = ntdll.NewProc("NtQueryDirectoryObject")
)

// Constants x/sys does not define.
const (
	secCommit  = 0x08000000 // SEC_COMMIT
	secReserve = 0x04000000 // SEC_RESERVE
	secFile    = 0x00800000 // SEC_FILE
	secImage   = 0x01000000 // SEC_IMAGE

	sectionQuery = 0x0001 // SECTION_QUERY

	objectTypeInformation     = 2 // OBJECT_INFORMATION_CLASS
	sectionBasicInformation   = 0 // SECTION_INFORMATION_CLASS
	directoryQuery            = 0x0001
	statusNoMoreEntries       = 0x8000001A
	wtExecuteInWaitThread     = 0x00000004
	wtExecuteOnlyOnce         = 0x00000008
	infinite                  = 0xFFFFFFFF
	statusBufferTooSmall      = 0xC0000023
	statusInfoLengthMismatch  = 0xC0000004
	errorIOPending            = windows.ERROR_IO_PENDING
	pipeAccessFlags           = windows.PIPE_ACCESS_DUPLEX | windows.FILE_FLAG_OVERLAPPED
	pipeModeFlags             = windows.PIPE_TYPE_MESSAGE | windows.PIPE_READMODE_MESSAGE | windows.PIPE_WAIT | windows.PIPE_REJECT_REMOTE_CLIENTS
	currentProcess            = windows.Handle(^uintptr(0)) // GetCurrentProcess()
	pipeBufferSize            = 64 << 10
	maxPipePath               = 256 // \\.\pipe\ and the pipe's name, in UTF-16 units
	pipePrefix                = `\\.\pipe\`
	pipeWaitSlice             = 50 // ms a WaitNamedPipe blocks before Dial looks at its context again
	objectNameDirectoryGlobal = `\BaseNamedObjects`
)

// sectionBasicInfo is SECTION_BASIC_INFORMATION.
type sectionBasicInfo struct {
	BaseAddress          uintptr
	AllocationAttributes uint32
	MaximumSize          int64
}

// HandleKind returns the kernel's name for the type of the object behind
// h, one of this process's handles ("Section", "Event", "File", ...): for
// tests that count handles by kind.
func HandleKind(h windows.Handle) (string, error) { return objectTypeName(h) }

// objectTypeName returns the kernel's name for the type of the object
// behind h ("Section", "Event", "File", ...), or an error if h is not a
// valid handle.
func objectTypeName(h windows.Handle) (string, error) {
	// OBJECT_TYPE_INFORMATION starts with the type's name as a
	// UNICODE_STRING whose buffer follows the structure.
	var buf [128]uint64
	var n uint32
	r, _, _ := procNtQueryObject.Call(uintptr(h), objectTypeInformation,
		uintptr(unsafe.Pointer(&buf[0])), unsafe.Sizeof(buf), uintptr(unsafe.Pointer(&n)))
	if r != 0 {
		return "", fmt.Errorf("NtQueryObject: %w", windows.NTStatus(r))
	}
	name := (*windows.NTUnicodeString)(unsafe.Pointer(&buf[0]))
	base := uintptr(unsafe.Pointer(&buf[0]))
	p := uintptr(unsafe.Pointer(name.Buffer))
	// The name must lie inside our buffer: never follow a pointer out of it.
	if p < base || p+uintptr(name.Length) > base+unsafe.Sizeof(buf) || name.Length%2 != 0 {
		return "", fmt.Errorf("NtQueryObject: type name outside its buffer")
	}
	return windows.UTF16ToString(unsafe.Slice(name.Buffer, name.Length/2)), nil
}

// querySection returns the basic information of the section behind h.
func querySection(h windows.Handle) (sectionBasicInfo, error) {
	var info sectionBasicInfo
	var n uintptr
	r, _, _ := procNtQuerySection.Call(uintptr(h), sectionBasicInformation,
		uintptr(unsafe.Pointer(&info)), unsafe.Sizeof(info), uintptr(unsafe.Pointer(&n)))
	if r != 0 {
		return info, fmt.Errorf("NtQuerySection: %w", windows.NTStatus(r))
	}
	return info, nil
}

// checkKind fails with ErrBadHandle unless h is a valid handle to an
// object of the kernel type want. what names the object in the error.
func checkKind(h Handle, want, what string) error {
	if h.h == 0 {
		return fmt.Errorf("%w: no %s", ErrBadHandle, what)
	}
	got, err := objectTypeName(h.h)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrBadHandle, what, err)
	}
	if got != want {
		return fmt.Errorf("%w: %s is a %s, not a %s", ErrBadHandle, what, got, want)
	}
	return nil
}

// take checks that h is of the kernel type want (see checkKind) and
// returns a handle to its object with only the given access rights (see
// narrow). h is closed in every case.
func take(h Handle, want, what string, access uint32) (windows.Handle, error) {
	if err := checkKind(h, want, what); err != nil {
		h.Close()
		return 0, err
	}
	return narrow(h.h, access)
}

// narrow replaces h by a handle to the same object with only the given
// access rights, so that what a peer handed over can do no more than its
// role needs. h is closed in every case.
func narrow(h windows.Handle, access uint32) (windows.Handle, error) {
	var nh windows.Handle
	// DUPLICATE_CLOSE_SOURCE closes h even when the duplication fails.
	err := windows.DuplicateHandle(currentProcess, h, currentProcess, &nh, access, false, windows.DUPLICATE_CLOSE_SOURCE)
	if err != nil {
		return 0, fmt.Errorf("%w: reduce access to %#x: %w", ErrBadHandle, access, err)
	}
	return nh, nil
}

// ownSID is the user of this process's token, computed once.
var ownSID = sync.OnceValues(func() (*windows.SID, error) {
	u, err := windows.GetCurrentProcessToken().GetTokenUser()
	if err != nil {
		return nil, fmt.Errorf("own token user: %w", err)
	}
	return u.User.Sid.Copy()
})

// ownSecurity returns security attributes that give this user, and only
// this user, full access; with shared, everyone may also read and write
// (0x12019b is FILE_GENERIC_READ|FILE_GENERIC_WRITE without
// FILE_APPEND_DATA, which on a pipe is FILE_CREATE_PIPE_INSTANCE: others
// may connect but not add instances of their own). The user's SID is
// written out: Wine does not know OW (OWNER RIGHTS).
func ownSecurity(shared bool) (*windows.SecurityAttributes, error) {
	sid, err := ownSID()
	if err != nil {
		return nil, err
	}
	s := sid.String()
	sddl := "O:" + s + "D:P(A;;GA;;;" + s + ")"
	if shared {
		sddl += "(A;;0x12019b;;;WD)"
	}
	sd, err := windows.SecurityDescriptorFromString(sddl)
	if err != nil {
		return nil, fmt.Errorf("security descriptor %q: %w", sddl, err)
	}
	sa := &windows.SecurityAttributes{SecurityDescriptor: sd}
	sa.Length = uint32(unsafe.Sizeof(*sa))
	return sa, nil
}
