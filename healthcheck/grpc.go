package healthcheck

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// probeGRPC calls grpc.health.v1.Health/Check for Config.Service on a new client connection
// and passes on SERVING. The connection is plaintext unless Config.TLS.
//
// gRPC reports connection failures as a status with a message; to give the reason, the probe
// dials itself and remembers the first error that the network or the TLS handshake returned.
func probeGRPC(ctx context.Context, c Config, addr string) error {
	var first firstError
	dial := func(ctx context.Context, hp string) (net.Conn, error) {
		conn, err := dialer.DialContext(ctx, "tcp", hp)
		if err != nil {
			first.set(err)
			return nil, err
		}
		return &recordingConn{conn, &first}, nil
	}
	creds := insecure.NewCredentials()
	if c.TLS {
		name := c.Host
		if name == "" {
			name = addr
		}
		creds = &recordingCreds{credentials.NewTLS(&tls.Config{ServerName: name, InsecureSkipVerify: c.InsecureTLS}), &first}
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithContextDialer(dial),
		grpc.WithUserAgent(userAgent),
		grpc.WithDisableServiceConfig(),
		grpc.WithDisableRetry(),
	}
	if c.Host != "" {
		opts = append(opts, grpc.WithAuthority(c.Host))
	}
	cc, err := grpc.NewClient("passthrough:///"+hostPort(addr, c.Port), opts...)
	if err != nil {
		return err
	}
	defer cc.Close()

	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: c.Service})
	switch {
	case err != nil && ctx.Err() != nil:
		return err // Probe calls it a timeout
	case err != nil:
		if ferr := first.get(); ferr != nil {
			return fmt.Errorf("%w (%v)", ferr, err)
		}
		return &verdict{ReasonGRPC, err}
	case resp.GetStatus() != healthpb.HealthCheckResponse_SERVING:
		return &verdict{ReasonGRPC, fmt.Errorf("service %q is %s", c.Service, resp.GetStatus())}
	}
	return nil
}

// firstError keeps the first error set.
type firstError struct {
	mu  sync.Mutex
	err error
}

func (f *firstError) set(err error) {
	f.mu.Lock()
	if f.err == nil {
		f.err = err
	}
	f.mu.Unlock()
}

func (f *firstError) get() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// recordingConn records the errors of reads and writes, other than those after its own Close.
type recordingConn struct {
	net.Conn
	first *firstError
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.record(err)
	return n, err
}

func (c *recordingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.record(err)
	return n, err
}

func (c *recordingConn) record(err error) {
	if err != nil && !errors.Is(err, net.ErrClosed) {
		c.first.set(err)
	}
}

// recordingCreds records a failed TLS handshake as a TLS verdict.
type recordingCreds struct {
	credentials.TransportCredentials
	first *firstError
}

func (r *recordingCreds) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	c, ai, err := r.TransportCredentials.ClientHandshake(ctx, authority, conn)
	if err != nil {
		r.first.set(&verdict{ReasonTLS, err})
	}
	return c, ai, err
}

func (r *recordingCreds) Clone() credentials.TransportCredentials {
	return &recordingCreds{r.TransportCredentials.Clone(), r.first}
}
