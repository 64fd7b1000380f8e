//go:build !windows

package limit

import (
	"errors"
	"os"
	"os/exec"
)

// passFiles has cmd inherit the segment and the two pipes as descriptors
// 3 to 5, where childFiles looks for them.
func passFiles(cmd *exec.Cmd, seg, cmdR, readyW *os.File) {
	cmd.ExtraFiles = []*os.File{seg, cmdR, readyW}
}

// startedWith releases what Start no longer needs of the segment's file
// once the child has it: nothing here, the file is the segment's own.
func startedWith(*os.File) {}

// childFiles returns the files the parent passed: the segment, the
// command pipe and the ready pipe.
func childFiles() (seg, cmdR, readyW *os.File, err error) {
	seg, cmdR, readyW = os.NewFile(3, "limit-segment"), os.NewFile(4, "limit-commands"), os.NewFile(5, "limit-ready")
	if seg == nil || cmdR == nil || readyW == nil {
		return nil, nil, nil, errors.New("descriptors 3 to 5 missing")
	}
	return seg, cmdR, readyW, nil
}
