package shmlink

// osRoles are the roles of the Linux-only tests.
var osRoles = map[string]func(args []string) error{
	// bench_linux_test.go: the benchmarks' peer.
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
