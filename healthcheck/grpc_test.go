package healthcheck

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
)

// grpcBackend serves grpc.health.v1 on 127.0.0.1 with services "up" (SERVING) and "down"
// (NOT_SERVING); "" is SERVING. With withHealth false the server has no health service.
func grpcBackend(t *testing.T, withHealth bool, opts ...grpc.ServerOption) int {
	l := listen(t)
	s := grpc.NewServer(opts...)
	if withHealth {
		hs := health.NewServer()
		hs.SetServingStatus("up", healthpb.HealthCheckResponse_SERVING)
		hs.SetServingStatus("down", healthpb.HealthCheckResponse_NOT_SERVING)
		healthpb.RegisterHealthServer(s, hs)
	}
	go s.Serve(l)
	t.Cleanup(s.Stop)
	return portOf(t, l.Addr().String())
}

// selfSigned returns a certificate for 127.0.0.1 that no one trusts.
func selfSigned(t *testing.T) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "steerdns test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestProbeGRPC(t *testing.T) {
	t.Parallel()
	port := grpcBackend(t, true)
	bare := grpcBackend(t, false)
	service := func(s string) func(*Config) { return func(c *Config) { c.Service = s } }
	tests := []struct {
		name   string
		tg     Target
		reason string
	}{
		{"server", testTarget(TypeGRPC, port, nil), ""},
		{"serving", testTarget(TypeGRPC, port, service("up")), ""},
		{"not serving", testTarget(TypeGRPC, port, service("down")), ReasonGRPC},
		{"unknown service", testTarget(TypeGRPC, port, service("nothing")), ReasonGRPC},
		{"no health service", testTarget(TypeGRPC, bare, nil), ReasonGRPC},
		{"tls to plaintext", testTarget(TypeGRPC, port, func(c *Config) { c.TLS = true; c.InsecureTLS = true }), ReasonTLS},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			wantReason(t, probe(t, tc.tg), tc.reason)
		})
	}
}

func TestProbeGRPCTLS(t *testing.T) {
	t.Parallel()
	port := grpcBackend(t, true, grpc.Creds(credentials.NewServerTLSFromCert(ptr(selfSigned(t)))))
	tls := func(insecure bool) func(*Config) {
		return func(c *Config) {
			c.TLS, c.InsecureTLS, c.Service = true, insecure, "up"
			c.Timeout, c.Interval = 3*time.Second, 5*time.Second // the first verification loads the system's roots
		}
	}
	wantReason(t, probe(t, testTarget(TypeGRPC, port, tls(false))), ReasonTLS)
	wantReason(t, probe(t, testTarget(TypeGRPC, port, tls(true))), "")
}

func TestProbeGRPCFailures(t *testing.T) {
	t.Parallel()
	silent, _ := silentPort(t)
	tests := []struct {
		name   string
		port   int
		reason string
	}{
		{"refused", refusedPort(t), ReasonRefused},
		{"reset", resetPort(t), ReasonReset},
		{"never answers", silent, ReasonTimeout},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			wantReason(t, probe(t, testTarget(TypeGRPC, tc.port, nil)), tc.reason)
		})
	}
}

func ptr[T any](v T) *T { return &v }

// countedGRPC is a gRPC health server on 127.0.0.1 whose listener counts the connections it
// accepts and the ones that closed, with a health service that answers SERVING, or NOT_SERVING
// while down, or never while hang.
type countedGRPC struct {
	healthpb.UnimplementedHealthServer
	port         int
	conns, calls counter
	closed       counter
	down, hang   atomic.Bool
}

func newCountedGRPC(t *testing.T, opts ...grpc.ServerOption) *countedGRPC {
	b := &countedGRPC{}
	l := &countingListener{Listener: listen(t), b: b}
	s := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(s, b)
	go s.Serve(l)
	t.Cleanup(s.Stop)
	b.port = portOf(t, l.Addr().String())
	return b
}

func (b *countedGRPC) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	b.calls.add(1)
	if b.hang.Load() {
		<-ctx.Done() // the prober gave up
		return nil, ctx.Err()
	}
	if b.down.Load() {
		return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_NOT_SERVING}, nil
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

type countingListener struct {
	net.Listener
	b *countedGRPC
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.b.conns.add(1)
	return &countedConn{Conn: c, closed: &l.b.closed}, nil
}

type countedConn struct {
	net.Conn
	once   sync.Once
	closed *counter
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.closed.add(1) })
	return c.Conn.Close()
}

// The engine's gRPC probes of a target reuse one connection, plaintext or TLS.
func TestEngineReusesGRPCConnection(t *testing.T) {
	for _, tlsToo := range []bool{false, true} {
		t.Run(map[bool]string{false: "plaintext", true: "tls"}[tlsToo], func(t *testing.T) {
			var opts []grpc.ServerOption
			if tlsToo {
				opts = append(opts, grpc.Creds(credentials.NewServerTLSFromCert(ptr(selfSigned(t)))))
			}
			b := newCountedGRPC(t, opts...)
			results, _ := engineOn(t, quick(TypeGRPC, b.port, func(c *Config) { c.TLS = tlsToo }))
			eventually(t, 5*time.Second, "5 probes", func() bool { return len(results()) >= 5 })
			if n := b.conns.get(); n != 1 {
				t.Errorf("%d calls on %d connections, want 1 connection", b.calls.get(), n)
			}
			for _, r := range results() {
				if r != "" {
					t.Errorf("a probe failed: %s", r)
				}
			}
		})
	}
}

// A gRPC probe that fails closes its connection, and the next one takes a new one; so does one
// that times out on the kept connection, which is not used again.
func TestGRPCConnectionClosedOnFailure(t *testing.T) {
	b := newCountedGRPC(t)
	_, ch := engineOn(t, quick(TypeGRPC, b.port, func(c *Config) { c.Fall, c.Rise = 1, 1 }))
	if c := next(t, ch); c.To != Up {
		t.Fatalf("first change %+v, want up", c)
	}
	eventually(t, 5*time.Second, "a kept connection", func() bool { return b.calls.get() >= 2 })
	b.down.Store(true)
	if c := next(t, ch); c.To != Down || c.Reason != ReasonGRPC {
		t.Fatalf("not serving: %+v, want down, grpc", c)
	}
	eventually(t, 5*time.Second, "the connection of the failed probe closed", func() bool { return b.closed.get() >= 1 })
	before := b.conns.get()
	b.down.Store(false)
	if c := next(t, ch); c.To != Up {
		t.Fatalf("serving again: %+v, want up", c)
	}
	if b.conns.get() == before {
		t.Errorf("the connection of a failed probe was used again")
	}

	eventually(t, 5*time.Second, "a kept connection", func() bool { return b.closed.get() < b.conns.get() })
	before = b.conns.get()
	b.hang.Store(true)
	if c := next(t, ch); c.To != Down || c.Reason != ReasonTimeout {
		t.Fatalf("hanging: %+v, want down, timeout", c)
	}
	b.hang.Store(false)
	if c := next(t, ch); c.To != Up {
		t.Fatalf("answering again: %+v, want up", c)
	}
	if b.conns.get() == before {
		t.Errorf("the connection that timed out was used again")
	}
}

// A target that no subscription holds any more closes its kept gRPC connection, and so does
// the engine's Close.
func TestKeptGRPCConnectionClosed(t *testing.T) {
	b := newCountedGRPC(t)
	e := NewEngine(Options{})
	t.Cleanup(e.Close)
	sub := e.Subscribe(nil)
	sub.Sync([]Target{quick(TypeGRPC, b.port, nil)})
	eventually(t, 5*time.Second, "a kept connection", func() bool { return b.calls.get() >= 2 })
	sub.Sync(nil)
	eventually(t, 5*time.Second, "the connection of a dropped target closed", func() bool { return b.closed.get() == 1 })

	b = newCountedGRPC(t)
	e.Subscribe(nil).Sync([]Target{quick(TypeGRPC, b.port, nil)})
	eventually(t, 5*time.Second, "a kept connection", func() bool { return b.calls.get() >= 2 })
	e.Close()
	eventually(t, 5*time.Second, "the connection closed with the engine", func() bool { return b.closed.get() == 1 })
}

// A server that closes idle connections (GOAWAY, then the close) before the next probe fails no
// probe: the probe finds the connection going away and takes a new one.
func TestGRPCGoAwayRetried(t *testing.T) {
	b := newCountedGRPC(t, grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: 20 * time.Millisecond}))
	results, _ := engineOn(t, quick(TypeGRPC, b.port, nil))
	eventually(t, 5*time.Second, "5 probes", func() bool { return len(results()) >= 5 })
	for _, r := range results() {
		if r != "" {
			t.Fatalf("a probe failed on a connection the server had closed: %s", r)
		}
	}
	if c := b.conns.get(); c < 3 {
		t.Errorf("%d calls on %d connections: the closed connections were not replaced", b.calls.get(), c)
	}
}

// BenchmarkProbeGRPC measures one gRPC health probe against a loopback server in the same
// process: "new" on a new connection each time (Probe), "reused" on the connection the last probe
// left (as the Engine does); cpu-µs/op counts the CPU of both ends.
func BenchmarkProbeGRPC(b *testing.B) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s := grpc.NewServer()
	healthpb.RegisterHealthServer(s, health.NewServer())
	go s.Serve(l)
	defer s.Stop()
	tg := NewTarget("rpc", Config{Type: TypeGRPC, Port: portOf(b, l.Addr().String())}.Normalize(), "127.0.0.1")
	for _, reuse := range []bool{false, true} {
		b.Run(map[bool]string{false: "new", true: "reused"}[reuse], func(b *testing.B) {
			var k *keeper
			var s *slot // as the Engine runs it, with a keeper
			if reuse {
				k, s = new(keeper), new(slot)
				defer k.close()
			}
			var ru0, ru1 syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
			b.ReportAllocs()
			for b.Loop() {
				if r := probeWith(context.Background(), tg, k, s, nil, false); !r.OK {
					b.Fatal(r.Err)
				}
			}
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
			cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}
