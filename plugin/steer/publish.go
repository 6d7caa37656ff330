package steer

import (
	"slices"
	"time"

	"github.com/steerdns/steerdns/cluster"
	"github.com/steerdns/steerdns/healthcheck"
	"github.com/steerdns/steerdns/plugin/steer/admin"
	"github.com/steerdns/steerdns/zones"
)

// slotTable numbers the distinct targets of the served zones: each target key has one slot of
// the view while a zone holds it. Guarded by Steer.pub. A slot points at the target in one of
// the zones that hold it, so that 500,000 targets are not copied again.
type slotTable struct {
	byKey   map[string]int32
	targets []*healthcheck.Target // by slot; nil while the slot is free
	// With a cluster: hash holds by slot the cluster.KeyHash of the target's key, byHash the
	// slot of each hash.
	clustered bool
	hash      []uint64
	byHash    map[uint64]int32
	holders   []holders // by slot: the zones that hold it
	free      []int32
}

// holder is one zone's use of a slot: the zone and the target's index in z.Targets.
type holder struct {
	zone  *zones.Zone
	local int32
}

// holders lists a slot's holders; the first is inline, since most targets have one.
type holders struct {
	first holder
	more  []holder
}

func (h *holders) each(f func(holder)) {
	if h.first.zone != nil {
		f(h.first)
	}
	for _, x := range h.more {
		f(x)
	}
}

// grow makes room for n more targets.
func (st *slotTable) grow(n int) {
	if st.byKey == nil {
		st.byKey = make(map[string]int32, n)
		if st.clustered {
			st.byHash = make(map[uint64]int32, n)
		}
	}
	if n > len(st.free) {
		st.targets = slices.Grow(st.targets, n-len(st.free))
		st.hash = slices.Grow(st.hash, n-len(st.free))
		st.holders = slices.Grow(st.holders, n-len(st.free))
	}
}

// acquire records that z holds its Targets[local] and returns its slot; fresh when the slot
// was not in use.
func (st *slotTable) acquire(z *zones.Zone, local int32) (slot int32, fresh bool) {
	t := &z.Targets[local]
	slot, ok := st.byKey[t.Key]
	if !ok {
		if n := len(st.free); n > 0 {
			slot, st.free = st.free[n-1], st.free[:n-1]
		} else {
			slot = int32(len(st.targets))
			st.targets = append(st.targets, nil)
			st.hash = append(st.hash, 0)
			st.holders = append(st.holders, holders{})
		}
		st.byKey[t.Key] = slot
		st.targets[slot] = t
		if st.clustered {
			st.hash[slot] = cluster.KeyHash(t.Key)
			st.byHash[st.hash[slot]] = slot
		}
		st.holders[slot] = holders{first: holder{z, local}}
		return slot, true
	}
	st.holders[slot].more = append(st.holders[slot].more, holder{z, local})
	return slot, false
}

// release drops z from the holders of slot and reports whether the slot became free.
func (st *slotTable) release(slot int32, z *zones.Zone) bool {
	h := &st.holders[slot]
	h.more = slices.DeleteFunc(h.more, func(x holder) bool { return x.zone == z })
	if h.first.zone == z {
		h.first = holder{}
		if len(h.more) > 0 {
			h.first, h.more = h.more[0], h.more[1:]
		}
	}
	if h.first.zone != nil {
		st.targets[slot] = &h.first.zone.Targets[h.first.local] // z may be gone: point at a holder's
		return false
	}
	delete(st.byKey, st.targets[slot].Key)
	if st.clustered {
		delete(st.byHash, st.hash[slot])
	}
	st.targets[slot] = nil
	*h = holders{}
	st.free = append(st.free, slot)
	return true
}

// publish serves set: zones new to it get slots (a target already held keeps its slot and
// state), zones gone release theirs, the health source is told the targets that came and
// went, and the next snapshot is swapped in. Unchanged zones keep what they had: the cost is
// that of the zones that changed, plus a map look-up per zone.
func (s *Steer) publish(set *zones.Set) {
	s.pub.Lock()
	defer s.pub.Unlock()
	old := s.snap.Load()
	next := &snapshot{set: set, zones: make(map[*zones.Zone]*zoneServed, len(old.zones))}
	e := old.view.edit()
	var fresh []int32
	var whole *zones.Zone // a zone whose Targets are, in order, all the fresh targets
	for _, z := range set.Zones() {
		if zs := old.zones[z]; zs != nil {
			next.zones[z] = zs
			continue
		}
		zs := &zoneServed{slots: make([]int32, len(z.Targets)), answers: make(map[*zones.Service]*serviceCounters, len(z.Services))}
		s.slots.grow(len(z.Targets))
		before := len(fresh)
		for i := range z.Targets {
			slot, isNew := s.slots.acquire(z, int32(i))
			zs.slots[i] = slot
			if isNew {
				fresh = append(fresh, slot)
			}
		}
		switch {
		case len(fresh) == before:
		case before == 0 && len(fresh) == len(z.Targets):
			whole = z
		default:
			whole = nil
		}
		zs.labelTargets(z)
		counters := make([]serviceCounters, len(z.Services)) // one allocation for the zone
		k := 0
		for _, svc := range z.Services {
			counters[k] = serviceCounters{zone: z.Origin, service: z.Relative(svc.Name)}
			zs.answers[svc] = &counters[k]
			k++
		}
		next.zones[z] = zs
	}
	var gone []string // keys of the targets no zone holds any more
	for z, zs := range old.zones {
		if next.zones[z] != nil {
			continue
		}
		for _, slot := range zs.slots {
			key := s.slots.targets[slot].Key
			if s.slots.release(slot, z) {
				e.set(slot, nil)
				gone = append(gone, key)
			}
		}
	}
	// The health source is given the fresh targets: at start-up (or when a file's targets are
	// all new) the zone's own Targets, else copies.
	var targets []healthcheck.Target
	if whole != nil {
		targets = whole.Targets
	} else {
		targets = make([]healthcheck.Target, len(fresh))
		for i, slot := range fresh {
			targets[i] = *s.slots.targets[slot]
		}
	}
	statuses := s.health.Hold(targets)
	if s.cluster != nil {
		s.cluster.hold(targets, statuses)
	}
	// New targets mostly start alike (unknown since one instant, nothing restored, no verdict
	// yet): a run of equal values shares one TargetHealth, which nothing writes once it is in a
	// view. At 500,000 targets, one each was 100 MB.
	var last *TargetHealth
	var batch []TargetHealth // allocated a few at a time, for the values that differ
	for i, slot := range fresh {
		var th TargetHealth
		th.Own = statuses[i].Observation()
		// Not probed yet: the state saved before the restart, until a probe confirms it.
		if r, ok := s.restored[targets[i].Key]; ok && th.Own.State == healthcheck.Unknown {
			th.Own, th.Restored = r, true
			delete(s.restored, targets[i].Key)
			if s.state != nil {
				s.state.mu.Lock()
				s.state.restored++
				s.state.mu.Unlock()
			}
		}
		if s.cluster != nil {
			th.Verdict = s.verdictOf(slot)
			th.Cluster = fromVerdict(th.Verdict)
		}
		if last == nil || *last != th {
			if len(batch) == 0 {
				batch = make([]TargetHealth, min(len(fresh)-i, 256))
			}
			batch[0] = th
			last, batch = &batch[0], batch[1:]
		}
		e.set(slot, last)
	}
	s.health.Release(gone)
	if s.cluster != nil {
		s.cluster.release(gone)
	}
	e.v.overrides = s.activeOverrides(set, time.Now())
	next.view = e.done()
	s.snap.Store(next)
}

// observe is the health source's hook: a target changed state. Its slot gets the new
// observation and a new view is swapped in; the change is counted once per (zone, region)
// that holds the target.
func (s *Steer) observe(c healthcheck.Change) {
	s.pub.Lock()
	defer s.pub.Unlock()
	slot, ok := s.slots.byKey[c.Target.Key]
	if !ok {
		return // released meanwhile
	}
	old := s.snap.Load()
	th := &TargetHealth{Own: healthcheck.Observation{State: c.To, Since: c.At, Reason: c.Reason}}
	if s.cluster != nil {
		// Peers hear of it at once; the verdict counts it at once, so that a node alone, or
		// the node whose probe tips the quorum, does not wait for the next round.
		s.cluster.node.Observe(c.Target.Key, c.To == healthcheck.Down, c.At, c.Target.Config.Interval)
		th.Verdict = s.verdictOf(slot)
		th.Cluster = fromVerdict(th.Verdict)
	} else if prev := old.view.Target(slot); prev != nil {
		th.Cluster = prev.Cluster
	}
	if c.Err != nil {
		th.Own.Err = c.Err.Error()
	}
	e := old.view.edit()
	e.set(slot, th)
	next := *old
	next.view = e.done()
	s.snap.Store(&next)

	to := c.To.String()
	var zoneNames []string
	s.slots.holders[slot].each(func(h holder) {
		if zs := next.zones[h.zone]; zs != nil {
			for _, region := range zs.labelsOf(h.local) {
				transitionsTotal.WithLabelValues(h.zone.Origin, region, to).Inc()
			}
			zoneNames = append(zoneNames, h.zone.Origin)
		}
	})
	from := c.From.String()
	if prev := old.view.Target(slot); prev != nil && prev.Restored {
		from = prev.Own.State.String() + " (restored)"
	}
	t := admin.Transition{Time: c.At, Endpoint: c.Target.Address, Check: c.Target.Name, From: from, To: to, Reason: c.Reason, Node: s.node, Zones: zoneNames}
	if c.Err != nil {
		t.Reason += ": " + c.Err.Error()
	}
	s.history.add(t)
	s.state.changed()
}

// SetOverrides replaces the overrides: the next query answers by them. Expired ones are
// dropped; the view is published again when the earliest of the others expires.
func (s *Steer) SetOverrides(list []*Override) {
	s.pub.Lock()
	defer s.pub.Unlock()
	s.overrides = slices.Clone(list)
	s.republish()
}

// republish swaps in the same zones and health with the overrides active now. s.pub is held.
func (s *Steer) republish() {
	old := s.snap.Load()
	e := old.view.edit()
	e.v.overrides = s.activeOverrides(old.set, time.Now())
	next := *old
	next.view = e.done()
	s.snap.Store(&next)
}

// activeOverrides resolves the overrides active at now against set, drops the expired ones and
// arms the timer for the next expiry. s.pub is held.
func (s *Steer) activeOverrides(set *zones.Set, now time.Time) *overrides {
	o := resolveOverrides(s.overrides, set, now)
	if s.expiry != nil {
		s.expiry.Stop()
		s.expiry = nil
	}
	if o == nil {
		s.overrides = nil
		return nil
	}
	s.overrides = slices.Clone(o.list)
	if !o.expiry.IsZero() {
		s.expiry = time.AfterFunc(o.expiry.Sub(now), func() {
			s.pub.Lock()
			defer s.pub.Unlock()
			s.republish()
		})
	}
	return o
}

// labelTargets records, for each of the zone's targets, the labels of the pools that hold it
// (the region label of its transitions): one label index per target, and a map for the few
// that stand in pools of several regions.
func (zs *zoneServed) labelTargets(z *zones.Zone) {
	zs.label = make([]int32, len(z.Targets))
	for i := range zs.label {
		zs.label[i] = -1
	}
	index := map[string]int32{}
	for _, svc := range z.Services {
		for _, p := range svc.Pools {
			li, ok := index[p.Label]
			if !ok {
				li = int32(len(zs.labels))
				index[p.Label] = li
				zs.labels = append(zs.labels, p.Label)
			}
			for _, ep := range p.Endpoints {
				t := ep.Target
				switch {
				case t == zones.NoTarget || zs.label[t] == li:
				case zs.label[t] < 0:
					zs.label[t] = li
				default:
					if zs.more == nil {
						zs.more = map[int32][]int32{}
					}
					if !slices.Contains(zs.more[t], li) {
						zs.more[t] = append(zs.more[t], li)
					}
				}
			}
		}
	}
}

// labelsOf returns the labels of the pools that hold the zone's target local.
func (zs *zoneServed) labelsOf(local int32) []string {
	if zs.label[local] < 0 {
		return nil
	}
	out := []string{zs.labels[zs.label[local]]}
	for _, li := range zs.more[local] {
		out = append(out, zs.labels[li])
	}
	return out
}
