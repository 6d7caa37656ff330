package healthcheck

import (
	"container/heap"
	"slices"
	"sync/atomic"
	"time"
)

// slack lets the scheduler start, in one pass, the probes due within this much: fewer wake-ups,
// and no probe is early by more than this.
const slack = time.Millisecond

// fdRetry is how often the scheduler looks again while file descriptors hold probes back: the
// probes of other engines free them without a nudge.
const fdRetry = 10 * time.Millisecond

// run is the scheduler: it starts the probes that are due, within the bound on probes in flight
// and the file descriptors left, and sleeps until the next one is due or it is nudged.
func (e *Engine) run() {
	defer e.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		e.mu.Lock()
		if e.closed {
			e.mu.Unlock()
			return
		}
		now := time.Now()
		fdsHeld := false
		for e.inFlight < e.max {
			var ent *entry
			if ent, fdsHeld = e.due(now); ent == nil {
				break
			}
			e.inFlight++
			e.wg.Add(1)
			go e.work(ent, e.takeSlot())
		}
		if !fdsHeld && e.inFlight >= e.max && e.maxLimit != "" && e.isDue(now) {
			e.markHeld(e.maxLimit, now)
		}
		report := e.transition(now)
		wait := time.Duration(-1) // until nudged: a slot that frees nudges
		switch {
		case fdsHeld:
			wait = fdRetry
		case e.inFlight < e.max && len(e.queue) > 0:
			wait = e.queue[0].due.Sub(now)
		}
		if e.limit != "" && (wait < 0 || wait > limitQuiet) {
			wait = limitQuiet // to see the limit end
		}
		e.mu.Unlock()
		e.report(report, now)
		e.reportShed(now)

		if wait >= 0 {
			timer.Reset(wait)
		} else {
			timer.Stop()
		}
		select {
		case <-e.ctx.Done():
			return
		case <-e.wake:
		case <-timer.C:
		}
	}
}

// isDue reports whether the first target of the queue is due at now (give or take slack).
// e.mu is held.
func (e *Engine) isDue(now time.Time) bool {
	return len(e.queue) > 0 && !e.queue[0].due.After(now.Add(slack))
}

// due takes the first target of the queue if it is due at now (give or take slack) and a probe
// of it can have a file descriptor: it has a connection kept, or the process's probes hold fewer
// than the engine's share, or a kept connection of another target can be closed for it.
// Otherwise it returns nil, and fdsHeld says whether a due target waits for a file descriptor.
// e.mu is held.
func (e *Engine) due(now time.Time) (ent *entry, fdsHeld bool) {
	if !e.isDue(now) {
		return nil, false
	}
	if e.queue[0].keep.idle == nil && fdsInUse() >= e.fds {
		// Kept connections give way to probes: close the one of the target due last, or wait.
		if !e.idle.evict() {
			e.markHeld(LimitFDs, now)
			return nil, true
		}
	}
	probing.Add(1)
	ent = heap.Pop(&e.queue).(*entry)
	e.idle.remove(ent)
	return ent, false
}

// rebound sets the bound on probes in flight from the targets' shares, and nudges the scheduler
// when it rose. e.mu is held.
func (e *Engine) rebound() {
	old := e.max
	e.max, e.maxLimit = e.bound(len(e.targets), e.shares)
	if e.max > old {
		e.nudge()
	}
}

// nudge wakes the scheduler up.
func (e *Engine) nudge() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// push queues ent for its due time. e.mu is held.
func (e *Engine) push(ent *entry) {
	heap.Push(&e.queue, ent)
	if ent.keep.idle != nil {
		e.idle.push(ent)
	}
	if ent.index == 0 {
		e.nudge() // ent is due before what the scheduler sleeps for
	}
}

// work holds one probe slot: it probes ent, then any target already due, and gives the slot back
// when none is. Under load, probes run back to back in few goroutines.
func (e *Engine) work(ent *entry, s *slot) {
	defer e.wg.Done()
	for ent != nil {
		ent = e.probe(ent, s)
	}
}

// slot is a probe slot's place for the connection its probe uses, where Close finds it to cut
// it (see limit). A slot is reused by the goroutines that take one after it is given back, so
// there are as many as probes ever ran at once.
type slot struct{ busy atomic.Pointer[probeConn] }

// takeSlot returns a free slot. e.mu is held.
func (e *Engine) takeSlot() *slot {
	if n := len(e.spare); n > 0 {
		s := e.spare[n-1]
		e.spare = e.spare[:n-1]
		return s
	}
	s := new(slot)
	e.slots = append(e.slots, s)
	return s
}

// cutProbes cuts the connections of the probes in flight: their reads and writes end at once.
// e.ctx has ended, so that a probe that starts using a connection after this sees it.
func (e *Engine) cutProbes() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.slots {
		if pc := s.busy.Load(); pc != nil {
			pc.conn.SetDeadline(cut)
		}
	}
}

// probe runs one probe of ent, moves its state and queues its next probe. It returns the next
// target to probe in the same slot, or nil once it gave the slot back.
func (e *Engine) probe(ent *entry, s *slot) *entry {
	t := ent.target
	start := time.Now()
	// A target that is down and whose last probe failed may be judged on its held connection
	// (see hungLooks); any other probe is on a connection that can answer it. The probe owns
	// ent's hysteresis until it queues ent again.
	look := ent.status.State() == Down && ent.hys.oks == 0
	res := probeWith(e.shards[ent.shard], t, &ent.keep, s, e.src.Load(), look)
	probing.Add(-1)
	if e.ctx.Err() != nil {
		ent.keep.close()
		return nil // closing: the result means nothing
	}
	if e.opts.OnResult != nil {
		e.opts.OnResult(t.Config.Type, res.Duration, res.Reason)
	}
	now := time.Now()

	e.mu.Lock()
	defer e.mu.Unlock()
	if ent.gone {
		ent.keep.close()
		return e.next(now, s)
	}
	obs := ent.status.Observation()
	from := obs.State
	to, pending := ent.hys.observe(from, res.OK, t.Config.Rise, t.Config.Fall)
	obs.Checked, obs.Latency, obs.LastOK, obs.LastReason = now, res.Duration, res.OK, res.Reason
	obs.Successes, obs.Failures = ent.hys.oks, ent.hys.fails
	if to != from {
		obs.State, obs.Since, obs.Reason, obs.Err = to, now, "", ""
		if to == Down {
			obs.Reason = res.Reason
			if res.Err != nil {
				obs.Err = res.Err.Error()
			}
		}
	}
	ent.status.record(obs)
	interval := t.Config.Interval
	if pending {
		interval = t.Config.FastInterval
	}
	if sh := share(t.Config, pending); sh != ent.share {
		e.shares += sh - ent.share
		ent.share = sh
		e.rebound()
	}
	// Intervals run from start to start, so that a state changes within the bounds of the
	// documentation; a slow probe delays the next one, never overlaps it.
	ent.due = start.Add(interval + ent.stretch)
	ent.stretch = 0
	if ent.due.Before(now) {
		ent.due = now
	}
	if to == from {
		e.push(ent)
		return e.next(now, s)
	}
	holders := slices.Clone(ent.holders)

	// Log and deliver outside the lock; the deferred Unlock needs it locked again at the end.
	e.mu.Unlock()
	c := Change{Target: t, From: from, To: to, Reason: res.Reason, Err: res.Err, At: now}
	if e.opts.Logf != nil && (from != Unknown || to != Up) {
		if res.Err != nil {
			e.opts.Logf("check %q of %s: %s -> %s: %s: %v", t.Name, hostPort(t.Address, t.Config.Port), from, to, res.Reason, res.Err)
		} else {
			e.opts.Logf("check %q of %s: %s -> %s", t.Name, hostPort(t.Address, t.Config.Port), from, to)
		}
	}
	// Deliver before queueing the next probe, so that changes of one target arrive in order.
	for _, h := range holders {
		h.notify(c)
	}
	e.mu.Lock()

	if ent.gone { // released while its change was delivered: nobody else closes its connection
		ent.keep.close()
	} else {
		e.push(ent)
	}
	return e.next(time.Now(), s)
}

// next returns a target that is due at now, keeping the probe slot for it, or gives the slot
// back and returns nil. e.mu is held.
func (e *Engine) next(now time.Time, s *slot) *entry {
	fdsHeld := false
	if !e.closed && e.inFlight <= e.max {
		var ent *entry
		if ent, fdsHeld = e.due(now); ent != nil {
			if e.inFlight >= e.max && e.maxLimit != "" && e.isDue(now) {
				e.markHeld(e.maxLimit, now) // and more wait for a slot
			}
			return ent
		}
	}
	if e.inFlight >= e.max || fdsHeld {
		e.nudge() // the scheduler stopped starting probes at the bound, or tells of the limit
	}
	e.inFlight--
	e.spare = append(e.spare, s)
	return nil
}

// queue is a min-heap of targets by due time, for container/heap.
type queue []*entry

func (q queue) Len() int           { return len(q) }
func (q queue) Less(i, j int) bool { return q[i].due.Before(q[j].due) }
func (q queue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}

func (q *queue) Push(x any) {
	ent := x.(*entry)
	ent.index = len(*q)
	*q = append(*q, ent)
}

func (q *queue) Pop() any {
	old := *q
	n := len(old) - 1
	ent := old[n]
	old[n] = nil
	ent.index = -1
	*q = old[:n]
	return ent
}

// remove takes the target at index i out of the queue.
func (q *queue) remove(i int) { heap.Remove(q, i) }

// idleList lists the queued targets that keep an idle connection, the last queued first: when
// file descriptors run short, their connections are closed, that one first, so that probes in
// flight never wait for connections kept for later. The engine's lock guards it.
type idleList struct{ first *entry }

// push puts ent first.
func (l *idleList) push(ent *entry) {
	ent.idleNext, ent.idlePrev = l.first, nil
	if l.first != nil {
		l.first.idlePrev = ent
	}
	l.first = ent
}

// remove takes ent out of l, if it is in.
func (l *idleList) remove(ent *entry) {
	if ent.idlePrev == nil && l.first != ent {
		return
	}
	if ent.idlePrev != nil {
		ent.idlePrev.idleNext = ent.idleNext
	} else {
		l.first = ent.idleNext
	}
	if ent.idleNext != nil {
		ent.idleNext.idlePrev = ent.idlePrev
	}
	ent.idlePrev, ent.idleNext = nil, nil
}

// evict closes the connection of the first target of l and takes it out; it returns false when
// l is empty.
func (l *idleList) evict() bool {
	ent := l.first
	if ent == nil {
		return false
	}
	l.remove(ent)
	ent.keep.close()
	shedConns.Add(1)
	return true
}
