package healthcheck

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// HTTP, HTTPS and gRPC probes that the Engine runs reuse their connection: the next probe of the
// same target sends its request on the connection the last one left open (HTTP/1.1 keep-alive;
// for gRPC, the next stream of the HTTP/2 connection).
//
// Why: a new TCP connection per probe is most of a probe's cost (socket, connect, the handshake,
// epoll registration and close: 70% of the CPU of 2,000 probes/s in a profile, and for HTTPS a TLS
// handshake on top), and that CPU is taken from the queries when the server is busy.
//
// What it does not change: a backend that is killed or restarted closes its connections, so the
// next probe's request meets a reset or an end of file before any byte of an answer; the probe
// then retries at once on a new connection (as net/http's Transport does with a stale idle
// connection), which is refused, times out or passes like any probe. A backend or host that stops
// answering times out on the kept connection within the probe's timeout, as on a new one (where an
// ICMP error may end the connect sooner). Any failure closes the connection. So detection stays
// within the documented bounds, which count the whole timeout.
//
// What it could hide: a backend that keeps serving the connections it has but accepts no new
// ones (an accept queue that is full). MaxConnAge bounds that: no connection is reused once it is
// that old, so every target gets a new connection, through accept, at least that often.
//
// A connection is kept only after a probe that passed, when the response allows it (HTTP/1.1
// without "Connection: close", a body that ended within 64 KiB and nothing after it), and while
// the probes, in flight and kept, hold fewer than their file descriptors (seven eighths of the
// process's limit; see capacity.go), so that a low limit never takes descriptors from the DNS
// server; a probe that needs a descriptor when none is left closes the kept connection of the
// target due last. Probe, the function, never reuses: every call is on its own.

// MaxConnAge is the age after which a probe connection is closed rather than reused.
const MaxConnAge = 30 * time.Second

// Held connections: a target that hangs does not cost a new connection at every probe.
//
// Why: in an outage where backends accept connections and never answer, every probe of each of
// them dialled, wrote its request, waited its whole timeout and closed: with 20,000 such targets
// at 5s, 4,000 connections a second, most of the CPU of the prober (socket, connect, write,
// close: 62% of its profile), and a bare dialer doing only that already cost more than the
// whole checker was allowed.
//
// What: an HTTP, HTTPS or gRPC probe that times out after its request went out whole, with no
// byte of the answer (for gRPC, no frame of the call's answer), leaves its connection held for
// the target's next probes, with its request outstanding; the connection counts as a kept one
// (a file descriptor in Capacity.FDsInUse, within the same budget, closed first when probes need
// descriptors). The next probe of the target then:
//
//   - while the target is down and no rise is pending (its last result was a failure), looks at
//     the held connection without waiting: one non-blocking peek. Nothing there, nothing closed:
//     the request has gone unanswered for an interval and more, longer than the timeout, and the
//     probe fails at once with reason timeout (its Duration is the look's, microseconds; its
//     error says how long the request has waited). No connection, no write, no timer, no
//     goroutine waiting. This is done for hungLooks probes in a row at most (the last one
//     closes the connection, whose descriptor is then free until the next probe dials), and
//     not once the connection is MaxConnAge old;
//   - otherwise closes the held connection and runs as a probe on a new one, and so in
//     particular: when anything came on it (the late answer, an end of file, a reset: the
//     backend woke up or restarted), when the target is up or a change is pending (each of the
//     fall probes that take an up target down, and each rise probe, is on a connection of its
//     own, so that one request stuck in a backend never counts as two failures), and at the
//     third probe after the one that dialled it (every third probe of a hanging target dials).
//
// A late answer is never taken for a success: it answers a request older than the timeout. The
// probe that finds it closes the connection and judges the backend on a new one, within its
// own timeout.
//
// Bounds. Up to down: unchanged (every probe of an up target, or with a fall pending, dials and
// waits its timeout). Down to up, for a target that hung: the recovery is seen by the first
// probe after it when the recovered backend answers or closes the held connection before that
// probe looks (a process restarted, a stall that ended: the outstanding request gets its
// answer), so within interval + (rise-1)*fast_interval as documented, plus the time the backend
// takes to answer the outstanding request; when the backend never answers the held connection
// but would a new one (a request lost in a stuck worker), by the next probe that dials, at most
// hungLooks+1 probes after the last one that did: within (hungLooks+1)*interval +
// (rise-1)*fast_interval, 3*interval + (rise-1)*fast_interval (16s with the defaults), or
// sooner when MaxConnAge comes first.

// hungLooks is how many probes in a row of a hanging target look at its held connection
// instead of dialling: every (hungLooks+1)-th probe is on a new connection.
const hungLooks = 2

// probeConn is one probe connection, kept between the probes of one target.
type probeConn struct {
	raw  net.Conn        // the TCP connection
	conn net.Conn        // raw, or the TLS client over it
	born time.Time       // when it was dialled
	src  *source         // the source it was dialled from
	h2   *h2Conn         // for gRPC: the HTTP/2 connection's state
	rc   syscall.RawConn // raw's, made once (rawConn)
	// asked, when not zero, is when the request that is still unanswered on the connection was
	// sent: a held connection (see hungLooks), which never carries another request. looks
	// counts the probes that found it so.
	asked time.Time
	looks int
}

// close closes the connection (a reset: dial sets SO_LINGER 0).
func (c *probeConn) close() { c.raw.Close() }

// keeper holds a target's idle connection between two of its probes, and a gRPC target's call. The
// Engine gives each target one; only the goroutine that probes the target uses it, and the Engine
// closes it, under its lock, when the target stops while not being probed.
type keeper struct {
	idle *probeConn
	// For gRPC, the call, made at its first probe. (An HTTP probe writes its request in a
	// pooled buffer: nothing kept per target.)
	call *grpcRequest
	room *atomic.Int64 // a connection is kept while the probes hold fewer file descriptors; nil: keepFDs()
}

// take returns the idle connection, or nil when there is none (or no keeper), or it is too old
// to reuse, or it was dialled from another source than src (the source changed since: it is
// closed).
func (k *keeper) take(now time.Time, src *source) *probeConn {
	if k == nil || k.idle == nil {
		return nil
	}
	c := k.idle
	k.idle = nil
	keptConns.Add(-1)
	if now.Sub(c.born) >= MaxConnAge || c.src != src || !c.asked.IsZero() {
		c.close() // a held connection carries no other request
		return nil
	}
	return c
}

// look is the probe of a hanging target on its held connection (see hungLooks): when k holds
// one from src, younger than MaxConnAge, looked at fewer than hungLooks times, and nothing has
// come on it, it returns how long its request has waited, and true; after the last look, it
// closes the connection, since the next probe dials anyway: its descriptor is free until then.
// Otherwise it returns false, and leaves the connection to take, which closes it.
func (k *keeper) look(now time.Time, src *source) (time.Duration, bool) {
	if k == nil || k.idle == nil {
		return 0, false
	}
	c := k.idle
	if c.asked.IsZero() || c.looks >= hungLooks || c.src != src || now.Sub(c.born) >= MaxConnAge || c.readable() {
		return 0, false
	}
	if c.looks++; c.looks == hungLooks {
		k.close()
	}
	return now.Sub(c.asked), true
}

// fate is what becomes of a probe's connection when the probe ends.
type fate uint8

const (
	discard fate = iota // closed
	reuse               // kept idle, for the next probe's request (see MaxConnAge)
	hold                // kept with its request unanswered (see hungLooks)
)

// done ends a probe on c, which sent its request at asked: with reuse or hold, c is kept for
// the next probe (put); otherwise, or without a keeper, it is closed.
func (k *keeper) done(c *probeConn, f fate, asked time.Time) {
	if f == discard || k == nil {
		c.close()
		return
	}
	if f == hold {
		c.asked = asked
	}
	budget := keepFDs()
	if k.room != nil {
		budget = k.room.Load()
	}
	k.put(c, budget)
}

// put keeps c for the next probe, or closes it when the process's probes, in flight and kept,
// hold budget file descriptors already.
func (k *keeper) put(c *probeConn, budget int64) {
	if k.idle != nil { // not reached: take empties it first
		k.close()
	}
	if keptConns.Add(1)+probing.Load() > budget {
		keptConns.Add(-1)
		shedConns.Add(1)
		c.close()
		return
	}
	k.idle = c
}

// close closes the idle connection, if any.
func (k *keeper) close() {
	if k.idle != nil {
		k.idle.close()
		k.idle = nil
		keptConns.Add(-1)
	}
}

// keptConns counts the idle probe connections of the process.
var keptConns atomic.Int64

// shedConns counts the probe connections of the process that were closed, or not kept, because
// the probes held their share of file descriptors (see capacity.go): each costs its target a new
// connection at its next probe.
var shedConns atomic.Uint64

// keepFDs is the budget of put for a keeper of no engine: the probes' file descriptors, as an
// engine's.
var keepFDs = sync.OnceValue(func() int64 { return probeFDs(fdLimit()) })

// arm bounds every read and write of conn by deadline (the zero time: none) and the end of ctx.
// The returned func undoes the second; it returns false when ctx has already ended (conn's
// deadline is then in the past, and a hook may still be setting it: do not reuse conn).
func arm(ctx context.Context, deadline time.Time, conn net.Conn) (disarm func() bool) {
	conn.SetDeadline(deadline)
	return context.AfterFunc(ctx, func() { conn.SetDeadline(cut) })
}

// readable reports whether anything has come on the connection: data, an end or an error. It
// does not wait: one non-blocking peek of one byte.
func (c *probeConn) readable() bool {
	rc := c.rawConn()
	if rc == nil {
		return true
	}
	came := true
	if rc.Control(func(fd uintptr) { came = peek(fd) }) != nil {
		return true
	}
	return came
}

// await waits until the probe connection has something to read, an end or an error, within its
// deadline, and returns the deadline's error if that passes first. A probe calls it between
// its request and the answer, so that a probe of a target that hangs holds no buffer while it
// waits: 8 KiB each, times the thousands of such probes in flight in an outage. It waits on the
// TCP socket, under TLS too (a record of the answer makes it readable), and costs one
// non-blocking peek of one byte (the poller forgets what came before a wait, so a wait must
// follow a try, as a read's does).
func (c *probeConn) await() error {
	rc := c.rawConn()
	if rc == nil {
		return nil
	}
	return rc.Read(peek) // data, an end or an error: the read that follows tells which
}

// rawConn returns the TCP connection's syscall.RawConn, or nil.
func (c *probeConn) rawConn() syscall.RawConn {
	if c.rc == nil {
		if sc, ok := c.raw.(syscall.Conn); ok {
			c.rc, _ = sc.SyscallConn()
		}
	}
	return c.rc
}

// peek reports whether anything has come on the socket fd (data, an end or an error), without
// waiting or taking it: one non-blocking peek of one byte.
func peek(fd uintptr) bool {
	var b [1]byte
	for {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		if err != syscall.EINTR {
			return err != syscall.EAGAIN
		}
	}
}
