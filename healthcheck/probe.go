package healthcheck

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"syscall"
	"time"
)

// Result is the outcome of one probe.
type Result struct {
	// OK is true when the target passed the check.
	OK bool
	// Reason says why the probe failed: one of the Reason constants; empty when OK.
	Reason string
	// Err is the failure in detail; nil when OK.
	Err error
	// Duration is the time the probe took.
	Duration time.Duration
}

// Reasons a probe fails. They are few and fixed, so they can label a metric.
const (
	ReasonTimeout = "timeout" // no answer within the check's timeout
	ReasonRefused = "refused" // connection refused (or ICMP port unreachable for dns)
	ReasonReset   = "reset"   // connection reset, or closed by the peer before the answer
	ReasonStatus  = "status"  // HTTP status not in ExpectStatus
	ReasonBody    = "body"    // ExpectBody not within the first 64 KiB of the HTTP body
	ReasonTLS     = "tls"     // TLS handshake or certificate verification failed
	ReasonDNS     = "dns"     // the target's name did not resolve, or a dns check got an rcode other than NOERROR
	ReasonGRPC    = "grpc"    // the gRPC health service did not answer SERVING
	ReasonOther   = "other"   // anything else
)

// Probe runs one probe of t now, on a new connection, and returns its result; it changes no
// state. It returns within t.Config.Timeout, or sooner when ctx ends. Call it to check a target
// once; the Engine probes on schedule, reusing HTTP and gRPC connections (see MaxConnAge).
// The kernel chooses the source address; ProbeFrom sets it.
func Probe(ctx context.Context, t Target) Result { return probeWith(ctx, t, nil, nil, nil, false) }

// probeWith is Probe from src (nil: the kernel's choice); an HTTP, HTTPS or gRPC probe takes its
// connection from k and leaves it there for the next probe when it can (k nil: a new connection,
// closed at the end). A connection kept from another source is not reused. With look (the
// target is down, and its last probe failed), a probe whose target hangs on its held connection
// fails at once (see hungLooks). s is the Engine's probe slot that runs it, nil for Probe.
func probeWith(ctx context.Context, t Target, k *keeper, s *slot, src *source, look bool) Result {
	c := t.Config.Normalize()
	start := time.Now()
	if look && k != nil {
		if waited, ok := k.look(start, src); ok {
			return Result{Reason: ReasonTimeout, Err: noAnswer(waited), Duration: time.Since(start)}
		}
	}
	lim := limit{ctx: ctx, deadline: start.Add(c.Timeout), slot: s}
	if d, ok := ctx.Deadline(); ok && d.Before(lim.deadline) {
		lim.deadline = d
	}

	var err error
	switch c.Type {
	case TypeHTTP, TypeHTTPS:
		err = probeHTTP(&lim, &c, t.Address, k, src)
	default:
		err = probeOther(&lim, c, t.Address, k, src)
	}
	r := Result{Duration: time.Since(start)}
	if err == nil {
		r.OK = true
		return r
	}
	r.Err, r.Reason = err, classify(err)
	// Out of time, whatever the last error says (a conn closed under a read, for one): unless
	// the probe got as far as a verdict on the answer, it is a timeout.
	var v *verdict
	if errors.Is(lim.err(), context.DeadlineExceeded) && !errors.As(err, &v) {
		r.Reason = ReasonTimeout
	}
	return r
}

// probeOther runs a probe of another type than HTTP under a context bounded by lim.
func probeOther(lim *limit, c Config, addr string, k *keeper, src *source) error {
	ctx, cancel := lim.context()
	defer cancel()
	switch c.Type {
	case TypeTCP:
		return probeTCP(ctx, c, addr, src)
	case TypeDNS:
		return probeDNS(ctx, c, addr, src)
	case TypeGRPC:
		return probeGRPC(ctx, c, addr, k, src)
	}
	return fmt.Errorf("check type %q: %w", c.Type, ErrType)
}

// limit bounds one probe: its context ends it early (the Engine closes, or Probe's caller
// gives up), its deadline is the check's timeout.
//
// An HTTP probe on a kept connection needs no context of its own: the deadline is the
// connection's, and the Engine's Close cuts the connections of the probes in flight through
// their slots. A context and a timer per probe, and the hook that watches it, were 10 of the
// 18 allocations of such a probe. A probe that dials, or of another type, makes the context
// (context), since dialling and TLS handshakes take one.
type limit struct {
	ctx      context.Context
	deadline time.Time
	slot     *slot       // the Engine's slot that runs the probe; nil for Probe, which uses stop
	stop     func() bool // without a slot: undoes the hook of ctx that cuts the connection (arm)
}

// err is the context's error, or context.DeadlineExceeded once the deadline has passed.
func (l *limit) err() error {
	if err := l.ctx.Err(); err != nil {
		return err
	}
	if !time.Now().Before(l.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// context returns a context that ends at the deadline, or when l's context ends.
func (l *limit) context() (context.Context, context.CancelFunc) {
	return context.WithDeadline(l.ctx, l.deadline)
}

// cut is the deadline that ends a connection's reads and writes at once.
var cut = time.Unix(1, 0)

// watch bounds every read and write of pc by l: its deadline, and the end of its context. With
// a slot, the Engine's Close cuts pc through it; without, a hook of the context does (arm).
func (l *limit) watch(pc *probeConn) {
	if l.slot == nil {
		l.stop = arm(l.ctx, l.deadline, pc.conn)
		return
	}
	pc.conn.SetDeadline(l.deadline)
	l.slot.busy.Store(pc)
	if l.ctx.Err() != nil { // Close may have looked at the slot before pc was in it
		pc.conn.SetDeadline(cut)
	}
}

// unwatch ends watch. It returns false when the context has ended meanwhile: pc's deadline may
// be cut (or about to be), so it must not be reused.
func (l *limit) unwatch() bool {
	if l.slot == nil {
		return l.stop()
	}
	l.slot.busy.Store(nil)
	return l.ctx.Err() == nil
}

// noAnswer is the error of a probe that found its target's held connection still without an
// answer (see hungLooks): the request has waited that long.
type noAnswer time.Duration

func (e noAnswer) Error() string {
	return fmt.Sprintf("no answer to the request sent %.1fs ago, still waiting on its connection", time.Duration(e).Seconds())
}
func (noAnswer) Timeout() bool   { return true }
func (noAnswer) Temporary() bool { return false }

// verdict is a failure judged on the answer (a status, a body, an rcode, a gRPC reply) or on
// the TLS handshake, as opposed to one the network reported.
type verdict struct {
	reason string
	err    error
}

func (v *verdict) Error() string { return v.err.Error() }
func (v *verdict) Unwrap() error { return v.err }

// classify maps a probe error to its reason. Network causes come first, so that a TLS handshake
// cut by a timeout or a reset says so.
func classify(err error) string {
	var (
		ne  net.Error
		v   *verdict
		dns *net.DNSError
		rh  tls.RecordHeaderError
		ae  tls.AlertError
		cv  *tls.CertificateVerificationError
		ua  x509.UnknownAuthorityError
		hn  x509.HostnameError
		ci  x509.CertificateInvalidError
	)
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return ReasonTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return ReasonRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return ReasonReset
	case errors.As(err, &v):
		return v.reason
	case errors.As(err, &dns):
		return ReasonDNS
	case errors.As(err, &rh), errors.As(err, &ae), errors.As(err, &cv), errors.As(err, &ua), errors.As(err, &hn),
		errors.As(err, &ci):
		return ReasonTLS
	}
	return ReasonOther
}

// dialer opens the connection of every probe whose source address the kernel chooses (see
// source for the others). Probes are short: no TCP keep-alive. Timeouts come from the probe's
// context.
var dialer = &net.Dialer{KeepAlive: -1}

// hostPort returns addr:port, with brackets for IPv6.
func hostPort(addr string, port int) string { return net.JoinHostPort(addr, strconv.Itoa(port)) }

// dial connects to addr:port over TCP from src (nil: the kernel's choice), within ctx.
//
// The connection closes with a reset (SO_LINGER 0), as HAProxy closes its checks: a probe has
// nothing left to deliver by then, and a graceful close would leave every connection in TIME_WAIT
// on this host for a minute: at 30,000 targets every 5s, 360,000 sockets, past Linux's
// tcp_max_tw_buckets.
func dial(ctx context.Context, src *source, addr string, port int) (net.Conn, error) {
	conn, err := src.dial(ctx, "tcp", addr, port)
	if err != nil {
		return nil, err
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	return conn, nil
}
