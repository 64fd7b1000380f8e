//go:build !linux

package sys

// PinProcess would restrict this process to the given CPUs; only Linux
// supports it for now.
func PinProcess(cpus []int) error { return ErrUnsupported }
