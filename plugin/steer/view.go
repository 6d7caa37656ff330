package steer

import (
	"cmp"
	"slices"
	"time"

	"github.com/steerdns/steerdns/cluster"
	"github.com/steerdns/steerdns/healthcheck"
	"github.com/steerdns/steerdns/zones"
)

// State is an endpoint's effective state: what the answers use.
type State uint8

// Effective states. Unknown counts as up, so that a cold start answers as configured.
const (
	StateUnknown  State = iota // not yet checked
	StateUp                    // this node's probes (or the cluster) say up
	StateDown                  // this node's probes (or the cluster) say down
	StateDrained               // an operator's drain: treated as down
	StateForcedUp              // an operator's force-up: treated as up
)

var stateNames = [...]string{"unknown", "up", "down", "drained", "forced-up"}

func (s State) String() string { return stateNames[s] }

// Up reports whether answers may include an endpoint in state s.
func (s State) Up() bool { return s != StateDown && s != StateDrained }

func fromProbe(s healthcheck.State) State {
	switch s {
	case healthcheck.Up:
		return StateUp
	case healthcheck.Down:
		return StateDown
	}
	return StateUnknown
}

// Action is what an override does.
type Action uint8

// Override actions.
const (
	ActionDrain   Action = iota + 1 // treat as down
	ActionForceUp                   // treat as up
)

func (a Action) String() string {
	if a == ActionForceUp {
		return "force-up"
	}
	return "drain"
}

// Scope is what an override covers. The most specific scope wins: endpoint, then pool, then
// region; at one scope, the newest override.
type Scope uint8

// Override scopes, most specific first.
const (
	ScopeEndpoint Scope = iota + 1 // an endpoint address, wherever it stands
	ScopePool                      // one pool of one service
	ScopeRegion                    // every pool of a region
)

func (s Scope) String() string {
	switch s {
	case ScopeEndpoint:
		return "endpoint"
	case ScopePool:
		return "pool"
	}
	return "region"
}

// Override is an operator's drain or force-up. It never rewrites a policy file.
type Override struct {
	ID     string
	Scope  Scope
	Action Action
	// Address is the endpoint (ScopeEndpoint): an IP address or a name, as the policy file has it.
	Address string
	// Zone and Service (relative, "@" for the apex) name the pool's service (ScopePool).
	Zone, Service string
	// Region is the pool's label (ScopePool) or the region (ScopeRegion).
	Region string
	// Created is when it was set; Expires when it ends (zero: when it is deleted).
	Created, Expires time.Time
	Reason, By       string
}

// State is the effective state that o gives the endpoints it covers.
func (o *Override) State() State {
	if o.Action == ActionForceUp {
		return StateForcedUp
	}
	return StateDrained
}

// newer orders overrides newest first (ties by ID, so that the order is total).
func newer(a, b *Override) int {
	if c := b.Created.Compare(a.Created); c != 0 {
		return c
	}
	return cmp.Compare(b.ID, a.ID)
}

// overrides are the active overrides of a view, resolved against the zones it serves.
type overrides struct {
	list     []*Override // newest first
	endpoint map[string]*Override
	pool     map[*zones.Pool]*Override
	region   map[string]*Override
	expiry   time.Time // the earliest Expires; zero when none expires
}

// find returns the override that covers ep in p, or nil.
func (o *overrides) find(p *zones.Pool, ep *zones.Endpoint) *Override {
	if x := o.endpoint[ep.Address]; x != nil {
		return x
	}
	if x := o.pool[p]; x != nil {
		return x
	}
	if p.Region != "" {
		return o.region[p.Region]
	}
	return nil
}

// resolveOverrides keeps the overrides of list that are active at now and indexes them for
// set. A pool override whose pool set does not serve stays listed, covering nothing.
func resolveOverrides(list []*Override, set *zones.Set, now time.Time) *overrides {
	o := &overrides{endpoint: map[string]*Override{}, pool: map[*zones.Pool]*Override{}, region: map[string]*Override{}}
	for _, x := range list {
		if !x.Expires.IsZero() && !x.Expires.After(now) {
			continue
		}
		o.list = append(o.list, x)
	}
	if len(o.list) == 0 {
		return nil
	}
	slices.SortFunc(o.list, newer)
	for _, x := range o.list {
		if !x.Expires.IsZero() && (o.expiry.IsZero() || x.Expires.Before(o.expiry)) {
			o.expiry = x.Expires
		}
		switch x.Scope {
		case ScopeEndpoint:
			if o.endpoint[x.Address] == nil {
				o.endpoint[x.Address] = x
			}
		case ScopeRegion:
			if o.region[x.Region] == nil {
				o.region[x.Region] = x
			}
		case ScopePool:
			if p := findPool(set, x.Zone, x.Service, x.Region); p != nil && o.pool[p] == nil {
				o.pool[p] = x
			}
		}
	}
	return o
}

// findPool returns the pool labelled label of service (relative to zone, "@" for the apex),
// or nil.
func findPool(set *zones.Set, zone, service, label string) *zones.Pool {
	if set == nil {
		return nil
	}
	z := set.Zone(zone)
	if z == nil {
		return nil
	}
	name := zone
	if service != "@" {
		name = service + "." + zone
	}
	svc := z.Service(name)
	if svc == nil {
		return nil
	}
	for _, p := range svc.Pools {
		if p.Label == label {
			return p
		}
	}
	return nil
}

// Target health is kept in slots: one per distinct target of the served zones, numbered by the
// plugin, in a three-level tree of 256-way nodes that a change copies along one path. One
// target's change copies three nodes of each slot array (about 6 KB in all), whatever the
// number of targets, zones or services.
const (
	fanBits  = 8
	fan      = 1 << fanBits
	fanMask  = fan - 1
	maxSlots = fan * fan * fan // 16,777,216 targets
)

type (
	leaf[T any] [fan]T
	mid[T any]  [fan]*leaf[T]
	top[T any]  [fan]*mid[T]
)

// paged is an immutable array of slots, copied on write.
type paged[T any] struct{ root *top[T] }

func (p paged[T]) at(i int32) (v T) {
	if p.root == nil || i >= maxSlots {
		return v
	}
	m := p.root[i>>(2*fanBits)]
	if m == nil {
		return v
	}
	l := m[(i>>fanBits)&fanMask]
	if l == nil {
		return v
	}
	return l[i&fanMask]
}

// pagedEdit writes a copy of a paged array, copying each node it touches once.
type pagedEdit[T any] struct {
	p     paged[T]
	owned map[any]bool // the nodes this edit made
}

// set stores v at slot i; i must be under maxSlots.
func (e *pagedEdit[T]) set(i int32, v T) {
	if e.owned == nil {
		e.owned = map[any]bool{}
	}
	if e.p.root == nil || !e.owned[e.p.root] {
		root := new(top[T])
		if e.p.root != nil {
			*root = *e.p.root
		}
		e.p.root = root
		e.owned[root] = true
	}
	hi, lo := i>>(2*fanBits), (i>>fanBits)&fanMask
	m := e.p.root[hi]
	if m == nil || !e.owned[m] {
		n := new(mid[T])
		if m != nil {
			*n = *m
		}
		m, e.p.root[hi] = n, n
		e.owned[m] = true
	}
	l := m[lo]
	if l == nil || !e.owned[l] {
		n := new(leaf[T])
		if l != nil {
			*n = *l
		}
		l, m[lo] = n, n
		e.owned[l] = true
	}
	l[i&fanMask] = v
}

// TargetHealth is what the view knows of one target: this node's observation and the
// cluster's verdict (StateUnknown when no peer observed it, or when this node does not trust
// the cluster).
type TargetHealth struct {
	Own     healthcheck.Observation
	Cluster State
	// Verdict is the cluster's count behind Cluster.
	Verdict cluster.Verdict
	// Restored says Own is the state saved before a restart, not confirmed by a probe yet.
	Restored bool
}

// State is the target's state before overrides: the cluster's verdict, else this node's own.
func (t *TargetHealth) State() State {
	if t.Cluster != StateUnknown {
		return t.Cluster
	}
	return fromProbe(t.Own.State)
}

// View is one consistent picture of health: the effective state of every endpoint of every
// served zone. It is immutable: a change (a probe's transition, an override, a reload) makes a
// new view. A query loads one view and takes every decision of its answer from it.
type View struct {
	// Version counts the views an instance published.
	Version uint64
	// state holds each slot's TargetHealth.State, a byte per slot for the query path.
	state paged[State]
	// health holds each slot's TargetHealth, for status and explain.
	health    paged[*TargetHealth]
	overrides *overrides // nil when none is active
}

// Target returns the health of slot i, or nil.
func (v *View) Target(i int32) *TargetHealth { return v.health.at(i) }

// Overrides returns the active overrides, newest first.
func (v *View) Overrides() []*Override {
	if v.overrides == nil {
		return nil
	}
	return v.overrides.list
}

// viewEdit builds the next view from one, changing only what it is told.
type viewEdit struct {
	v      View
	state  pagedEdit[State]
	health pagedEdit[*TargetHealth]
}

func (v *View) edit() *viewEdit {
	e := &viewEdit{v: *v}
	e.state.p, e.health.p = v.state, v.health
	return e
}

// set stores the health of slot i (nil: the slot is free).
func (e *viewEdit) set(i int32, h *TargetHealth) {
	st := StateUnknown
	if h != nil {
		st = h.State()
	}
	e.state.set(i, st)
	e.health.set(i, h)
}

func (e *viewEdit) done() *View {
	v := e.v
	v.Version++
	v.state, v.health = e.state.p, e.health.p
	return &v
}

// zoneHealth is the view as one zone sees it: slots maps the zone's Targets to view slots.
type zoneHealth struct {
	v     *View
	slots []int32
}

// state returns the effective state of ep in pool p.
func (h zoneHealth) state(p *zones.Pool, ep *zones.Endpoint) State {
	if h.v.overrides != nil {
		return h.overridden(p, ep)
	}
	if ep.Target == zones.NoTarget {
		return StateUp
	}
	return h.v.state.at(h.slots[ep.Target])
}

// overridden is state when some override is active; apart, so that state inlines.
func (h zoneHealth) overridden(p *zones.Pool, ep *zones.Endpoint) State {
	if x := h.v.overrides.find(p, ep); x != nil {
		return x.State()
	}
	if ep.Target == zones.NoTarget {
		return StateUp
	}
	return h.v.state.at(h.slots[ep.Target])
}

// up reports whether ep in p may be answered.
func (h zoneHealth) up(p *zones.Pool, ep *zones.Endpoint) bool { return h.state(p, ep).Up() }

// healthy reports whether at least MinHealthy endpoints of p are up.
func (h zoneHealth) healthy(p *zones.Pool) bool {
	n := 0
	for _, ep := range p.Endpoints {
		if h.up(p, ep) {
			if n++; n >= p.MinHealthy {
				return true
			}
		}
	}
	return false
}
