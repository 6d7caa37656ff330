package healthcheck

import (
	"sync/atomic"
	"time"
)

// State is the health of one target.
type State uint32

// States of a target. Unknown counts as up: a cold start answers as configured.
const (
	Unknown State = iota
	Up
	Down
)

func (s State) String() string {
	switch s {
	case Up:
		return "up"
	case Down:
		return "down"
	}
	return "unknown"
}

// Observation is what this node's probes say of one target: its state, since when, and the last
// probe. The engine keeps one per target; callers read it with Status.Observation.
type Observation struct {
	// State is the target's state after rise/fall.
	State State
	// Since is when State was entered (for Unknown: when the target was first declared).
	Since time.Time
	// Reason is the Reason of the probe that made the last change; empty when State is not Down.
	Reason string
	// Err is that probe's error in detail; empty when State is not Down.
	Err string
	// Checked is when the last probe ended; zero before the first.
	Checked time.Time
	// Latency is the duration of the last probe.
	Latency time.Duration
	// LastOK is the last probe's result; LastReason its failure reason ("" when it passed).
	LastOK     bool
	LastReason string
	// Successes and Failures count the consecutive results that rise and fall compare against.
	Successes, Failures int
}

// Status is the live record of one target. The engine writes it; readers take an Observation
// with one atomic load and no lock. The query path never reads it: the plugin copies each
// change into its health view.
type Status struct {
	obs atomic.Pointer[Observation]
}

// NewStatus returns a status in state s since now. Tests and callers that need a status they
// drive themselves use it directly.
func NewStatus(s State) *Status {
	st := new(Status)
	st.obs.Store(&Observation{State: s, Since: time.Now()})
	return st
}

// State returns the current state.
func (s *Status) State() State { return s.obs.Load().State }

// Observation returns the current observation.
func (s *Status) Observation() Observation { return *s.obs.Load() }

// record stores o. Only the engine writes, one probe of a target at a time.
func (s *Status) record(o Observation) { s.obs.Store(&o) }

// hysteresis is the rise/fall state machine of one target: consecutive results, each count
// reset by the opposite result.
type hysteresis struct {
	oks, fails int
}

// observe records one probe result of a target in state s and returns the next state, and
// whether a change is pending: a failure seen while up, or a success seen while down, but not yet
// fall or rise of them. The first result of an unknown target decides its state at once.
func (h *hysteresis) observe(s State, ok bool, rise, fall int) (next State, pending bool) {
	if ok {
		h.oks, h.fails = h.oks+1, 0
	} else {
		h.oks, h.fails = 0, h.fails+1
	}
	switch {
	case s == Unknown && ok, s == Down && h.oks >= rise:
		next = Up
	case s == Unknown, s == Up && h.fails >= fall:
		next = Down
	default:
		return s, (s == Up && h.fails > 0) || (s == Down && h.oks > 0)
	}
	*h = hysteresis{}
	return next, false
}
