package healthcheck

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
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
