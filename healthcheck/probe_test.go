package healthcheck

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// testTimeout is the probe timeout of the tests: long enough for loopback, short enough to wait.
const testTimeout = 300 * time.Millisecond

// grace is how much later than its timeout a probe may return.
const grace = 200 * time.Millisecond

// testTarget returns a normalized target of type typ at 127.0.0.1:port, changed by mod.
func testTarget(typ string, port int, mod func(*Config)) Target {
	c := Config{Type: typ, Port: port, Interval: time.Second, Timeout: testTimeout}
	if mod != nil {
		mod(&c)
	}
	return NewTarget("test", c.Normalize(), "127.0.0.1")
}

// probe runs Probe on tg and fails the test if it outlives the timeout.
func probe(t *testing.T, tg Target) Result {
	t.Helper()
	start := time.Now()
	r := Probe(context.Background(), tg)
	if took := time.Since(start); took > tg.Config.Timeout+grace {
		t.Errorf("probe took %v, timeout is %v", took, tg.Config.Timeout)
	}
	if r.OK != (r.Reason == "") || r.OK != (r.Err == nil) {
		t.Errorf("inconsistent result %+v", r)
	}
	return r
}

// wantReason fails the test unless r failed with reason (or passed, for "").
func wantReason(t *testing.T, r Result, reason string) {
	t.Helper()
	if r.Reason != reason {
		t.Errorf("reason %q (err %v), want %q", r.Reason, r.Err, orOK(reason))
	}
}

func orOK(reason string) string {
	if reason == "" {
		return "ok"
	}
	return reason
}

// portOf returns the port of a listener address or a URL's host:port.
func portOf(t testing.TB, hp string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(hp)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return n
}

// listen returns a TCP listener on 127.0.0.1, closed when the test ends.
func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// refusedPort returns a port of 127.0.0.1 where nothing listens.
func refusedPort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := portOf(t, l.Addr().String())
	l.Close()
	return p
}

// serveConns accepts connections on a new listener and hands each to handle; handle runs in the
// accept loop, so it must not block. It returns the port and a count of accepted connections.
func serveConns(t *testing.T, handle func(net.Conn)) (int, *counter) {
	l := listen(t)
	n := new(counter)
	var mu sync.Mutex
	var held []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n.add(1)
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
			handle(c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	})
	return portOf(t, l.Addr().String()), n
}

// silentPort returns the port of a listener that accepts connections and never answers.
func silentPort(t *testing.T) (int, *counter) { return serveConns(t, func(net.Conn) {}) }

// resetPort returns the port of a listener that resets every connection it accepts.
func resetPort(t *testing.T) int {
	p, _ := serveConns(t, func(c net.Conn) {
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	})
	return p
}

// counter is a count that tests poll.
type counter struct {
	mu sync.Mutex
	n  int
}

func (c *counter) add(d int) {
	c.mu.Lock()
	c.n += d
	c.mu.Unlock()
}

func (c *counter) get() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// eventually polls cond until it holds, failing the test after d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestClassify(t *testing.T) {
	opErr := func(e error) error { return &net.OpError{Op: "read", Net: "tcp", Err: &netSyscallError{e}} }
	tests := []struct {
		err  error
		want string
	}{
		{context.DeadlineExceeded, ReasonTimeout},
		{fmt.Errorf("wrapped: %w", context.DeadlineExceeded), ReasonTimeout},
		{opErr(syscall.ECONNREFUSED), ReasonRefused},
		{opErr(syscall.ECONNRESET), ReasonReset},
		{opErr(syscall.EPIPE), ReasonReset},
		{io.EOF, ReasonReset},
		{io.ErrUnexpectedEOF, ReasonReset},
		{&verdict{ReasonStatus, errors.New("status 500")}, ReasonStatus},
		{&verdict{ReasonTLS, io.EOF}, ReasonReset}, // the network cause wins
		{&verdict{ReasonTLS, tls.AlertError(40)}, ReasonTLS},
		{&net.DNSError{Err: "no such host", Name: "x.test", IsNotFound: true}, ReasonDNS},
		{&net.DNSError{Err: "timeout", Name: "x.test", IsTimeout: true}, ReasonTimeout},
		{tls.RecordHeaderError{Msg: "not TLS"}, ReasonTLS},
		{errors.New("something"), ReasonOther},
	}
	for _, tc := range tests {
		if got := classify(tc.err); got != tc.want {
			t.Errorf("classify(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// netSyscallError wraps an errno as the net package does.
type netSyscallError struct{ err error }

func (e *netSyscallError) Error() string { return e.err.Error() }
func (e *netSyscallError) Unwrap() error { return e.err }

func TestProbeUnknownType(t *testing.T) {
	r := Probe(context.Background(), NewTarget("x", Config{Type: "icmp", Timeout: testTimeout, Interval: time.Second}, "127.0.0.1"))
	wantReason(t, r, ReasonOther)
}

func TestProbeTCP(t *testing.T) {
	t.Parallel()
	l := listen(t)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	wantReason(t, probe(t, testTarget(TypeTCP, portOf(t, l.Addr().String()), nil)), "")
	wantReason(t, probe(t, testTarget(TypeTCP, refusedPort(t), nil)), ReasonRefused)
}

func TestProbeCanceled(t *testing.T) {
	t.Parallel()
	p, _ := silentPort(t)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	tg := testTarget(TypeHTTP, p, func(c *Config) { c.Timeout = 5 * time.Second; c.Interval = 10 * time.Second })
	start := time.Now()
	r := Probe(ctx, tg)
	if r.OK || time.Since(start) > time.Second {
		t.Errorf("canceled probe: %+v after %v", r, time.Since(start))
	}
}

// httpBackend starts an httptest server with h and returns it and its port.
func httpBackend(t testing.TB, h http.HandlerFunc) (*httptest.Server, int) {
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s, portOf(t, s.Listener.Addr().String())
}
