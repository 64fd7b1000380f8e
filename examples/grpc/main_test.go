//go:build linux || windows

package main

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/shmlink/shmlink"
	"github.com/shmlink/shmlink/examples/internal/exampletest"
	"github.com/shmlink/shmlink/internal/testproc"
)

// The servers are the example's main, run as "grpc server ..." in a child
// process (the test binary re-executed as the role "grpc"); the clients
// are the test process itself, or main again as "grpc client ...".
func TestMain(m *testing.M) {
	testproc.Main(m, map[string]func([]string) error{"grpc": testproc.Program(main)})
}

func startServer(t *testing.T, addr string, extra ...string) (*testproc.Proc, string) {
	t.Helper()
	return exampletest.StartServer(t, "grpc", addr, extra...)
}

func dialTest(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := dial(addr, links)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// testCtx bounds a test's calls.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// recvN reads n messages of a Count, numbered from first.
func recvN(t *testing.T, s grpc.ClientStream, first, n int) {
	t.Helper()
	for i := first; i < first+n; i++ {
		var m Msg
		if err := s.RecvMsg(&m); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if m.N != i {
			t.Fatalf("message %d is numbered %d", i, m.N)
		}
	}
}

// TestUnaryAndStream: the health service (protobuf) and the echo service
// (JSON) answer over one link; a stream of 1,000 messages arrives whole,
// in order, then ends.
func TestUnaryAndStream(t *testing.T) {
	exampletest.LinkDir(t)
	srv, addr := startServer(t, "calls")
	cc := dialTest(t, addr)
	ctx := testCtx(t)
	h, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v, %v", h, err)
	}
	for i := range 100 {
		text := strings.Repeat("x", i*100)
		m, err := echo(ctx, cc, &Msg{Text: text})
		if err != nil || m.Text != text || m.PID != srv.Pid() {
			t.Fatalf("echo %d: %+v, %v", i, m, err)
		}
	}
	s, err := count(ctx, cc, 1000)
	if err != nil {
		t.Fatal(err)
	}
	recvN(t, s, 0, 1000)
	if err := s.RecvMsg(new(Msg)); err != io.EOF {
		t.Errorf("after the last message: %v, want io.EOF", err)
	}
}

// TestDeadline: a call's deadline ends it on time with DeadlineExceeded,
// and reaches the server, whose handler sees its context end (by the
// deadline sent with the call, or by the client's cancellation, whichever
// comes first).
func TestDeadline(t *testing.T) {
	exampletest.LinkDir(t)
	srv, addr := startServer(t, "deadline")
	cc := dialTest(t, addr)
	if _, err := echo(testCtx(t), cc, &Msg{Text: "connect first"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := echo(ctx, cc, &Msg{Wait: "1m"})
	took := time.Since(start)
	if status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("a call past its deadline: %v, want DeadlineExceeded", err)
	}
	if took > 5*time.Second {
		t.Errorf("the call took %v, its deadline was 200ms", took)
	}
	srv.Stdout.Expect(t, "echo: gave up waiting: context")
}

// TestKillMidStream: a server killed with SIGKILL in the middle of a
// stream ends the stream with Unavailable at once, not a hang; the same
// client connection then reaches a server restarted on the name.
func TestKillMidStream(t *testing.T) {
	exampletest.LinkDir(t)
	srv, addr := startServer(t, "kill")
	cc := dialTest(t, addr)
	s, err := count(testCtx(t), cc, 0) // endless
	if err != nil {
		t.Fatal(err)
	}
	recvN(t, s, 0, 100)
	srv.Kill(t)
	killed := time.Now()
	for {
		if err = s.RecvMsg(new(Msg)); err != nil {
			break
		}
	}
	t.Logf("the stream ended %v after the kill: %v", time.Since(killed), err)
	if status.Code(err) != codes.Unavailable {
		t.Errorf("a stream from a killed server ended with %v, want Unavailable", err)
	}
	if code := srv.ExitCode(t); !killedExit(code) {
		t.Errorf("the server was not killed: exit code %d", code)
	}

	// A call made while no server listens waits (WaitForReady), its
	// connection's dialer waiting for the name to be served again
	// (Config.Wait); a restarted server answers it.
	var m *Msg
	var wg sync.WaitGroup
	wg.Go(func() { m, err = echo(testCtx(t), cc, &Msg{Text: "again"}, grpc.WaitForReady(true)) })
	again, _ := startServer(t, addr)
	restarted := time.Now()
	wg.Wait()
	if err != nil || m.Text != "again" || m.PID != again.Pid() {
		t.Fatalf("after the restart: %+v, %v; want an answer from pid %d", m, err, again.Pid())
	}
	t.Logf("answered by the restarted server %v after it listened", time.Since(restarted))
}

// TestGracefulStop: told to stop (here by the end of its stdin, as a
// parent does on every OS), the server's GracefulStop lets a unary call
// in flight finish with its answer, ends an endless stream cleanly (the
// handler returns), removes the name, and the server exits 0.
func TestGracefulStop(t *testing.T) {
	testGracefulStop(t, func(t *testing.T, srv *testproc.Proc) { srv.Stdin.Close() })
}

// testGracefulStop is TestGracefulStop with stop as the way to tell the
// server.
func testGracefulStop(t *testing.T, stop func(*testing.T, *testproc.Proc)) {
	exampletest.LinkDir(t)
	srv, addr := startServer(t, "graceful")
	cc := dialTest(t, addr)
	ctx := testCtx(t)
	s, err := count(ctx, cc, 0)
	if err != nil {
		t.Fatal(err)
	}
	recvN(t, s, 0, 10)
	var wg sync.WaitGroup
	var held *Msg
	var heldErr error
	wg.Go(func() { held, heldErr = echo(ctx, cc, &Msg{Text: "held", Wait: "stop"}) })
	srv.Stdout.Expect(t, "echo: waiting for the server to stop")

	stop(t, srv)
	wg.Wait()
	if heldErr != nil || held.Text != "held" {
		t.Errorf("the call in flight across GracefulStop: %+v, %v", held, heldErr)
	}
	for err == nil {
		err = s.RecvMsg(new(Msg))
	}
	if err != io.EOF {
		t.Errorf("the stream across GracefulStop ended with %v, want io.EOF", err)
	}
	srv.Stdout.Expect(t, "stopped gracefully")
	srv.Wait(t)
	if _, err := shmlink.Dial(ctx, addr, nil); !errors.Is(err, shmlink.ErrNoServer) {
		t.Errorf("dial after the server stopped: %v, want ErrNoServer", err)
	}

	// With no server, a call's deadline still ends it, though the dialer
	// waits for one, and closing the connection ends that wait.
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := echo(short, cc, &Msg{}, grpc.WaitForReady(true)); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("a call with no server: %v, want DeadlineExceeded", err)
	}
	closed := make(chan error, 1)
	go func() { closed <- cc.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("closing a connection whose dialer waits for a server hangs")
	}
}

// TestClientCommand: the client is main too, in a process of its own,
// against a server process, over a link and over TCP (the same code, told
// host:port).
func TestClientCommand(t *testing.T) {
	exampletest.LinkDir(t)
	for _, tc := range []struct{ name, addr string }{{"link", "cli"}, {"tcp", "127.0.0.1:0"}} {
		t.Run(tc.name, func(t *testing.T) {
			srv, addr := startServer(t, tc.addr)
			out := exampletest.Run(t, "grpc", []string{"client", "--addr", addr, "one", "two words"})
			pid := " (from pid " + strconv.Itoa(srv.Pid()) + ")\n"
			want := "health: SERVING\necho: one" + pid + "echo: two words" + pid + "count: 0 1 2\n"
			if out != want {
				t.Errorf("client output:\n%s\nwant:\n%s", out, want)
			}
		})
	}
}

// TestDemo: with no arguments the example starts its own server process,
// calls it and stops it.
func TestDemo(t *testing.T) {
	exampletest.LinkDir(t)
	exampletest.Run(t, "grpc", nil, "health: SERVING", "echo: world", "count: 0 1 2", "stopped gracefully", "server stopped")
}
