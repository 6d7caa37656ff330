package healthcheck

import (
	"math"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"
)

// How many probes run at once.
//
// A probe holds a goroutine, a socket and some memory from its start to its end, and for a target
// that hangs that is its whole timeout. So the probes in flight that a set of targets can need at
// once is the sum over the targets of timeout / interval (fast_interval while a change is
// pending; at most one per target, which never has two probes in flight): Little's law, with
// every probe taking its whole timeout. The engine keeps that sum, Need, up to date as targets
// come, go and change, and bounds the probes in flight at Need and a quarter, and 16 more, so that
// due times that bunch up never hold a probe back: the bound follows the work. A constant does
// not: 1,024 probes of 2s allow 512 probes/s, against the 4,000/s of 20,000 hanging targets at
// 5s, and every target, hanging or not, then waited ~30s for its turn instead of 5s.
//
// Two real limits can cap it. File descriptors: the probes, in flight and kept idle between
// probes (see MaxConnAge), hold at most seven eighths of the process's limit (RLIMIT_NOFILE, which
// Go raises to its hard limit at start-up), and leave at least 256, so that the DNS server's own
// sockets never run short; when a probe needs a descriptor and none is left, the kept connection
// of the target due last is closed for it: kept connections give way to probes in flight. That
// holds no probe back, but each connection closed so (or not kept, for want of a descriptor)
// costs its target a new connection at its next probe: CPU that the limit forces. The engine
// logs it once a minute at most while it goes on (Options.Logf), and Capacity counts them
// (Shed). Memory:
// with a Go memory limit (GOMEMLIMIT), the probes in flight take at most a quarter of it, at
// probeMemory each. When either holds probes back, the engine logs it (Options.Logf), calls
// Options.OnLimit, and Engine.Capacity says so. The probes still start in the order they are due,
// so every target's probes are late alike (each interval stretched by the same wait) and none is
// starved.

// Capacity is what bounds the engine's probes in flight, and how they stand. Engine.Capacity
// returns it.
type Capacity struct {
	// InFlight is the number of probes running.
	InFlight int
	// Need is the most probes the targets can need in flight at once: the sum over them of
	// timeout / interval (fast_interval while a change is pending), rounded up.
	Need int
	// Max bounds the probes in flight: Need and a quarter, and 16 more, at most one per target;
	// lower when Options.MaxInFlight or the Go memory limit says so.
	Max int
	// FDs is how many file descriptors the process's probes may hold, in flight and kept idle:
	// seven eighths of RLIMIT_NOFILE, leaving at least 256. FDsInUse is how many they hold (the
	// process's, over every engine).
	FDs, FDsInUse int
	// Kept is how many of those are connections kept between probes, idle or held (the
	// process's). Shed counts the connections that were closed, or not kept, because the
	// probes held all of FDs (the process's, since it started): each costs its target a new
	// connection at its next probe.
	Kept int
	Shed uint64
	// Limit names what holds probes back, or was last seen to in the past second: "" (nothing),
	// LimitFDs, LimitMemory or LimitOption.
	Limit string
	// Late is how long the next probe to start is overdue, while a limit holds it back.
	Late time.Duration
}

// Limits that can hold probes back (Capacity.Limit).
const (
	LimitFDs    = "file descriptors" // the probes hold their share of RLIMIT_NOFILE, and no kept connection is left to close
	LimitMemory = "memory"           // Max is lowered by the Go memory limit (GOMEMLIMIT)
	LimitOption = "MaxInFlight"      // Max is lowered by Options.MaxInFlight
)

const (
	// unit is the fixed point of a target's share of a probe slot: unit is one slot.
	unit = 1 << 20
	// extraSlots are added to Need and a quarter in the bound on probes in flight.
	extraSlots = 16
	// probeMemory is what one probe in flight is reckoned to cost against the Go memory limit:
	// its goroutine's stack, the socket's buffers in the runtime, a response buffer.
	probeMemory = 32 << 10
	// limitQuiet is how long no probe must have been held back before a limit is over.
	limitQuiet = time.Second
	// logEvery is how often, at most, the engine logs that a limit holds probes back.
	logEvery = time.Minute
)

// share returns the share of a probe slot that a target of config c needs: its timeout over the
// time between two of its probes, at most 1, in units of unit.
func share(c *Config, pending bool) int64 {
	gap := c.Interval
	if pending {
		gap = c.FastInterval
	}
	if gap <= 0 || c.Timeout >= gap {
		return unit
	}
	return (int64(c.Timeout)*unit + int64(gap) - 1) / int64(gap) // a timeout of an hour still fits
}

// need returns the probes in flight that a sum of shares needs.
func need(shares int64) int { return int((shares + unit - 1) / unit) }

// bound returns the bound on probes in flight for n targets whose shares add up to shares, and
// the limit that lowered it ("" for none). e.mu is held.
func (e *Engine) bound(n int, shares int64) (int, string) {
	b := min(n, need(shares)+need(shares)/4+extraSlots)
	b = max(b, 1)
	limit := ""
	if o := e.opts.MaxInFlight; o > 0 && o < b {
		b, limit = o, LimitOption
	}
	if m := e.memSlots; m > 0 && m < b {
		b, limit = m, LimitMemory
	}
	return b, limit
}

// refreshLimits reads the file descriptor and memory limits again. e.mu is held.
func (e *Engine) refreshLimits() {
	n := e.opts.fdLimit
	if n == 0 {
		n = fdLimit()
	}
	e.fds = probeFDs(n)
	e.keepFDs.Store(e.fds)
	e.memSlots = 0
	if m := debug.SetMemoryLimit(-1); m > 0 && m < math.MaxInt64 {
		e.memSlots = max(1, int(m/4/probeMemory))
	}
}

// probeFDs returns the file descriptors that probes may hold under a limit of n: seven eighths,
// leaving at least 256 (and at least half) to the rest of the process.
func probeFDs(n int) int64 {
	return int64(n - min(n/2, max(256, n/8)))
}

// fdLimit returns the process's file descriptor limit, or a large number when it has none.
func fdLimit() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 || rl.Cur > 1<<30 {
		return 1 << 30
	}
	return int(rl.Cur)
}

// probing counts the probes in flight of the process, over every engine; with keptConns, the
// file descriptors that probes hold.
var probing atomic.Int64

// fdsInUse returns the file descriptors that the process's probes hold: at most one per probe in
// flight and one per kept connection.
func fdsInUse() int64 { return probing.Load() + keptConns.Load() }

// Capacity returns the engine's bound on probes in flight and how they stand.
func (e *Engine) Capacity() Capacity {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := Capacity{InFlight: e.inFlight, Need: need(e.shares), Max: e.max, FDs: int(e.fds), FDsInUse: int(fdsInUse()), Limit: e.limit,
		Kept: int(keptConns.Load()), Shed: shedConns.Load()}
	if e.limit != "" && len(e.queue) > 0 {
		c.Late = max(0, time.Since(e.queue[0].due))
	}
	return c
}

// markHeld records that limit holds due probes back at now, and nudges the scheduler to report
// it when that is news. e.mu is held.
func (e *Engine) markHeld(limit string, now time.Time) {
	e.heldAt, e.heldBy = now, limit
	if e.limit != limit {
		e.nudge()
	}
}

// transition starts a limited spell when a limit was marked held, and ends it once no probe was
// held back for limitQuiet; it returns the Capacity to report when either happened. Only the
// scheduler calls it; e.mu is held.
func (e *Engine) transition(now time.Time) (report *Capacity) {
	switch {
	case e.heldBy != "" && now.Sub(e.heldAt) < limitQuiet:
		if e.limit == e.heldBy {
			return nil
		}
		e.limit = e.heldBy
	case e.limit != "":
		e.limit, e.heldBy = "", ""
	default:
		return nil
	}
	c := Capacity{InFlight: e.inFlight, Need: need(e.shares), Max: e.max, FDs: int(e.fds), FDsInUse: int(fdsInUse()), Limit: e.limit}
	return &c
}

// report tells of a limited spell starting or ending: to OnLimit, and once in logEvery to Logf.
// Only the scheduler calls it, without e.mu.
func (e *Engine) report(c *Capacity, now time.Time) {
	if c == nil {
		return
	}
	if e.opts.OnLimit != nil {
		e.opts.OnLimit(*c)
	}
	if e.opts.Logf == nil {
		return
	}
	switch {
	case c.Limit != "" && now.Sub(e.loggedAt) >= logEvery:
		e.loggedAt, e.logged = now, true
		what := map[string]string{
			LimitFDs:    "the probes hold seven eighths of the file descriptor limit (RLIMIT_NOFILE); raise it (LimitNOFILE)",
			LimitMemory: "the Go memory limit (GOMEMLIMIT) allows no more; raise it",
			LimitOption: "Options.MaxInFlight allows no more",
		}[c.Limit]
		e.opts.Logf("health checks: probes wait for %s: %d in flight of %d needed at most, %d of %d file descriptors in use: %s; "+
			"every target's probes run late alike", c.Limit, c.InFlight, c.Need, c.FDsInUse, c.FDs, what)
	case c.Limit == "" && e.logged:
		e.logged = false
		e.opts.Logf("health checks: probes no longer wait: %d in flight, %d needed at most", c.InFlight, c.Need)
	}
}

// shedLog is what the scheduler logged of the connections closed for want of file descriptors.
type shedLog struct {
	seen uint64    // shedConns when the scheduler last looked
	told uint64    // shedConns when it last logged, or when the engine started
	from time.Time // since when connections closed are not logged yet: the last line, or the start
	at   time.Time // when it last logged that connections are closed; zero: not since the last end
	rose time.Time // when shedConns last rose
}

// reportShed logs, once in logEvery at most, that probe connections are closed for want of file
// descriptors, and when none has been for logEvery after that. Only the scheduler calls it,
// without e.mu.
func (e *Engine) reportShed(now time.Time) {
	if e.opts.Logf == nil {
		return
	}
	l := &e.shed
	n := shedConns.Load()
	if n != l.seen {
		l.seen, l.rose = n, now
	}
	switch {
	case n != l.told && (l.at.IsZero() || now.Sub(l.at) >= logEvery):
		e.opts.Logf("health checks: %d probe connections closed or not kept for want of file descriptors in the last %s "+
			"(%d kept, %d of the probes' %d descriptors in use): their targets' next probes connect again, which costs CPU; "+
			"raise the file descriptor limit (LimitNOFILE) to keep them",
			n-l.told, now.Sub(l.from).Round(time.Second), keptConns.Load(), fdsInUse(), e.keepFDs.Load())
		l.told, l.from, l.at = n, now, now
	case !l.at.IsZero() && now.Sub(l.rose) >= logEvery:
		e.opts.Logf("health checks: probe connections are kept again: none closed for want of file descriptors for %s", logEvery)
		l.told, l.from, l.at = n, now, time.Time{}
	}
}
