//go:build !amd64

package ring

import "unsafe"

// haveNT is false where there is no non-temporal copy: copyChunk then
// always uses the runtime's copy.
const haveNT = false

// copyNT is never called where haveNT is false.
func copyNT(dst, src unsafe.Pointer, n uintptr) {
	panic("ring: no non-temporal copy on this architecture")
}
