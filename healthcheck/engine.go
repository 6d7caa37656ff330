package healthcheck

import (
	"container/heap"
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure an Engine. The zero value is ready to use.
type Options struct {
	// OnResult, when not nil, is called after every probe with the check type, the probe's
	// duration and its failure reason ("" when it passed). It feeds metrics and must not block.
	OnResult func(checkType string, d time.Duration, reason string)
	// MaxInFlight, when positive, bounds the number of probes running at once below what the
	// targets need. Default: what they need (see Capacity), within the file descriptor limit and
	// the Go memory limit.
	MaxInFlight int
	// Logf, when not nil, logs one line per state change of a target, except the first
	// unknown -> up (a target found up at start-up is not news), and one line when a limit
	// starts holding probes back (at most once a minute) and when it stops. Nothing is logged
	// per probe.
	Logf func(format string, args ...any)
	// OnLimit, when not nil, is called when a limit (file descriptors, the Go memory limit or
	// MaxInFlight) starts holding probes back, with Capacity.Limit naming it, and when no probe
	// has been held back for a second, with Capacity.Limit empty. It is called from the
	// scheduler and must not block. Engine.Capacity gives the same figures at any time.
	OnLimit func(Capacity)

	fdLimit int // tests: the file descriptor limit, instead of RLIMIT_NOFILE
}

// Engine probes targets on a schedule and keeps the state of each. Targets are shared: a
// (check, address) pair that several subscriptions hold is probed once.
//
// One goroutine keeps the schedule, a min-heap of due times. Probes run in at most Capacity.Max
// goroutines, each of which takes the targets that are due one after another and ends when none
// is. No goroutine waits for a target's next turn, so between probes an engine has one
// goroutine, however many targets it holds, and as many more as probes in flight.
type Engine struct {
	opts   Options
	ctx    context.Context // ends when the engine closes; cancels running probes
	cancel context.CancelFunc
	// shards of ctx, which probes derive their own from: each child registers with its parent
	// under the parent's lock, and with thousands of probes in flight and thousands of timeouts
	// a second, one parent's lock was a convoy that stalled every probe.
	shards [64]context.Context
	wake   chan struct{} // nudges the scheduler: the queue's head changed, or a probe slot freed
	wg     sync.WaitGroup

	mu       sync.Mutex
	targets  map[string]*entry // by Target.Key
	queue    queue             // targets waiting for their turn; a target being probed is not in it
	inFlight int
	slots    []*slot // every probe slot made, for Close
	spare    []*slot // the slots no probe holds
	closed   bool
	stats    Stats

	// The bound on probes in flight (capacity.go).
	shares   int64        // the sum of the targets' shares of a probe slot
	max      int          // the bound on probes in flight
	maxLimit string       // the limit that lowered max, or ""
	fds      int64        // the file descriptors the process's probes may hold
	keepFDs  atomic.Int64 // a connection is kept while the probes hold fewer file descriptors
	memSlots int          // the probes in flight the Go memory limit allows; 0 without one
	idle     idleList     // queued targets that keep an idle connection
	limit    string       // the limit holding probes back, or ""
	heldBy   string       // the limit that last held a probe back
	heldAt   time.Time    // when

	loggedAt time.Time // when a limit was last logged; the scheduler's
	logged   bool      // a limit was logged and its end not yet
	shed     shedLog   // connections closed for want of file descriptors, as logged; the scheduler's

	src   atomic.Pointer[source] // where probes come from; nil: the kernel's choice (SetSource)
	srcMu sync.Mutex             // serializes SetSource
}

// entry is one probed target.
type entry struct {
	target  Target // with a normalized config; never changes
	status  *Status
	holders []*Subscription
	due     time.Time     // next probe
	stretch time.Duration // added once, to the interval after its first probe (see start)
	index   int           // in the queue; -1 while the target is being probed, or when it is gone
	gone    bool          // no subscription holds it any more
	hys     hysteresis
	share   int64 // its share of a probe slot now (see share)
	shard   uint8 // the shard of the engine's context that its probes derive theirs from
	// idlePrev and idleNext link it in the engine's idleList while it is queued and keeps an
	// idle connection.
	idlePrev, idleNext *entry
	keep               keeper // the connection its HTTP and gRPC probes reuse; used by its probe, or under the lock while queued
}

// Change is a state change of a target.
type Change struct {
	// Target is the target that changed, as the engine probes it (with a normalized config).
	Target Target
	// From and To are the states before and after.
	From, To State
	// Reason is the Reason of the probe that caused the change; empty when To is Up.
	Reason string
	// Err is the error of the probe that caused the change; nil when To is Up.
	Err error
	// At is when the probe that caused the change ended.
	At time.Time
}

// NewEngine returns a running engine. Close stops it.
func NewEngine(o Options) *Engine {
	e := &Engine{opts: o, wake: make(chan struct{}, 1), targets: make(map[string]*entry)}
	e.shed.seen = shedConns.Load()
	e.shed.told, e.shed.from = e.shed.seen, time.Now()
	e.refreshLimits()
	e.rebound()
	e.ctx, e.cancel = context.WithCancel(context.Background())
	var cancels [len(e.shards)]context.CancelFunc
	for i := range e.shards {
		e.shards[i], cancels[i] = context.WithCancel(e.ctx)
	}
	cancel := e.cancel
	e.cancel = func() {
		cancel()
		for _, c := range cancels {
			c()
		}
	}
	e.wg.Add(1)
	go e.run()
	return e
}

// Close stops every probe and waits until all of the engine's goroutines have returned. Statuses
// keep their last state. Close may be called more than once.
func (e *Engine) Close() {
	e.mu.Lock()
	if !e.closed {
		e.closed = true
		for _, ent := range e.targets {
			if ent.index >= 0 { // queued, not being probed: the probe would close it
				ent.keep.close()
			}
			ent.gone = true
			ent.index = -1
		}
		clear(e.targets)
		e.queue = nil
		e.idle = idleList{}
	}
	e.mu.Unlock()
	e.cancel()
	e.cutProbes()
	e.wg.Wait()
}

// Stats counts the targets the engine started and stopped probing since it was made.
type Stats struct{ Started, Stopped uint64 }

// Stats returns the engine's counts of started and stopped targets.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats
}

// Len returns the number of targets the engine probes.
func (e *Engine) Len() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.targets)
}

// Subscription is one user's set of targets. Engine.Subscribe returns it.
type Subscription struct {
	e        *Engine
	onChange func(Change)
	held     map[string]*entry // guarded by e.mu
	closed   atomic.Bool
	calls    sync.RWMutex // read-held while onChange runs; Close write-locks it to wait for them
}

// Subscribe returns a new, empty subscription. onChange, when not nil, is called for every state
// change of a target that the subscription holds. It is called from a probe goroutine, outside the
// engine's locks, in order for each target; it must not block long, and must not call the Close
// of the subscription or of the engine.
func (e *Engine) Subscribe(onChange func(Change)) *Subscription {
	return &Subscription{e: e, onChange: onChange, held: make(map[string]*entry)}
}

// startSpacing spreads the first probes of new targets: n new targets are first probed at
// random within min(11/12 of the interval, n*startSpacing) (see start). A few targets are
// probed almost at once, and a large set spreads over one interval, as it will stay.
const startSpacing = 10 * time.Millisecond

// Sync declares the complete set of targets that s needs and returns their Status cells, in the
// order given. Targets the engine already probes (same Key, for any subscription) keep their
// Status, state and schedule; new ones start Unknown and are probed at once, the first round
// spread at random over min(11/12 of the interval, 10ms × the number of new targets), so that it
// ends within interval + timeout; targets that no subscription holds any more stop.
//
// After Close (of s or of its engine), Sync returns Unknown statuses that nothing probes.
func (s *Subscription) Sync(targets []Target) []*Status {
	out := make([]*Status, len(targets))
	e := s.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || s.closed.Load() {
		for i := range out {
			out[i] = NewStatus(Unknown)
		}
		return out
	}

	held := make(map[string]*entry, len(targets))
	e.targets = reserve(e.targets, len(targets)-len(s.held))
	var fresh []*entry
	var b batch
	born := &Observation{State: Unknown, Since: time.Now()} // the targets new to the engine share it
	for i, t := range targets {
		ent := held[t.Key]
		if ent == nil {
			if ent = s.held[t.Key]; ent == nil {
				if ent = e.targets[t.Key]; ent == nil {
					ent = e.add(t, born, &b, len(targets)-i)
					fresh = append(fresh, ent)
				}
				ent.holders = append(ent.holders, s)
			}
			held[t.Key] = ent
		}
		out[i] = ent.status
	}
	for k, ent := range s.held {
		if held[k] == nil {
			e.release(ent, s)
		}
	}
	s.held = held
	e.start(fresh)
	return out
}

// Hold adds targets to those s holds and returns their Status cells, in the order given;
// targets s holds already, or that the engine probes for another subscription, keep their
// Status, state and schedule. Unlike Sync, its cost is proportional to the targets given, not
// to all that s holds: a reload of one policy file among many declares only its own.
func (s *Subscription) Hold(targets []Target) []*Status {
	e := s.e
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]*Status, len(targets))
	if e.closed || s.closed.Load() {
		for i := range out {
			out[i] = NewStatus(Unknown)
		}
		return out
	}
	e.targets = reserve(e.targets, len(targets))
	s.held = reserve(s.held, len(targets))
	var fresh []*entry
	var b batch
	born := &Observation{State: Unknown, Since: time.Now()} // the targets new to the engine share it
	for i, t := range targets {
		ent := s.held[t.Key]
		if ent == nil {
			if ent = e.targets[t.Key]; ent == nil {
				ent = e.add(t, born, &b, len(targets)-i)
				fresh = append(fresh, ent)
			}
			ent.holders = append(ent.holders, s)
			s.held[t.Key] = ent
		}
		out[i] = ent.status
	}
	e.start(fresh)
	return out
}

// Status returns the status cell of the target with key that s holds, or nil when s does not
// hold it.
func (s *Subscription) Status(key string) *Status {
	s.e.mu.Lock()
	defer s.e.mu.Unlock()
	if ent := s.held[key]; ent != nil {
		return ent.status
	}
	return nil
}

// Release drops the targets with keys from those s holds; those no other subscription holds
// stop. Keys s does not hold are ignored.
func (s *Subscription) Release(keys []string) {
	e := s.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || s.closed.Load() {
		return
	}
	for _, k := range keys {
		if ent := s.held[k]; ent != nil {
			delete(s.held, k)
			e.release(ent, s)
		}
	}
	e.rebound()
}

// add makes the entry of a new target, whose status starts as born: unknown since the targets
// declared with it were. An observation is never written once stored, so the targets of one
// Sync or Hold share it (at 500,000 targets, one each was 72 MB), and their observations are
// equal until their first probes. Its entry, status and first holder come from b, for a batch
// of left more targets at most. e.mu is held.
func (e *Engine) add(t Target, born *Observation, b *batch, left int) *entry {
	t.Config = b.engine(t.Config) // callers validate; this only keeps a bad config from spinning the scheduler
	ent, st := b.next(left)
	*ent = entry{target: t, status: st, index: -1, share: share(t.Config, false), shard: uint8(e.stats.Started % uint64(len(e.shards)))}
	st.obs.Store(born)
	ent.holders = b.holder()
	ent.keep.room = &e.keepFDs
	e.targets[t.Key] = ent
	e.shares += ent.share
	e.stats.Started++
	return ent
}

// batch is what the new targets of one Sync or Hold share.
//
// The last config that engineConfig was asked for, and its answer: the targets come check by
// check, sharing their config.
//
// Their entries, status cells and first holders, allocated batchChunk at a time instead of one
// by one: at 500,000 targets, three small allocations each were a third of Hold, and as many
// objects for the collector to mark ever after. A chunk lives while any of its targets does
// (a target released by a reload keeps ~200 bytes until the rest of its chunk goes).
type batch struct {
	in, out *Config
	ents    []entry
	sts     []Status
	subs    []*Subscription
}

// batchChunk is how many entries a batch allocates at a time, at most.
const batchChunk = 1024

// next returns a zero entry and status cell, for a batch of left more targets at most.
func (b *batch) next(left int) (*entry, *Status) {
	if len(b.ents) == 0 {
		n := min(batchChunk, max(left, 1))
		b.ents, b.sts, b.subs = make([]entry, n), make([]Status, n), make([]*Subscription, n)
	}
	ent, st := &b.ents[0], &b.sts[0]
	b.ents, b.sts = b.ents[1:], b.sts[1:]
	return ent, st
}

// holder returns an empty holders slice with room for one, taken after next.
func (b *batch) holder() []*Subscription {
	h := b.subs[:0:1]
	b.subs = b.subs[1:]
	return h
}

func (b *batch) engine(in *Config) *Config {
	if in != b.in {
		b.in, b.out = in, engineConfig(in)
	}
	return b.out
}

// reserve returns m, or a copy of it made to hold n more entries when it holds far fewer than
// that: a map that grows to 500,000 entries one at a time rehashes them all over again at every
// doubling (a quarter of the time to declare them).
func reserve(m map[string]*entry, n int) map[string]*entry {
	if n < 1024 || n < 2*len(m) {
		return m
	}
	grown := make(map[string]*entry, len(m)+n)
	for k, v := range m {
		grown[k] = v
	}
	return grown
}

// start queues the first probes of fresh targets, spread over min(11/12 of the interval, 10ms ×
// their number), and bounds the probes in flight anew. e.mu is held.
//
// A spread over the whole interval would have the last first probes end at interval + timeout,
// and a little after on a busy machine: the first round is spread over 11/12 of the interval
// instead, so that it ends within interval + timeout with interval/12 to spare. The targets'
// phases then cover the whole interval again from their second probe on: the one first probed
// at offset x waits interval + x/11 for it, so that its phase becomes x × 12/11, once at most
// 1/12 of an interval late.
func (e *Engine) start(fresh []*entry) {
	e.refreshLimits()
	e.rebound()
	now := time.Now()
	spread := time.Duration(len(fresh)) * startSpacing
	bulk := len(fresh) > 1024 && len(fresh) > len(e.queue)
	for _, ent := range fresh {
		window, stretch := ent.target.Config.Interval*11/12, true
		if spread < window {
			window, stretch = spread, false // a few targets: their first probes come almost at once
		}
		off := rand.N(window)
		ent.due, ent.stretch = now.Add(off), 0
		if stretch {
			ent.stretch = off / 11
		}
		if !bulk {
			e.push(ent)
		}
	}
	if bulk { // many at once: append them and make the heap once, O(n) rather than O(n log n)
		for _, ent := range fresh {
			ent.index = len(e.queue)
			e.queue = append(e.queue, ent)
		}
		heap.Init(&e.queue)
		e.nudge()
	}
}

// Ready reports whether every target of s has had at least one probe result.
func (s *Subscription) Ready() bool {
	s.e.mu.Lock()
	defer s.e.mu.Unlock()
	for _, ent := range s.held {
		if ent.status.State() == Unknown {
			return false
		}
	}
	return true
}

// Close releases the targets of s: those that no other subscription holds stop. After Close
// returns, onChange is not called any more. Close may be called more than once.
func (s *Subscription) Close() {
	e := s.e
	e.mu.Lock()
	s.closed.Store(true)
	if !e.closed {
		for _, ent := range s.held {
			e.release(ent, s)
		}
		e.rebound()
	}
	s.held = nil
	e.mu.Unlock()
	// A barrier: wait for the calls of onChange that started before closed was set.
	s.calls.Lock()
	s.calls.Unlock()
}

// notify calls onChange with c unless s is closed.
func (s *Subscription) notify(c Change) {
	if s.onChange == nil {
		return
	}
	s.calls.RLock()
	defer s.calls.RUnlock()
	if !s.closed.Load() {
		s.onChange(c)
	}
}

// release drops s from the holders of ent, and stops ent when that was the last. e.mu is held.
func (e *Engine) release(ent *entry, s *Subscription) {
	for i, h := range ent.holders {
		if h == s {
			ent.holders = append(ent.holders[:i], ent.holders[i+1:]...)
			break
		}
	}
	if len(ent.holders) > 0 {
		return
	}
	e.stats.Stopped++
	ent.gone = true
	e.shares -= ent.share
	delete(e.targets, ent.target.Key)
	if ent.index >= 0 { // queued; a target being probed closes its connection when the probe ends
		e.queue.remove(ent.index)
		e.idle.remove(ent)
		ent.keep.close()
	}
}
