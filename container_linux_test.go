package shmlink

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shmlink/shmlink/internal/testns"
	"github.com/shmlink/shmlink/internal/testproc"
)

// The container tests run the server and the client of a link each in a
// container of its own (internal/testns): IPC, mount, PID, network and UTS
// namespaces of its own and a /dev/shm of 1 MiB. The two share only a
// volume, a host directory that each sees at a path of its own, as
// containers of one compose file share a named volume.

// ctRing is the containers' ring size: the link's memory (two rings) is
// four times the containers' /dev/shm.
const ctRing = 2 << 20

// volume is a directory shared by containers. Like a new Docker volume,
// it has mode 0755; the containers' $SHMLINK_DIR is a directory in it,
// links, which the first to need it creates (mode 0700, as its user).
type volume struct {
	host string // the directory, as the host sees it
}

func newVolume(t *testing.T) *volume {
	v := &volume{host: testns.Dirs(t, "volume")[0]}
	if err := os.Chmod(v.host, 0o755); err != nil {
		t.Fatal(err)
	}
	return v
}

// at is where container who sees the volume.
func (v *volume) at(who string) string { return filepath.Join(filepath.Dir(v.host), who) }

// start runs role in container who, which sees the volume at v.at(who)
// with $SHMLINK_DIR in it, and returns once the role is ready.
func (v *volume) start(t *testing.T, who string, c testns.Container, role string, args ...string) *testproc.Proc {
	t.Helper()
	at := v.at(who)
	if err := os.Mkdir(at, 0o700); err != nil && !os.IsExist(err) {
		t.Fatal(err)
	}
	c.Volume, c.Mount = v.host, at
	o := testproc.Options{Name: who, WaitReady: true, Env: []string{RuntimeDirEnv + "=" + filepath.Join(at, "links")}}
	return c.Start(t, o, role, args...)
}

// peer starts a link-peer of role on name in container who, with rings of
// ring bytes.
func (v *volume) peer(t *testing.T, who string, c testns.Container, name, role string, ring int) *testproc.Proc {
	t.Helper()
	return v.start(t, who, c, "link-peer", name, role, strconv.Itoa(ring))
}

// empty fails the test if anything is left in the volume but an empty
// links.
func (v *volume) empty(t *testing.T) {
	t.Helper()
	os.Remove(filepath.Join(v.host, "links")) // only if empty
	entries, err := os.ReadDir(v.host)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left in the volume: %s", e.Name())
	}
}

// command writes a line of commands to a link-peer child.
func command(t *testing.T, p *testproc.Proc, line string) {
	t.Helper()
	if _, err := io.WriteString(p.Stdin, line+"\n"); err != nil {
		t.Fatalf("%v: %v", p, err)
	}
}

// childLinkPeer runs a Link on name args[0] in role args[1] ("client" or
// "server"), with rings of args[2] bytes, and prints each change of its
// status as "status S". A server echoes every message. A client takes
// commands on stdin, one a line:
//
//	send N SIZE   sends N more messages of SIZE bytes, prints "sent TOTAL"
//	every         sends one message of each of everySize, prints "sent TOTAL"
//	expect        waits for the echo of all it sent, prints "echoed TOTAL"
//
// Each echo is checked against what was sent, in order. At the end of
// stdin the peer closes its link.
func childLinkPeer(args []string) error {
	if err := childArgs(args, 3); err != nil {
		return err
	}
	ring, err := strconv.Atoi(args[2])
	if err != nil {
		return err
	}
	role := RoleClient
	if args[1] == "server" {
		role = RoleServer
	}
	var l *Link
	opened, ready := make(chan struct{}), make(chan struct{})
	sent := newEchoes()
	h := Handlers{OnStatus: func(s Status) { <-ready; fmt.Println("status", s) }}
	if role == RoleServer {
		h.OnMessage = func(m []byte) { <-opened; l.Send(m) }
	} else {
		h.OnMessage = sent.check
	}
	l, err = Open(context.Background(), args[0], role, h, &Config{RingSize: ring})
	if err != nil {
		return err
	}
	close(opened)
	testproc.Ready()
	close(ready)
	in := bufio.NewScanner(os.Stdin)
	for err == nil && in.Scan() {
		err = sent.run(l, strings.Fields(in.Text()), ring)
	}
	return errors.Join(err, l.Close())
}

// echoes is what a link-peer client sent, and how many of the echoes have
// come back right.
type echoes struct {
	mu    sync.Mutex
	sizes []int // of each message sent, in order
	got   int   // echoes checked
	bad   error
	more  chan struct{} // a value after each echo
}

func newEchoes() *echoes { return &echoes{more: make(chan struct{}, 1)} }

// run runs one command of a link-peer client.
func (e *echoes) run(l *Link, cmd []string, ring int) error {
	switch {
	case len(cmd) == 3 && cmd[0] == "send":
		n, err1 := strconv.Atoi(cmd[1])
		size, err2 := strconv.Atoi(cmd[2])
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		return e.send(l, slices.Repeat([]int{size}, n))
	case len(cmd) == 1 && cmd[0] == "every":
		return e.send(l, everySize(ring))
	case len(cmd) == 1 && cmd[0] == "expect":
		n, err := e.wait(20 * time.Second)
		fmt.Println("echoed", n)
		return err
	}
	return fmt.Errorf("%w: %q", errScenario, cmd)
}

// everySize lists message sizes for rings of ring bytes: every size up to
// 64 bytes, then each side of every power of two up to twice the ring,
// and the ring itself.
func everySize(ring int) []int {
	var sizes []int
	for n := 0; n <= 64; n++ {
		sizes = append(sizes, n)
	}
	for p := 128; p <= 2*ring; p *= 2 {
		sizes = append(sizes, p-1, p+1)
	}
	return append(sizes, ring)
}

func (e *echoes) send(l *Link, sizes []int) error {
	for _, size := range sizes {
		e.mu.Lock()
		seq := len(e.sizes)
		e.sizes = append(e.sizes, size)
		e.mu.Unlock()
		if err := l.Send(testMessage(3, uint32(seq), size)); err != nil {
			return err
		}
	}
	fmt.Println("sent", len(e.sizes))
	return nil
}

func (e *echoes) check(m []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.bad != nil:
	case e.got == len(e.sizes):
		e.bad = fmt.Errorf("an echo of %d bytes, with nothing sent", len(m))
	case !bytes.Equal(m, testMessage(3, uint32(e.got), e.sizes[e.got])):
		e.bad = fmt.Errorf("echo %d: %d bytes that are not the %d sent", e.got, len(m), e.sizes[e.got])
	default:
		e.got++
	}
	select {
	case e.more <- struct{}{}:
	default:
	}
}

// wait waits until every message sent has been echoed, and returns how
// many were.
func (e *echoes) wait(timeout time.Duration) (int, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		e.mu.Lock()
		got, sent, bad := e.got, len(e.sizes), e.bad
		e.mu.Unlock()
		if bad != nil || got == sent {
			return got, bad
		}
		select {
		case <-e.more:
		case <-deadline.C:
			return got, fmt.Errorf("%d of %d echoes after %v", got, sent, timeout)
		}
	}
}

// TestContainerMessages: a server and a client in two containers exchange
// messages of every size, up to twice the ring, both ways (every message
// is echoed), over rings whose memory is four times either container's
// /dev/shm, with the name in $SHMLINK_DIR; and, with the name an absolute
// socket path in the volume, enough to go round the rings twice. A clean
// close on each side leaves nothing behind.
func TestContainerMessages(t *testing.T) {
	for _, tc := range []struct {
		how  string
		name func(v *volume, who string) string
		send string
	}{
		{"SHMLINK_DIR", func(*volume, string) string { return "ct" }, "every"},
		{"socket-path", func(v *volume, who string) string { return filepath.Join(v.at(who), "ct.sock") }, "send 64 65537"},
	} {
		t.Run(tc.how, func(t *testing.T) {
			openProcessWide()
			before := snapshot(t)
			v := newVolume(t)
			server := v.peer(t, "server", testns.Container{}, tc.name(v, "server"), "server", ctRing)
			client := v.peer(t, "client", testns.Container{}, tc.name(v, "client"), "client", ctRing)
			client.Stdout.Expect(t, "status connected")
			server.Stdout.Expect(t, "status connected")
			if tc.how == "SHMLINK_DIR" {
				if fi, err := os.Stat(filepath.Join(v.host, "links")); err != nil {
					t.Errorf("$SHMLINK_DIR was not made in the volume: %v", err)
				} else if fi.Mode().Perm() != 0o700 {
					t.Errorf("$SHMLINK_DIR made with mode %v, want 0700", fi.Mode().Perm())
				}
			}
			command(t, client, tc.send)
			command(t, client, "expect")
			sent := client.Stdout.Expect(t, "sent ")
			if echoed := client.Stdout.Expect(t, "echoed "); echoed[len("echoed "):] != sent[len("sent "):] {
				t.Fatalf("%s, but %s", sent, echoed)
			}
			client.Stdin.Close()
			client.Wait(t)
			server.Stdout.Expect(t, "status peer closed")
			server.Stdin.Close()
			server.Wait(t)
			v.empty(t)
			if after := snapshot(t); after != before {
				t.Errorf("left behind: before %+v, after %+v", before, after)
			}
		})
	}
}

// TestContainerRestart: a client-role Link in one container sends before
// any server exists; a server in another container comes, is killed
// (kill -9), and a new one comes: the client sees the loss as peer lost,
// waits, and nothing it committed is lost, what it sent while no server
// ran included. Then the client is killed, and the server sees peer lost.
func TestContainerRestart(t *testing.T) {
	v := newVolume(t)
	client := v.peer(t, "client", testns.Container{}, "ct", "client", ctRing)
	// serve starts a server in container who, and waits until the client
	// has the echoes of all it sent, n messages.
	serve := func(who string, n int) *testproc.Proc {
		server := v.peer(t, who, testns.Container{}, "ct", "server", ctRing)
		client.Stdout.Expect(t, "status connected")
		command(t, client, "expect")
		client.Stdout.Expect(t, fmt.Sprintf("echoed %d", n))
		return server
	}
	command(t, client, "send 50 200")
	client.Stdout.Expect(t, "sent 50")
	server := serve("server-1", 50)
	server.Kill(t)
	client.Stdout.Expect(t, "status peer lost")
	client.Stdout.Expect(t, "status waiting")

	command(t, client, "send 50 5000")
	client.Stdout.Expect(t, "sent 100")
	server = serve("server-2", 100)

	client.Kill(t)
	server.Stdout.Expect(t, "status connected")
	server.Stdout.Expect(t, "status peer lost")
	server.Stdout.Expect(t, "status waiting")
	server.Stdin.Close()
	server.Wait(t)
	v.empty(t)
}

// childServeCheck listens on the socket path args[0], admitting uid
// args[1] and gid args[2] besides its own user ("-": none), and says
// ready. For each client it accepts it prints "peer uid U", the client's
// uid as the server sees it, and echoes it. It stops at the end of stdin.
func childServeCheck(args []string) error {
	if err := childArgs(args, 3); err != nil {
		return err
	}
	cfg := &Config{}
	for i, allow := range []*[]int{&cfg.AllowUIDs, &cfg.AllowGIDs} {
		if id := args[1+i]; id != "-" {
			n, err := strconv.Atoi(id)
			if err != nil {
				return err
			}
			*allow = []int{n}
		}
	}
	l, err := Listen(args[0], cfg)
	if err != nil {
		return err
	}
	testproc.Ready()
	// Accept returns as soon as Close begins; Close's return says that
	// the socket file is gone too.
	closed := make(chan error, 1)
	go func() {
		io.Copy(io.Discard, os.Stdin)
		closed <- l.Close()
	}()
	for {
		c, err := l.AcceptConn()
		if errors.Is(err, net.ErrClosed) {
			return <-closed
		}
		if err != nil {
			return err
		}
		fmt.Println("peer uid", c.PeerUID())
		if err := echo(c); err != nil {
			return err
		}
	}
}

// TestContainerUsers: a client in one container and a server in another
// that run as different users. The client is refused by default, whoever
// refuses, with an error that says which option admits it, and admitted
// with AllowUIDs or AllowGIDs.
//
// With user namespaces, each side's check sees the other's uid as its own
// user namespace maps it (SO_PEERCRED translates it): a host uid mapped
// there appears as its uid there, one that is not appears as the overflow
// uid 65534 (nobody). Two containers that map their user to the same host
// uid are the same user to each other.
func TestContainerUsers(t *testing.T) {
	root := testns.Container{}
	nobodyCt := testns.Container{User: nobody}
	remapped := testns.Container{User: 1000, HostUser: 100000} // as Docker's userns-remap or rootless Podman do
	remapped2 := testns.Container{User: 2000, HostUser: 200000}
	for _, tc := range []struct {
		name           string
		server, client testns.Container
		owner          int    // the host uid of the volume: the server's
		allowUID       string // the server's allow lists ("-": none)
		allowGID       string
		openSocket     bool   // make the socket connectable by all, so that the credential check decides
		trust          string // the uid the client admits ("default": none)
		want           string // "ok", or what the refusal says
		peerUID        int    // the client's uid as the server sees it
	}{
		{"refused-by-server", root, nobodyCt, 0, "-", "-", true, "0", allowOnServer, 0},
		{"refused-by-socket-mode", root, nobodyCt, 0, "-", "-", false, "0", allowBySocket, 0},
		{"refused-by-client", root, nobodyCt, 0, strconv.Itoa(nobody), "-", false, "default", allowOnClient, 0},
		{"allow-uid", root, nobodyCt, 0, strconv.Itoa(nobody), "-", false, "0", "ok", nobody},
		{"allow-gid", root, nobodyCt, 0, "-", strconv.Itoa(nobody), false, "0", "ok", nobody},
		// The server sees the remapped client as host uid 100000; the
		// client sees the server's root as root: it maps host uid 0.
		{"userns-refused", root, remapped, 0, "-", "-", true, "0", allowOnServer, 0},
		{"userns-allow-host-uid", root, remapped, 0, "100000", "-", false, "0", "ok", 100000},
		{"userns-same-mapping", remapped, remapped, 100000, "-", "-", false, "default", "ok", 1000},
		{"userns-other-mappings", remapped2, remapped, 200000, strconv.Itoa(nobody), "-", false, strconv.Itoa(nobody), "ok", nobody},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.server.Require(t)
			tc.client.Require(t)
			v := newVolume(t)
			if err := os.Chown(v.host, tc.owner, tc.owner); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(v.host, 0o711); err != nil {
				t.Fatal(err)
			}
			sock := func(who string) string { return filepath.Join(v.at(who), "users.sock") }
			server := v.start(t, "server", tc.server, "serve-check", sock("server"), tc.allowUID, tc.allowGID)
			hostSock := filepath.Join(v.host, "users.sock")
			if tc.openSocket {
				if err := os.Chmod(hostSock, 0o666); err != nil {
					t.Fatal(err)
				}
			} else if fi, err := os.Stat(hostSock); err != nil {
				t.Fatal(err)
			} else if admits := tc.allowUID != "-" || tc.allowGID != "-"; admits != (fi.Mode().Perm() == 0o666) {
				t.Errorf("socket mode %v with allow lists %s and %s: want 0666 exactly when the server admits others", fi.Mode().Perm(), tc.allowUID, tc.allowGID)
			}
			outcome := "ok"
			if tc.want != "ok" {
				outcome = "perm"
			}
			client := v.start(t, "client", tc.client, "dial-check", sock("client"), tc.trust, outcome)
			client.Wait(t)
			if tc.want != "ok" {
				if line := client.Stderr.Expect(t, "refused as expected"); !strings.Contains(line, tc.want) {
					t.Errorf("the refusal does not say %q", tc.want)
				}
			}
			server.Stdin.Close()
			server.Wait(t)
			accepted := server.Stdout.All(t)
			if want := fmt.Sprintf("peer uid %d\n", tc.peerUID); tc.want == "ok" && !strings.Contains(accepted, want) {
				t.Errorf("server output %q, want %q", accepted, want)
			}
			if tc.want != "ok" && strings.Contains(accepted, "peer uid") {
				t.Errorf("a refused client was accepted: %q", accepted)
			}
			v.empty(t)
		})
	}
}
