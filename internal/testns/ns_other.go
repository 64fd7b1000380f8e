//go:build !linux

package testns

import "syscall"

const supported = false

func (Container) sysProcAttr() *syscall.SysProcAttr { return nil }
func namespaces() map[string]string                 { return nil }
func enter(spec) error                              { return errNoNamespaces }
func shmEmpty() error                               { return nil }
