package healthcheck

import (
	"context"
	"net"
	"net/http"
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

// probeConn is one probe connection, kept between the probes of one target.
type probeConn struct {
	raw  net.Conn  // the TCP connection
	conn net.Conn  // raw, or the TLS client over it
	born time.Time // when it was dialled
	src  *source   // the source it was dialled from
	h2   *h2Conn   // for gRPC: the HTTP/2 connection's state
}

// close closes the connection (a reset: dial sets SO_LINGER 0).
func (c *probeConn) close() { c.raw.Close() }

// keeper holds a target's idle connection between two of its probes, and its request. The
// Engine gives each target one; only the goroutine that probes the target uses it, and the Engine
// closes it, under its lock, when the target stops while not being probed.
type keeper struct {
	idle *probeConn
	req  *http.Request // the target's HTTP request, made at its first probe
	wire []byte        // req, encoded; for gRPC, the call's header block
	msg  []byte        // for gRPC, the call's DATA
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
	if now.Sub(c.born) >= MaxConnAge || c.src != src {
		c.close()
		return nil
	}
	return c
}

// done ends a probe on c: with keep, c is kept for the next probe (put); otherwise, or without
// a keeper, it is closed.
func (k *keeper) done(c *probeConn, keep bool) {
	if keep && k != nil {
		budget := keepFDs()
		if k.room != nil {
			budget = k.room.Load()
		}
		k.put(c, budget)
		return
	}
	c.close()
}

// put keeps c for the next probe, or closes it when the process's probes, in flight and kept,
// hold budget file descriptors already.
func (k *keeper) put(c *probeConn, budget int64) {
	if k.idle != nil { // not reached: take empties it first
		k.close()
	}
	if keptConns.Add(1)+probing.Load() > budget {
		keptConns.Add(-1)
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

// keepFDs is the budget of put for a keeper of no engine: the probes' file descriptors, as an
// engine's.
var keepFDs = sync.OnceValue(func() int64 { return probeFDs(fdLimit()) })

// arm bounds every read and write of conn by ctx: its deadline, and its end. The returned func
// undoes the second; it returns false when ctx has already ended (conn's deadline is then in the
// past, and a hook may still be setting it: do not reuse conn).
func arm(ctx context.Context, conn net.Conn) (disarm func() bool) {
	d, _ := ctx.Deadline() // the zero time, no deadline, without one
	conn.SetDeadline(d)
	return context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
}

// await waits until the probe connection has something to read, an end or an error, within its
// deadline, and returns the deadline's error if that passes first. A probe calls it between
// its request and the answer, so that a probe of a target that hangs holds no buffer while it
// waits: 8 KiB each, times the thousands of such probes in flight in an outage. It waits on the
// TCP socket, under TLS too (a record of the answer makes it readable), and costs one
// non-blocking peek of one byte (the poller forgets what came before a wait, so a wait must
// follow a try, as a read's does).
func (c *probeConn) await() error {
	sc, ok := c.raw.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return err != syscall.EAGAIN && err != syscall.EINTR // data, an end or an error: Read tells
	})
}
