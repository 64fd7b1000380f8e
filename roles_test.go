//go:build linux || windows

package shmlink

import "maps"

// childRoles are the programs a child process can run (see startChild and
// internal/testproc), each in the file of the tests that use it, on every
// OS with a backend; osRoles (roles_linux_test.go, roles_windows_test.go)
// adds those of one OS. On Linux TestMain also adds the role that runs any
// of them in a container (internal/testns).
var childRoles = map[string]func(args []string) error{
	// helpers_test.go: honest peers.
	"echo-server": childEchoServer,
	"echo-client": childEchoClient,
	"sink":        childSink,
	"hold":        childHold,

	// restart_test.go: Links that come and go.
	"link-echo-server":   childLinkEchoServer,
	"link-burst-server":  childLinkBurstServer,
	"link-client-sender": childLinkClientSender,
	"link-client-flood":  childLinkClientFlood,

	// crash_test.go: peers to kill, and control connections that never
	// speak.
	"write-forever": childWriteForever,
	"raw-accept":    childRawAccept,
	"raw-connect":   childRawConnect,

	// hostile_test.go: an honest handshake, then garbage in the memory.
	"scribble": childScribble,

	// scale_test.go: many links at once.
	"many-links": childManyLinks,
	"idle-links": childIdleLinks,
}

// roles is childRoles with osRoles.
func roles() map[string]func(args []string) error {
	r := maps.Clone(childRoles)
	maps.Copy(r, osRoles)
	return r
}
