// Package transport is the switch the examples' --addr flag goes through:
// the same server and client code runs over a shmlink link, a unix socket
// or TCP, chosen by the form of the address alone.
//
//	host:port   TCP (a numeric port: "127.0.0.1:8080", "[::1]:0", ":9000")
//	unix:PATH   a unix socket (for comparisons, as the benchmarks make)
//	NAME        a shmlink link name, or an absolute socket path
//
// These are the lines a program adds to run over shmlink and still reach
// a peer on another machine over TCP; docs/ecosystem.md shows them inline.
package transport

import (
	"context"
	"net"
	"strconv"
	"strings"

	"github.com/shmlink/shmlink"
)

// Kind says which transport an address names: "tcp", "unix" or "shmlink".
func Kind(addr string) string {
	if strings.HasPrefix(addr, "unix:") {
		return "unix"
	}
	if _, port, err := net.SplitHostPort(addr); err == nil {
		if _, err := strconv.ParseUint(port, 10, 16); err == nil {
			return "tcp"
		}
	}
	return "shmlink"
}

// Listen listens on addr. cfg applies to a link and may be nil.
func Listen(addr string, cfg *shmlink.Config) (net.Listener, error) {
	switch Kind(addr) {
	case "tcp":
		return net.Listen("tcp", addr)
	case "unix":
		return net.Listen("unix", strings.TrimPrefix(addr, "unix:"))
	}
	l, err := shmlink.Listen(addr, cfg)
	if err != nil {
		return nil, err // not l: a nil *Listener in a net.Listener is not nil
	}
	return l, nil
}

// Dialer returns a dial function that connects to addr whatever address it
// is asked for, with the signature of http.Transport.DialContext; cfg
// applies to a link and may be nil.
func Dialer(addr string, cfg *shmlink.Config) func(ctx context.Context, network, _ string) (net.Conn, error) {
	switch Kind(addr) {
	case "tcp":
		return func(ctx context.Context, _, _ string) (net.Conn, error) {
			return new(net.Dialer).DialContext(ctx, "tcp", addr)
		}
	case "unix":
		return func(ctx context.Context, _, _ string) (net.Conn, error) {
			return new(net.Dialer).DialContext(ctx, "unix", strings.TrimPrefix(addr, "unix:"))
		}
	}
	return (&shmlink.Dialer{Name: addr, Config: cfg}).DialContext
}

// Addr is the address a listener from Listen can be dialled on: a TCP
// listener on port 0 reports the port it got.
func Addr(addr string, l net.Listener) string {
	if Kind(addr) == "tcp" {
		return l.Addr().String()
	}
	return addr
}
