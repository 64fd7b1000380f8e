//go:build !linux

package sys

import (
	"errors"
	"net"
	"os"
	"syscall"
	"time"
)

// ErrUnsupported is returned by every function on systems shmlink does not
// support yet.
var ErrUnsupported = errors.New("shmlink: not supported on this operating system yet")

var (
	ErrNotSealed    = errors.New("segment is not a sealed memfd")
	ErrNotEventfd   = errors.New("descriptor is not an eventfd")
	ErrTooManyFiles = errors.New("packet carried unexpected descriptors")
)

type Cred struct {
	PID, UID, GID int
	Groups        []int
}

func CreateSegment(string, int64) (*os.File, error)               { return nil, ErrUnsupported }
func CheckSegment(*os.File) (int64, error)                        { return 0, ErrUnsupported }
func Map(*os.File, int) ([]byte, error)                           { return nil, ErrUnsupported }
func Unmap([]byte) error                                          { return ErrUnsupported }
func NewEventfd() (*os.File, error)                               { return nil, ErrUnsupported }
func CheckEventfd(*os.File) error                                 { return ErrUnsupported }
func Signal(syscall.RawConn) error                                { return ErrUnsupported }
func SendMsg(*net.UnixConn, []byte, ...*os.File) error            { return ErrUnsupported }
func RecvMsg(*net.UnixConn, []byte, int) (int, []*os.File, error) { return 0, nil, ErrUnsupported }
func PeerCred(*net.UnixConn) (Cred, error)                        { return Cred{}, ErrUnsupported }
func LockDir(string) (func(), error)                              { return nil, ErrUnsupported }
func Owner(os.FileInfo) int                                       { return -1 }
func IsConnRefused(error) bool                                    { return false }
func IsPermission(error) bool                                     { return false }
func IsNotExist(error) bool                                       { return false }

type DirWatch struct{}

func WatchDir(string) (*DirWatch, error) { return nil, ErrUnsupported }
func (*DirWatch) Wait(time.Time) error   { return ErrUnsupported }
func (*DirWatch) Close() error           { return nil }
