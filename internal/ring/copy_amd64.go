package ring

import "unsafe"

// haveNT: every amd64 processor has SSE2, and so MOVNTDQ and SFENCE.
const haveNT = true

// copyNT copies n bytes from src to dst with non-temporal stores and
// fences them. dst must be 16-byte aligned, n a multiple of 64, and the
// two ranges must not overlap; copyChunk checks all three.
//
//go:noescape
func copyNT(dst, src unsafe.Pointer, n uintptr)
