package sys

import (
	"fmt"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/windows"
)

// A registered wait turns an object becoming signalled into a value on a
// channel, without an OS thread per waiter: Windows' thread pool watches up
// to 63 objects per thread of its own (RegisterWaitForSingleObject), and a
// goroutine parks on the channel. Go's netpoller on Windows is an I/O
// completion port, which serves reads and writes but cannot wait on an
// event; this is the part it lacks.
//
// syscall.NewCallback makes a limited number of callbacks per process, so
// one callback serves every registration: its context is a key into
// waits, which maps to the channel to poke.
type registeredWait struct {
	wait windows.Handle // from RegisterWaitForSingleObject
	key  uintptr
}

var waits struct {
	sync.Mutex
	next uintptr
	m    map[uintptr]chan<- struct{}
}

var waitCallback = syscall.NewCallback(func(key, timedOut uintptr) uintptr {
	waits.Lock()
	ch := waits.m[key]
	waits.Unlock()
	if ch != nil {
		select {
		case ch <- struct{}{}:
		default: // a wake-up is already pending: they coalesce
		}
	}
	return 0
})

// registerWait has ch poked each time h is signalled (once only, with
// once). The callback runs in the pool's wait thread
// (WT_EXECUTEINWAITTHREAD): it only does a non-blocking channel send.
func registerWait(h windows.Handle, ch chan<- struct{}, once bool) (*registeredWait, error) {
	waits.Lock()
	if waits.m == nil {
		waits.m = make(map[uintptr]chan<- struct{})
	}
	waits.next++
	key := waits.next
	waits.m[key] = ch
	waits.Unlock()
	flags := uintptr(wtExecuteInWaitThread)
	if once {
		flags |= wtExecuteOnlyOnce
	}
	var wh windows.Handle
	r, _, err := procRegisterWaitForSingleObject.Call(uintptr(unsafe.Pointer(&wh)), uintptr(h), waitCallback, key, infinite, flags)
	if r == 0 {
		waits.Lock()
		delete(waits.m, key)
		waits.Unlock()
		return nil, fmt.Errorf("RegisterWaitForSingleObject: %w", err)
	}
	return &registeredWait{wait: wh, key: key}, nil
}

// stop cancels the registration and returns once no callback for it runs
// any more (UnregisterWaitEx with INVALID_HANDLE_VALUE). It must not be
// called from a callback.
func (w *registeredWait) stop() {
	procUnregisterWaitEx.Call(uintptr(w.wait), uintptr(windows.InvalidHandle))
	waits.Lock()
	delete(waits.m, w.key)
	waits.Unlock()
}
