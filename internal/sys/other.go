//go:build !linux && !windows

package sys

import (
	"context"
	"time"
)

// No backend yet: every constructor returns ErrUnsupported, so the types
// below are never instantiated. The methods exist to satisfy api.go.

const supported = false

type Segment struct{}

func CreateSegment(string, int) (*Segment, error)          { return nil, ErrUnsupported }
func AttachSegment(h Handle, _, _ int64) (*Segment, error) { h.Close(); return nil, ErrUnsupported }
func (*Segment) Mem() []byte                               { return nil }
func (*Segment) Handle() Handle                            { return Handle{} }
func (*Segment) Close() error                              { return ErrUnsupported }

type Doorbell struct{}

func NewDoorbell() (*Doorbell, error)  { return nil, ErrUnsupported }
func (*Doorbell) Wait(time.Time) error { return ErrUnsupported }
func (*Doorbell) Ring()                {}
func (*Doorbell) Nudge()               {}
func (*Doorbell) OnHostile(func())     {}
func (*Doorbell) Handle() Handle       { return Handle{} }
func (*Doorbell) Close() error         { return ErrUnsupported }

type Bell struct{}

func OpenBell(h Handle) (*Bell, error) { h.Close(); return nil, ErrUnsupported }
func (*Bell) Ring()                    {}
func (*Bell) OnHostile(func())         {}
func (*Bell) Close() error             { return ErrUnsupported }

type Conn struct{}

func Dial(context.Context, string) (*Conn, error)     { return nil, ErrUnsupported }
func (*Conn) Send([]byte, ...Handle) error            { return ErrUnsupported }
func (*Conn) Recv([]byte, int) (int, []Handle, error) { return 0, nil, ErrUnsupported }
func (*Conn) PeerCred() (Cred, error)                 { return Cred{}, ErrUnsupported }
func (*Conn) SetDeadline(time.Time) error             { return ErrUnsupported }
func (*Conn) CloseWrite() error                       { return ErrUnsupported }
func (*Conn) Close() error                            { return ErrUnsupported }
func (*Conn) YieldToPeer()                            {}

type Listener struct{}

func Listen(string, bool) (*Listener, error) { return nil, ErrUnsupported }
func (*Listener) Accept() (*Conn, error)     { return nil, ErrUnsupported }
func (*Listener) Close() error               { return ErrUnsupported }

func RuntimeDir(string) (string, error)           { return "", ErrUnsupported }
func EndpointPath(string, string) (string, error) { return "", ErrUnsupported }
func CheckPathName(string) error                  { return ErrUnsupported }
func IsPathName(string) bool                      { return false }
func ListNames(string) ([]Entry, error)           { return nil, ErrUnsupported }

type DirWatch struct{}

func WatchDir(string) (*DirWatch, error) { return nil, ErrUnsupported }
func (*DirWatch) Wait(time.Time) error   { return ErrUnsupported }
func (*DirWatch) Close() error           { return ErrUnsupported }

func PinProcess([]int) error { return ErrUnsupported }

var clockBase = time.Now()

// Nanotime returns a monotonic time in nanoseconds.
func Nanotime() int64 { return int64(time.Since(clockBase)) }
