#include "textflag.h"

// func rawLinuxSyscall(trap, a1, a2 uintptr) uintptr
//
// A Linux system call from a Windows binary running under Wine (see
// kill_windows.go). The kernel clobbers CX and R11 only, which ABI0 allows.
TEXT ·rawLinuxSyscall(SB),NOSPLIT,$0-32
	MOVQ	trap+0(FP), AX
	MOVQ	a1+8(FP), DI
	MOVQ	a2+16(FP), SI
	SYSCALL
	MOVQ	AX, ret+24(FP)
	RET
