package steer

import (
	"slices"
	"time"

	"github.com/steerdns/steerdns/plugin/steer/admin"
)

// historySize is how many transitions are kept.
const historySize = 1000

// history is a ring of the last historySize transitions. Guarded by Steer.pub.
type history struct {
	buf  []admin.Transition
	next int // where the next one goes, once buf is full
}

func (h *history) add(t admin.Transition) {
	if len(h.buf) < historySize {
		h.buf = append(h.buf, t)
		return
	}
	h.buf[h.next] = t
	h.next = (h.next + 1) % historySize
}

// list returns the transitions at or after since (zero: all) of endpoint (empty: all), oldest
// first.
func (h *history) list(since time.Time, endpoint string) []admin.Transition {
	out := make([]admin.Transition, 0, len(h.buf))
	for i := range h.buf {
		t := h.buf[(h.next+i)%len(h.buf)]
		if (since.IsZero() || !t.Time.Before(since)) && (endpoint == "" || t.Endpoint == endpoint) {
			out = append(out, t)
		}
	}
	return out
}

// History returns the recorded transitions for the admin API.
func (s *Steer) History(since time.Time, endpoint string) []admin.Transition {
	s.pub.Lock()
	defer s.pub.Unlock()
	return s.history.list(since, endpoint)
}

// takeOver copies the overrides and the history of the running instance that serves the same
// policy paths: on a Corefile reload the new instance starts before the old one stops, and
// what operators set must not depend on state_dir to survive it.
func (s *Steer) takeOver() {
	prev := instances.samePaths(s)
	if prev == nil {
		return
	}
	prev.pub.Lock()
	overrides := slices.Clone(prev.overrides)
	h := history{buf: slices.Clone(prev.history.buf), next: prev.history.next}
	prev.pub.Unlock()
	s.pub.Lock()
	s.overrides, s.history = overrides, h
	s.pub.Unlock()
}
