//go:build linux

package shmlink

// childRoles are the programs a child process can run (see startChild and
// internal/testproc), each in the file of the tests that use it; TestMain
// adds the role that runs any of them in a container (internal/testns).
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

	// crash_test.go: peers to kill, and sockets that never speak.
	"write-forever": childWriteForever,
	"raw-accept":    childRawAccept,
	"raw-connect":   childRawConnect,

	// scale_test.go: many links at once.
	"many-links": childManyLinks,
	"idle-links": childIdleLinks,

	// bench_test.go: the benchmarks' peer.
	"bench-peer": childBenchPeer,
	// idle_bench_test.go: BenchmarkIdleGap's server.
	"idle-echo": childIdleEcho,

	// copy_bench_linux_test.go: the copy strategy and zero-copy benchmark's peer.
	"copy-peer": childCopyPeer,

	// zerocopy_linux_test.go: a peer that echoes with the zero-copy calls,
	// and one that scribbles on a message it lent.
	"zc-echo-server": childZeroCopyEchoServer,
	"zc-scribbler":   childZeroCopyScribbler,

	// hostile_client_linux_test.go, hostile_server_linux_test.go,
	// handshake_abuse_linux_test.go: hand-written peers that break the
	// protocol.
	"hostile-client":  childHostileClient,
	"hostile-server":  childHostileServer,
	"handshake-abuse": childHandshakeAbuse,

	// perm_linux_test.go: a client of another user.
	"perm-dial": childPermDial,

	// container_linux_test.go: peers for containers (internal/testns runs
	// any role in one); dial-check is perm-dial's client, in
	// perm_linux_test.go, without the drop to nobody.
	"link-peer":   childLinkPeer,
	"serve-check": childServeCheck,
	"dial-check":  childDialCheck,
}
