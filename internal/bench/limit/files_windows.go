package limit

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

// envHandles names, for the child, the values of the three handles it
// inherits: Windows has no descriptors 3 to 5 (exec.Cmd.ExtraFiles is not
// supported there), but an inherited handle keeps its value in the child.
const envHandles = "SHMLINK_BENCH_LIMIT_HANDLES"

// passFiles has cmd inherit the segment and the two pipes (all three
// inheritable: sys.InheritFile and os.Pipe make them so) and tells the
// child their values.
func passFiles(cmd *exec.Cmd, seg, cmdR, readyW *os.File) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	var vals []string
	for _, f := range []*os.File{seg, cmdR, readyW} {
		cmd.SysProcAttr.AdditionalInheritedHandles = append(cmd.SysProcAttr.AdditionalInheritedHandles, syscall.Handle(f.Fd()))
		vals = append(vals, strconv.FormatUint(uint64(f.Fd()), 10))
	}
	cmd.Env = append(cmd.Env, envHandles+"="+strings.Join(vals, ","))
}

// startedWith closes the inheritable duplicate of the segment's handle
// that sys.InheritFile made: the child has its own copy now, and keeping
// it open here would let any later child inherit the segment too.
func startedWith(seg *os.File) { seg.Close() }

// childFiles returns the files the parent passed: the segment, the
// command pipe and the ready pipe.
func childFiles() (seg, cmdR, readyW *os.File, err error) {
	vals := strings.Split(os.Getenv(envHandles), ",")
	if len(vals) != 3 {
		return nil, nil, nil, fmt.Errorf("%s=%q: want three handles", envHandles, os.Getenv(envHandles))
	}
	var fs [3]*os.File
	for i, v := range vals {
		h, err := strconv.ParseUint(v, 10, 64)
		if err != nil || h == 0 {
			return nil, nil, nil, fmt.Errorf("%s: bad handle %q", envHandles, v)
		}
		fs[i] = os.NewFile(uintptr(h), "limit-"+[]string{"segment", "commands", "ready"}[i])
	}
	return fs[0], fs[1], fs[2], nil
}
