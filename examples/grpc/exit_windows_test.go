package main

// killedExit reports whether a process's exit code says that it was
// killed: TerminateProcess, which Process.Kill calls, makes it 1.
func killedExit(code int) bool { return code != 0 }
