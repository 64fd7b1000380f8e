package testproc

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
)

// Under Wine a Windows process is a Linux process, and PE code runs on the
// CPU as it is: a SYSCALL instruction goes straight to the Linux kernel.
// That is how a test kills a Wine process the way kill -9 would, without
// the Windows side (TerminateProcess, wineserver) taking part: the child
// writes its Linux pid, found by a raw getpid, to a file the parent named
// in envUnixPid, and KillHard sends it SIGKILL with a raw kill(2).
const envUnixPid = "SHMLINK_TESTPROC_UNIXPID"

// Linux x86-64 system call numbers and the signal.
const (
	linuxGetpid  = 39
	linuxKill    = 62
	linuxSIGKILL = 9
)

// rawLinuxSyscall executes SYSCALL with trap in AX and a1, a2 in DI, SI,
// and returns AX (a negative errno on failure). Only ever call it under
// Wine: on Windows the same instruction is an NT system call.
func rawLinuxSyscall(trap, a1, a2 uintptr) uintptr

// UnderWine reports whether this Windows process runs under Wine (whose
// ntdll exports wine_get_version).
var UnderWine = windows.NewLazySystemDLL("ntdll.dll").NewProc("wine_get_version").Find() == nil

var pidFiles atomic.Int64

// childEnv is what a child needs in its environment on this OS: under
// Wine, where to write its Linux pid.
func (p *Proc) childEnv() []string {
	if !UnderWine {
		return nil
	}
	p.unixPidFile = filepath.Join(os.TempDir(),
		fmt.Sprintf("testproc-%d-%d.pid", os.Getpid(), pidFiles.Add(1)))
	return []string{envUnixPid + "=" + p.unixPidFile}
}

// childSetup runs in a child before its role: under Wine it records the
// child's Linux pid for KillHard. The variable is dropped so that programs
// the role starts do not overwrite the file.
func childSetup() error {
	path := os.Getenv(envUnixPid)
	if path == "" || !UnderWine {
		return nil
	}
	os.Unsetenv(envUnixPid)
	pid := rawLinuxSyscall(linuxGetpid, 0, 0)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.FormatUint(uint64(pid), 10)), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path) // the parent never reads half a number
}

// KillHard kills the child without any code of its own or of the Windows
// side running: under Wine, SIGKILL of the child's Linux process (what
// kill -9 of a wine process from a shell does); on real Windows, where
// nothing is harder than it, TerminateProcess (Kill). It does not wait for
// the child to die: Exit does that.
func (p *Proc) KillHard(t testing.TB) {
	t.Helper()
	if p.unixPidFile == "" {
		t.Logf("%s: not under Wine: KillHard is TerminateProcess", p.name)
		p.Kill(t)
		return
	}
	// The child writes the file before its role starts, so a child that
	// said ready has written it; any other is given the usual timeout.
	deadline := time.Now().Add(p.timeout)
	var pid int
	for {
		b, err := os.ReadFile(p.unixPidFile)
		if err == nil {
			if pid, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil || pid <= 1 {
				t.Fatalf("%s: bad Linux pid %q in %s", p.name, b, p.unixPidFile)
			}
			break
		}
		select {
		case <-p.exited:
			t.Fatalf("kill -9 %s: it exited before it wrote its Linux pid", p.name)
		case <-time.After(time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("kill -9 %s: no Linux pid within %v: %v", p.name, p.timeout, err)
		}
	}
	select {
	case <-p.exited:
		t.Fatalf("kill -9 %s: it has exited already", p.name)
	default:
	}
	if r := int64(rawLinuxSyscall(linuxKill, uintptr(pid), linuxSIGKILL)); r != 0 {
		t.Fatalf("kill -9 %s (Linux pid %d): errno %d", p.name, pid, -r)
	}
	p.log.logf("%s: kill -9 of Linux pid %d", p.name, pid)
}

// removeOSState removes what childEnv set up, once the child is gone.
func (p *Proc) removeOSState() {
	if p.unixPidFile != "" {
		os.Remove(p.unixPidFile)
		os.Remove(p.unixPidFile + ".tmp")
	}
}

// OpenHandles returns how many handles this process holds, for leak
// checks: compare counts taken in the same process, with a margin (the
// runtime opens handles of its own as it starts threads).
// GetProcessHandleCount says 0 under Wine 8, so there the count comes from
// the system's handle table (SystemExtendedHandleInformation), which Wine
// keeps.
func OpenHandles() (int, error) {
	var n uint32
	r, _, err := procGetProcessHandleCount.Call(uintptr(windows.CurrentProcess()), uintptr(unsafe.Pointer(&n)))
	if r == 0 {
		return 0, fmt.Errorf("GetProcessHandleCount: %w", err)
	}
	if n > 0 {
		return int(n), nil
	}
	hs, err := OwnHandles()
	return len(hs), err
}

var procGetProcessHandleCount = windows.NewLazySystemDLL("kernel32.dll").NewProc("GetProcessHandleCount")

// OwnHandles returns the values of this process's handles, from the
// system handle table. SYSTEM_HANDLE_INFORMATION_EX is two pointer-sized
// words (the count, reserved), then 40-byte
// SYSTEM_HANDLE_TABLE_ENTRY_INFO_EX entries whose second word is the
// owning process id and third the handle's value.
func OwnHandles() ([]windows.Handle, error) {
	const systemExtendedHandleInformation = 64
	const header, entry = 16, 40
	buf := make([]byte, 1<<20)
	for {
		var got uint32
		err := windows.NtQuerySystemInformation(systemExtendedHandleInformation,
			unsafe.Pointer(&buf[0]), uint32(len(buf)), &got)
		if err == windows.STATUS_INFO_LENGTH_MISMATCH && len(buf) < 1<<28 {
			buf = make([]byte, 2*len(buf))
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("NtQuerySystemInformation(SystemExtendedHandleInformation): %w", err)
		}
		break
	}
	total := *(*uintptr)(unsafe.Pointer(&buf[0]))
	if total > uintptr((len(buf)-header)/entry) {
		return nil, fmt.Errorf("system handle table: %d entries do not fit %d bytes", total, len(buf))
	}
	pid := uintptr(os.Getpid())
	var hs []windows.Handle
	for i := range int(total) {
		e := buf[header+i*entry:]
		if *(*uintptr)(unsafe.Pointer(&e[8])) == pid {
			hs = append(hs, windows.Handle(*(*uintptr)(unsafe.Pointer(&e[16]))))
		}
	}
	return hs, nil
}

// Threads counts the OS threads of this process. Each thread of the Go
// runtime holds handles of its own (the thread, its wake-up events, its
// timer), so a leak check compares handles net of them.
func Threads() (int, error) {
	snap, err := windows.CreateToolhelp32Snapshot(windows.TH32CS_SNAPTHREAD, 0)
	if err != nil {
		return 0, fmt.Errorf("CreateToolhelp32Snapshot: %w", err)
	}
	defer windows.CloseHandle(snap)
	pid := windows.GetCurrentProcessId()
	te := windows.ThreadEntry32{Size: uint32(unsafe.Sizeof(windows.ThreadEntry32{}))}
	n := 0
	for err = windows.Thread32First(snap, &te); err == nil; err = windows.Thread32Next(snap, &te) {
		if te.OwnerProcessID == pid {
			n++
		}
	}
	if err != windows.ERROR_NO_MORE_FILES {
		return 0, fmt.Errorf("Thread32Next: %w", err)
	}
	return n, nil
}
