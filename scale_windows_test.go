package shmlink

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/windows"
)

// processThreads returns the number of threads of process pid, from a
// Toolhelp snapshot of the system's threads.
func processThreads(pid int) (threads int, detail string, err error) {
	snap, err := windows.CreateToolhelp32Snapshot(windows.TH32CS_SNAPTHREAD, 0)
	if err != nil {
		return 0, "", fmt.Errorf("CreateToolhelp32Snapshot: %w", err)
	}
	defer windows.CloseHandle(snap)
	e := windows.ThreadEntry32{Size: uint32(unsafe.Sizeof(windows.ThreadEntry32{}))}
	for err = windows.Thread32First(snap, &e); err == nil; err = windows.Thread32Next(snap, &e) {
		if e.OwnerProcessID == uint32(pid) {
			threads++
		}
	}
	if err != windows.ERROR_NO_MORE_FILES {
		return 0, "", fmt.Errorf("Thread32Next: %w", err)
	}
	return threads, "", nil
}

// idleThreadLimit bounds the threads of a process with n idle links: the
// tens Linux allows, plus the wait threads of the thread pool, which
// watches up to 63 doorbells each (PROTOCOL.md, 10.6).
func idleThreadLimit(n int) int { return 60 + n/63 }
