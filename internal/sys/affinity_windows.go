package sys

import (
	"errors"
	"fmt"
)

// PinProcess restricts this process, all its threads, to the given CPUs
// (SetProcessAffinityMask; threads started later inherit it). Only the
// first processor group, CPUs 0 to 63, can be named.
func PinProcess(cpus []int) error {
	if len(cpus) == 0 {
		return errors.New("pin: no CPU given")
	}
	var mask uintptr
	for _, c := range cpus {
		if c < 0 || c >= 64 {
			return fmt.Errorf("pin: CPU %d out of range", c)
		}
		mask |= 1 << c
	}
	if r, _, err := procSetProcessAffinityMask.Call(uintptr(currentProcess), mask); r == 0 {
		return fmt.Errorf("pin to CPUs %v: SetProcessAffinityMask: %w", cpus, err)
	}
	return nil
}
