package steer

import (
	"slices"
	"time"

	"github.com/steerdns/steerdns/healthcheck"
	"github.com/steerdns/steerdns/plugin/steer/admin"
	"github.com/steerdns/steerdns/zones"
)

// slotTable numbers the distinct targets of the served zones: each target key has one slot of
// the view while a zone holds it. Guarded by Steer.pub.
type slotTable struct {
	byKey   map[string]int32
	targets []healthcheck.Target // by slot; Key is "" while the slot is free
	holders [][]holder           // by slot: the zones that hold it
	free    []int32
}

// holder is one zone's use of a slot: the zone and the target's index in z.Targets.
type holder struct {
	zone  *zones.Zone
	local int32
}

// acquire records that z holds t as its Targets[local] and returns t's slot; fresh when the
// slot was not in use.
func (st *slotTable) acquire(t healthcheck.Target, z *zones.Zone, local int32) (slot int32, fresh bool) {
	if st.byKey == nil {
		st.byKey = map[string]int32{}
	}
	slot, ok := st.byKey[t.Key]
	if !ok {
		if n := len(st.free); n > 0 {
			slot, st.free = st.free[n-1], st.free[:n-1]
		} else {
			slot = int32(len(st.targets))
			st.targets = append(st.targets, healthcheck.Target{})
			st.holders = append(st.holders, nil)
		}
		st.byKey[t.Key] = slot
		st.targets[slot] = t
		fresh = true
	}
	st.holders[slot] = append(st.holders[slot], holder{z, local})
	return slot, fresh
}

// release drops z from the holders of slot and reports whether the slot became free.
func (st *slotTable) release(slot int32, z *zones.Zone) bool {
	st.holders[slot] = slices.DeleteFunc(st.holders[slot], func(h holder) bool { return h.zone == z })
	if len(st.holders[slot]) > 0 {
		return false
	}
	delete(st.byKey, st.targets[slot].Key)
	st.targets[slot] = healthcheck.Target{}
	st.holders[slot] = nil
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
	for _, z := range set.Zones() {
		if zs := old.zones[z]; zs != nil {
			next.zones[z] = zs
			continue
		}
		zs := &zoneServed{slots: make([]int32, len(z.Targets)), answers: make(map[*zones.Service]*serviceCounters, len(z.Services))}
		for i, t := range z.Targets {
			slot, isNew := s.slots.acquire(t, z, int32(i))
			zs.slots[i] = slot
			if isNew {
				fresh = append(fresh, slot)
			}
		}
		zs.regions = make([][]string, len(z.Targets))
		for _, svc := range z.Services {
			zs.answers[svc] = newServiceCounters(z, svc)
			for _, p := range svc.Pools {
				for _, ep := range p.Endpoints {
					if ep.Target != zones.NoTarget && !slices.Contains(zs.regions[ep.Target], p.Label) {
						zs.regions[ep.Target] = append(zs.regions[ep.Target], p.Label)
					}
				}
			}
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
	targets := make([]healthcheck.Target, len(fresh))
	for i, slot := range fresh {
		targets[i] = s.slots.targets[slot]
	}
	obs := s.health.Hold(targets)
	for i, slot := range fresh {
		th := &TargetHealth{Target: targets[i], Own: obs[i]}
		// Not probed yet: the state saved before the restart, until a probe confirms it.
		if r, ok := s.restored[targets[i].Key]; ok && obs[i].State == healthcheck.Unknown {
			th.Own, th.Restored = r, true
			delete(s.restored, targets[i].Key)
			if s.state != nil {
				s.state.mu.Lock()
				s.state.restored++
				s.state.mu.Unlock()
			}
		}
		e.set(slot, th)
	}
	s.health.Release(gone)
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
	th := &TargetHealth{Target: s.slots.targets[slot], Own: healthcheck.Observation{State: c.To, Since: c.At, Reason: c.Reason}}
	if prev := old.view.Target(slot); prev != nil {
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
	for _, h := range s.slots.holders[slot] {
		if zs := next.zones[h.zone]; zs != nil {
			for _, region := range zs.regions[h.local] {
				transitionsTotal.WithLabelValues(h.zone.Origin, region, to).Inc()
			}
			zoneNames = append(zoneNames, h.zone.Origin)
		}
	}
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
