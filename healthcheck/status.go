package healthcheck

import "sync/atomic"

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

// Status is the live state of one target. The engine writes it; the query path reads it with
// one atomic load and no lock.
type Status struct {
	v atomic.Uint32
}

// NewStatus returns a status in state s. Tests and callers that need an always-up target
// ("check: none") use it directly.
func NewStatus(s State) *Status {
	st := new(Status)
	st.v.Store(uint32(s))
	return st
}

// State returns the current state.
func (s *Status) State() State { return State(s.v.Load()) }

// Up reports whether answers may include the target: up, or not yet checked.
func (s *Status) Up() bool { return State(s.v.Load()) != Down }

// Set stores a new state and returns the previous one.
func (s *Status) Set(st State) State { return State(s.v.Swap(uint32(st))) }

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
