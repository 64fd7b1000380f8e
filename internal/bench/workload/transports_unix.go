//go:build !windows

package workload

import "path/filepath"

// Competitors are the transports that shmlink is measured against on this
// system, each written per message and buffered: what a program here would
// pick instead.
var Competitors = []*Transport{Unix, UnixBuffered, Pipe, PipeBuffered, TCP, TCPBuffered}

// Plain is the usual alternative for request/response here, the baseline
// of round trips and of the sweeps: the unix socket; PlainBuffered is it
// buffered.
var Plain, PlainBuffered = Unix, UnixBuffered

// endpointPath is where a PathTransport's listener meets its dialler: a
// socket path in the run's private directory.
func endpointPath(dir, name string) string { return filepath.Join(dir, name+".sock") }
