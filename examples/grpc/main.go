// Grpc runs gRPC over a shmlink link between two processes: the server is
// grpc.Server.Serve on shmlink.Listen, the client a grpc.ClientConn whose
// dialer opens links. The same code runs over TCP when --addr is
// host:port. The service needs no code generation: the standard health
// service, and an echo service registered by hand with a JSON codec.
//
//	cd examples/grpc
//	go run .                                   # starts a server process and calls it
//	go run . server --addr api                 # or in two terminals:
//	go run . client --addr api hello world
//	go run . server --addr 127.0.0.1:50051     # the same over TCP
//	go run . bench                             # unary call latency: shmlink, unix socket, TCP
//
// --addr is a link name (or an absolute socket path), host:port for TCP,
// or unix:PATH for a unix socket. The server stops gracefully
// (GracefulStop) on Ctrl-C or SIGTERM.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/shmlink/shmlink"
	"github.com/shmlink/shmlink/examples/internal/appbench"
	"github.com/shmlink/shmlink/examples/internal/cmdline"
	"github.com/shmlink/shmlink/examples/internal/serverproc"
	"github.com/shmlink/shmlink/examples/internal/transport"
)

const usage = `usage:
  grpc                                  start a server process and call it
  grpc server [--addr A] [--spin D] [--no-poller]
  grpc client [--addr A] [TEXT...]      check health, echo each text, stream a count
  grpc bench  [--rounds N] [--duration D] [--inflight 1,32] [--spin D] [--no-poller]
A is a link name, host:port (TCP) or unix:PATH; default "grpc-example"`

func main() {
	cmdline.Main("grpc", usage, demo, map[string]func([]string) error{
		"server": serveCommand, "client": clientCommand, "bench": benchCommand})
}

const defaultAddr = "grpc-example"

// ---- the echo service, without generated code ----

// Msg is every message of the echo service, as JSON.
type Msg struct {
	Text string `json:"text,omitempty"`
	// N is a Count's number of messages (0: until the call ends), and
	// the number of each message it streams.
	N int `json:"n,omitempty"`
	// Wait has Echo wait before it answers: a duration, or "stop" for the
	// server to begin stopping.
	Wait string `json:"wait,omitempty"`
	// PID is the server's process, in answers.
	PID int `json:"pid,omitempty"`
}

// jsonCodec carries the echo service's messages; the health service keeps
// protobuf. Calls choose it by content subtype: application/grpc+json.
type jsonCodec struct{}

func (jsonCodec) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (jsonCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
func (jsonCodec) Name() string                       { return "json" }

func init() { encoding.RegisterCodec(jsonCodec{}) }

const (
	echoMethod  = "/shmlink.example.Echo/Echo"
	countMethod = "/shmlink.example.Echo/Count"
)

// echoService is what the service description dispatches to.
type echoService interface {
	Echo(ctx context.Context, in *Msg) (*Msg, error)
	Count(in *Msg, stream grpc.ServerStream) error
}

// echoDesc is what protoc would generate for
//
//	service Echo { rpc Echo(Msg) returns (Msg); rpc Count(Msg) returns (stream Msg); }
var echoDesc = grpc.ServiceDesc{
	ServiceName: "shmlink.example.Echo",
	HandlerType: (*echoService)(nil),
	Methods: []grpc.MethodDesc{{MethodName: "Echo",
		Handler: func(srv any, ctx context.Context, dec func(any) error, intercept grpc.UnaryServerInterceptor) (any, error) {
			in := new(Msg)
			if err := dec(in); err != nil {
				return nil, err
			}
			call := func(ctx context.Context, req any) (any, error) { return srv.(echoService).Echo(ctx, req.(*Msg)) }
			if intercept == nil {
				return call(ctx, in)
			}
			return intercept(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: echoMethod}, call)
		}}},
	Streams: []grpc.StreamDesc{{StreamName: "Count", ServerStreams: true,
		Handler: func(srv any, stream grpc.ServerStream) error {
			in := new(Msg)
			if err := stream.RecvMsg(in); err != nil {
				return err
			}
			return srv.(echoService).Count(in, stream)
		}}},
}

// ---- server ----

type echoServer struct {
	stopping chan struct{} // closed when the server begins to stop
}

func (s *echoServer) Echo(ctx context.Context, in *Msg) (*Msg, error) {
	var wait <-chan time.Time
	switch in.Wait {
	case "":
	case "stop":
		fmt.Println("echo: waiting for the server to stop")
	default:
		d, err := time.ParseDuration(in.Wait)
		if err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		wait = time.After(d)
	}
	if in.Wait != "" {
		select {
		case <-wait:
		case <-s.stopping:
		case <-ctx.Done():
			// The client's deadline travels with the call.
			fmt.Printf("echo: gave up waiting: %v\n", ctx.Err())
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	return &Msg{Text: in.Text, PID: os.Getpid()}, nil
}

// Count streams in.N messages numbered from 0, or, with in.N 0, until the
// call ends or the server begins to stop.
func (s *echoServer) Count(in *Msg, stream grpc.ServerStream) error {
	for i := 0; in.N == 0 || i < in.N; i++ {
		select {
		case <-s.stopping:
			return nil
		default:
		}
		if err := stream.SendMsg(&Msg{N: i, PID: os.Getpid()}); err != nil {
			return err
		}
	}
	return nil
}

func serveCommand(args []string) error {
	addr := defaultAddr
	var cfg shmlink.Config
	cmdline.Flags(usage, args, func(fs *flag.FlagSet) {
		fs.StringVar(&addr, "addr", addr, "where to listen")
		fs.DurationVar(&cfg.SpinTime, "spin", 0, "the links' Config.SpinTime (default: the library's)")
		fs.BoolVar(&cfg.NoPoller, "no-poller", false, "the links' Config.NoPoller")
	})
	ctx, stop := serverproc.StopContext()
	defer stop()

	l, err := transport.Listen(addr, &cfg)
	if err != nil {
		return err
	}
	gs := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	es := &echoServer{stopping: make(chan struct{})}
	gs.RegisterService(&echoDesc, es)
	served := make(chan error, 1)
	go func() { served <- gs.Serve(l) }()
	serverproc.Listening(transport.Addr(addr, l))
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	// GracefulStop closes the listener (the link name goes away), refuses
	// new calls and waits for those in flight; Count streams end.
	close(es.stopping)
	hs.Shutdown()
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
		fmt.Println("stopped gracefully")
	case <-time.After(10 * time.Second):
		gs.Stop()
		fmt.Println("stopped: calls still in flight after 10s were cut off")
	}
	return nil
}

// ---- client ----

// links is the Config of the example's links: a client started before its
// server, or reconnecting to one that restarts, waits for it to listen.
var links = &shmlink.Config{Wait: true}

// dial returns a client connection to addr, over links of Config cfg if
// it names a link. It connects on the first call, and again after losing
// its server.
func dial(addr string, cfg *shmlink.Config) (*grpc.ClientConn, error) {
	d := transport.Dialer(addr, cfg)
	return grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, target string) (net.Conn, error) {
			return d(ctx, "", target)
		}))
}

// echo calls Echo.
func echo(ctx context.Context, cc *grpc.ClientConn, in *Msg, opts ...grpc.CallOption) (*Msg, error) {
	out := new(Msg)
	err := cc.Invoke(ctx, echoMethod, in, out, append(opts, grpc.CallContentSubtype(jsonCodec{}.Name()))...)
	return out, err
}

// count starts a Count of n messages (0: until ctx ends).
func count(ctx context.Context, cc *grpc.ClientConn, n int) (grpc.ClientStream, error) {
	s, err := cc.NewStream(ctx, &echoDesc.Streams[0], countMethod, grpc.CallContentSubtype(jsonCodec{}.Name()))
	if err != nil {
		return nil, err
	}
	if err := s.SendMsg(&Msg{N: n}); err != nil {
		return nil, err
	}
	return s, s.CloseSend()
}

func clientCommand(args []string) error {
	addr := defaultAddr
	texts := cmdline.Flags(usage, args, func(fs *flag.FlagSet) { fs.StringVar(&addr, "addr", addr, "where the server listens") })
	if len(texts) == 0 {
		texts = []string{"hello"}
	}
	cc, err := dial(addr, links)
	if err != nil {
		return err
	}
	defer cc.Close()
	return talk(cc, texts)
}

// talk checks the server's health, echoes each text and streams a count.
func talk(cc *grpc.ClientConn, texts []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	fmt.Println("health:", h.Status)
	for _, text := range texts {
		m, err := echo(ctx, cc, &Msg{Text: text})
		if err != nil {
			return fmt.Errorf("echo: %w", err)
		}
		fmt.Printf("echo: %s (from pid %d)\n", m.Text, m.PID)
	}
	s, err := count(ctx, cc, 3)
	if err != nil {
		return fmt.Errorf("count: %w", err)
	}
	var got []string
	for {
		var m Msg
		if err := s.RecvMsg(&m); err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("count: %w", err)
		}
		got = append(got, strconv.Itoa(m.N))
	}
	fmt.Println("count:", strings.Join(got, " "))
	return nil
}

// demo starts a server process on a link and calls it.
func demo() error {
	return serverproc.Demo("grpc-demo", func(addr string) error {
		cc, err := dial(addr, links)
		if err != nil {
			return err
		}
		defer cc.Close()
		return talk(cc, []string{"hello", "world"})
	})
}

// ---- bench ----

func benchCommand(args []string) error {
	o := appbench.Options{What: "gRPC unary call, 64 B each way", Unit: "calls/s",
		NewClient: func(addr string, _ int, cfg *shmlink.Config) (appbench.Client, error) {
			// One connection carries every call in flight, as gRPC does.
			cc, err := dial(addr, cfg)
			return benchClient{cc}, err
		}}
	return appbench.Command(o, usage, args)
}

type benchClient struct{ *grpc.ClientConn }

var benchText = strings.Repeat("0123456789abcdef", 4)

func (b benchClient) Do(ctx context.Context) error {
	m, err := echo(ctx, b.ClientConn, &Msg{Text: benchText})
	if err == nil && m.Text != benchText {
		err = errors.New("echo: the text came back changed")
	}
	return err
}
