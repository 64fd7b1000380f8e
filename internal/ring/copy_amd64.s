#include "textflag.h"

// func copyNT(dst, src unsafe.Pointer, n uintptr)
//
// 64 bytes per iteration: four unaligned 16-byte loads, four aligned
// non-temporal 16-byte stores (MOVNTDQ, SSE2), which fill one cache line
// in a write-combining buffer and go to memory without a read for
// ownership. SFENCE at the end makes the stores globally visible before
// any later store, in particular the publication of the ring's tail.
TEXT ·copyNT(SB), NOSPLIT, $0-24
	MOVQ	dst+0(FP), DI
	MOVQ	src+8(FP), SI
	MOVQ	n+16(FP), CX
	TESTQ	CX, CX
	JZ	done
loop:
	PREFETCHNTA	0x200(SI)
	MOVOU	0x00(SI), X0
	MOVOU	0x10(SI), X1
	MOVOU	0x20(SI), X2
	MOVOU	0x30(SI), X3
	MOVNTO	X0, 0x00(DI)
	MOVNTO	X1, 0x10(DI)
	MOVNTO	X2, 0x20(DI)
	MOVNTO	X3, 0x30(DI)
	ADDQ	$64, SI
	ADDQ	$64, DI
	SUBQ	$64, CX
	JNZ	loop
	SFENCE
done:
	RET
