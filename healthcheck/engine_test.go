package healthcheck

import (
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestHysteresis(t *testing.T) {
	tests := []struct {
		results string // probe results in order: + passes, - fails
		states  string // state after each: u unknown, U up, D down
		pending string // p when a change is pending after the result
	}{
		{"+", "U", "."},
		{"-", "D", "."},
		{"+-+--", "UUUUD", ".p.p."}, // fall 2: one failure is reset by a success
		{"+---", "UUDD", ".p.."},    // a down target stays down
		{"-+-++", "DDDDU", ".p.p."}, // rise 2: one success is reset by a failure
		{"-++++", "DDUUU", ".p..."}, // an up target stays up
		{"+--++-", "UUDDUU", ".p.p.p"},
	}
	for _, tc := range tests {
		var h hysteresis
		s := Unknown
		var states, pending strings.Builder
		for _, r := range tc.results {
			var p bool
			s, p = h.observe(s, r == '+', 2, 2)
			states.WriteString(map[State]string{Unknown: "u", Up: "U", Down: "D"}[s])
			pending.WriteString(map[bool]string{true: "p", false: "."}[p])
		}
		if states.String() != tc.states || pending.String() != tc.pending {
			t.Errorf("%s: states %s pending %s, want %s %s", tc.results, states.String(), pending.String(), tc.states, tc.pending)
		}
	}
}

// switchable is an HTTP backend that answers 200 while up and 503 while down, and records when
// each path was asked.
type switchable struct {
	up   atomic.Bool
	mu   sync.Mutex
	hits map[string][]hit
	port int
}

type hit struct {
	at time.Time
	up bool
}

func newSwitchable(t *testing.T) *switchable {
	b := &switchable{hits: make(map[string][]hit)}
	b.up.Store(true)
	_, b.port = httpBackend(t, func(w http.ResponseWriter, r *http.Request) {
		up := b.up.Load()
		b.mu.Lock()
		b.hits[r.URL.Path] = append(b.hits[r.URL.Path], hit{time.Now(), up})
		b.mu.Unlock()
		if !up {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	return b
}

// get returns the hits of path.
func (b *switchable) get(path string) []hit {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.hits[path])
}

// target returns a target of b at path with quick timings.
func (b *switchable) target(path string, mod func(*Config)) Target {
	return testTarget(TypeHTTP, b.port, func(c *Config) {
		c.Path = path
		c.Interval, c.FastInterval, c.Timeout = time.Second, 50*time.Millisecond, 200*time.Millisecond
		if mod != nil {
			mod(c)
		}
	})
}

// changes returns an onChange that sends to a channel, and the channel.
func changes() (func(Change), chan Change) {
	ch := make(chan Change, 100)
	return func(c Change) { ch <- c }, ch
}

// next waits for the next change on ch.
func next(t *testing.T, ch chan Change) Change {
	t.Helper()
	select {
	case c := <-ch:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no state change within 5s")
	}
	return Change{}
}

func TestEngineRiseFall(t *testing.T) {
	t.Parallel()
	b := newSwitchable(t)
	var logMu sync.Mutex
	var logs []string
	e := NewEngine(Options{Logf: func(format string, args ...any) {
		logMu.Lock()
		logs = append(logs, fmt.Sprintf(format, args...))
		logMu.Unlock()
	}})
	defer e.Close()
	onChange, ch := changes()
	sub := e.Subscribe(onChange)
	tg := b.target("/rf", func(c *Config) { c.Rise, c.Fall = 2, 3 })
	st := sub.Sync([]Target{tg})[0]

	// From unknown, the first result decides.
	if c := next(t, ch); c.From != Unknown || c.To != Up || c.Reason != "" || st.State() != Up {
		t.Fatalf("first change %+v, state %v", c, st.State())
	}

	// Fall: exactly 3 failures, fast_interval apart, take it down.
	b.up.Store(false)
	c := next(t, ch)
	if c.From != Up || c.To != Down || c.Reason != ReasonStatus || c.Err == nil || st.State() != Down {
		t.Fatalf("change %+v, state %v, want up -> down (status)", c, st.State())
	}
	fails := failures(b.get("/rf"), false)
	if len(fails) != 3 {
		t.Errorf("down after %d failures, want fall = 3", len(fails))
	}
	if o := st.Observation(); o.State != Down || o.Reason != ReasonStatus || o.Err == "" || !o.Since.Equal(c.At) ||
		o.Checked.Before(o.Since) || o.Latency <= 0 || o.LastOK || o.LastReason != ReasonStatus {
		t.Errorf("observation after the fall %+v, change at %v", o, c.At)
	}
	checkGaps(t, "failures in transition", fails, 0, tg.Config.Interval/2)

	// Rise: exactly 2 successes bring it back.
	b.up.Store(true)
	c = next(t, ch)
	if c.From != Down || c.To != Up || c.Reason != "" || st.State() != Up {
		t.Fatalf("change %+v, want down -> up", c)
	}
	if oks := failures(b.get("/rf"), true); len(oks) != 2 {
		t.Errorf("up after %d successes, want rise = 2", len(oks))
	}

	// Stable again: the next probes come an interval apart. Wait for two more.
	n := len(b.get("/rf"))
	eventually(t, 5*time.Second, "two more probes", func() bool { return len(b.get("/rf")) >= n+2 })
	all := b.get("/rf")
	checkGaps(t, "probes while stable", all[len(all)-3:], tg.Config.Interval*9/10, 2*tg.Config.Interval)

	logMu.Lock()
	defer logMu.Unlock()
	if len(logs) != 2 || !strings.Contains(logs[0], `check "test" of 127.0.0.1:`) || !strings.Contains(logs[0], "up -> down: status") ||
		!strings.Contains(logs[1], "down -> up") {
		t.Errorf("log lines %q, want up -> down and down -> up", logs)
	}
}

// failures returns the trailing run of hits with up equal to want.
func failures(hits []hit, want bool) []hit {
	i := len(hits)
	for i > 0 && hits[i-1].up == want {
		i--
	}
	return hits[i:]
}

// checkGaps fails the test unless consecutive hits are between lo and hi apart.
func checkGaps(t *testing.T, what string, hits []hit, lo, hi time.Duration) {
	t.Helper()
	for i := 1; i < len(hits); i++ {
		if d := hits[i].at.Sub(hits[i-1].at); d < lo || d > hi {
			t.Errorf("%s: %v apart, want %v-%v", what, d, lo, hi)
		}
	}
}

func TestEngineFirstFailure(t *testing.T) {
	t.Parallel()
	var logs atomic.Value
	e := NewEngine(Options{Logf: func(format string, args ...any) { logs.Store(fmt.Sprintf(format, args...)) }})
	defer e.Close()
	onChange, ch := changes()
	sub := e.Subscribe(onChange)
	st := sub.Sync([]Target{testTarget(TypeTCP, refusedPort(t), nil)})[0]
	if c := next(t, ch); c.From != Unknown || c.To != Down || c.Reason != ReasonRefused || st.State() != Down {
		t.Fatalf("change %+v, want unknown -> down (refused)", c)
	}
	if l, _ := logs.Load().(string); !strings.Contains(l, "unknown -> down: refused") {
		t.Errorf("log %q", l)
	}
}

func TestEngineShared(t *testing.T) {
	t.Parallel()
	b := newSwitchable(t)
	var results atomic.Int64
	e := NewEngine(Options{OnResult: func(typ string, d time.Duration, reason string) {
		if typ != TypeHTTP || reason != "" || d <= 0 {
			t.Errorf("OnResult(%q, %v, %q)", typ, d, reason)
		}
		results.Add(1)
	}})
	defer e.Close()
	fast := func(c *Config) { c.Interval = 100 * time.Millisecond; c.Timeout = 50 * time.Millisecond }
	tg := b.target("/shared", fast)
	renamed := tg
	renamed.Name = "other-name" // the name is not part of the key

	on1, ch1 := changes()
	on2, ch2 := changes()
	s1, s2 := e.Subscribe(on1), e.Subscribe(on2)
	st1 := s1.Sync([]Target{tg, tg})
	st2 := s2.Sync([]Target{renamed})
	if st1[0] != st1[1] || st1[0] != st2[0] || e.Len() != 1 {
		t.Fatalf("shared target: statuses %p %p %p, Len %d", st1[0], st1[1], st2[0], e.Len())
	}
	// Both subscriptions hear of the change.
	next(t, ch1)
	next(t, ch2)

	// Probed once: the backend sees one request per interval, not two.
	eventually(t, 5*time.Second, "5 probes", func() bool { return len(b.get("/shared")) >= 5 })
	hits := b.get("/shared")
	checkGaps(t, "probes of a shared target", hits[:5], 90*time.Millisecond, time.Second)
	// Every probe gives one result; the last may still be on its way.
	if n := results.Load(); n < int64(len(hits))-1 || n > int64(len(b.get("/shared"))) {
		t.Errorf("%d results for %d requests", n, len(b.get("/shared")))
	}

	// Releasing it from one subscription keeps it probed for the other.
	s1.Close()
	if e.Len() != 1 {
		t.Errorf("Len %d after one of two holders closed, want 1", e.Len())
	}
	s2.Sync(nil)
	if e.Len() != 0 {
		t.Errorf("Len %d after the last holder let go, want 0", e.Len())
	}
}

func TestEngineSync(t *testing.T) {
	t.Parallel()
	b := newSwitchable(t)
	e := NewEngine(Options{})
	defer e.Close()
	sub := e.Subscribe(nil)
	a, c := b.target("/a", nil), b.target("/c", nil)
	st := sub.Sync([]Target{a})
	eventually(t, 5*time.Second, "a up", func() bool { return st[0].State() == Up })

	// A kept target keeps its status and state; a new one starts unknown.
	st2 := sub.Sync([]Target{c, a})
	if st2[1] != st[0] || st2[1].State() != Up || st2[0].State() != Unknown || e.Len() != 2 {
		t.Fatalf("after Sync: kept %p (was %p) %v, new %v, Len %d", st2[1], st[0], st2[1].State(), st2[0].State(), e.Len())
	}
	if sub.Ready() {
		t.Errorf("Ready with a target not probed yet")
	}
	eventually(t, 5*time.Second, "Ready", sub.Ready)

	// A removed target stops: c goes on being probed, a is not any more.
	sub.Sync([]Target{c})
	if e.Len() != 1 {
		t.Fatalf("Len %d, want 1", e.Len())
	}
	na, nc := len(b.get("/a")), len(b.get("/c"))
	eventually(t, 5*time.Second, "c probed twice more", func() bool { return len(b.get("/c")) >= nc+2 })
	if n := len(b.get("/a")); n > na {
		t.Errorf("a removed but probed %d more times", n-na)
	}

	// Added again, it is a new target.
	st3 := sub.Sync([]Target{c, a})
	if st3[1] == st[0] || st3[0] != st2[0] {
		t.Errorf("re-added target kept its old status, or a kept one lost it")
	}

	sub.Close()
	if e.Len() != 0 || !sub.Ready() {
		t.Errorf("after Close: Len %d, Ready %t", e.Len(), sub.Ready())
	}
	if st := sub.Sync([]Target{a}); st[0].State() != Unknown || e.Len() != 0 {
		t.Errorf("Sync after Close probes")
	}
}

func TestEngineHoldRelease(t *testing.T) {
	t.Parallel()
	b := newSwitchable(t)
	e := NewEngine(Options{})
	defer e.Close()
	s1, s2 := e.Subscribe(nil), e.Subscribe(nil)
	a, c := b.target("/ha", nil), b.target("/hc", nil)
	st := s1.Hold([]Target{a})
	eventually(t, 5*time.Second, "a up", func() bool { return st[0].State() == Up })

	// Held again, by s1 or by another subscription, a keeps its status; c is new.
	st2 := s1.Hold([]Target{c, a})
	st3 := s2.Hold([]Target{a})
	if st2[1] != st[0] || st3[0] != st[0] || st2[0].State() != Unknown || e.Len() != 2 {
		t.Fatalf("after Hold: kept %p %p (was %p), new %v, Len %d", st2[1], st3[0], st[0], st2[0].State(), e.Len())
	}
	if s1.Status(a.Key) != st[0] || s2.Status(a.Key) != st[0] || s2.Status(c.Key) != nil || s1.Status("not held") != nil {
		t.Fatalf("Status: the cells of the targets a subscription holds, nil for others")
	}
	// Released by s1, a goes on for s2; c, held by s1 alone, stops.
	s1.Release([]string{a.Key, c.Key, "not held"})
	if s1.Status(a.Key) != nil || s2.Status(a.Key) != st[0] {
		t.Fatalf("Status after s1 let a go")
	}
	if e.Len() != 1 {
		t.Fatalf("Len %d after s1 let go, want 1 (a, for s2)", e.Len())
	}
	na := len(b.get("/ha"))
	eventually(t, 5*time.Second, "a probed twice more", func() bool { return len(b.get("/ha")) >= na+2 })
	s2.Release([]string{a.Key})
	if e.Len() != 0 || e.Stats().Stopped != 2 {
		t.Errorf("Len %d, %+v after both let go", e.Len(), e.Stats())
	}
}

func TestEngineReady(t *testing.T) {
	t.Parallel()
	silent, _ := silentPort(t)
	e := NewEngine(Options{})
	defer e.Close()
	sub := e.Subscribe(nil)
	if !sub.Ready() {
		t.Errorf("an empty subscription is not ready")
	}
	// The first probe takes the whole timeout.
	st := sub.Sync([]Target{testTarget(TypeHTTP, silent, nil)})
	if sub.Ready() {
		t.Errorf("ready before the first probe ended")
	}
	eventually(t, 5*time.Second, "Ready", sub.Ready)
	if st[0].State() != Down {
		t.Errorf("state %v, want down", st[0].State())
	}
}

func TestEngineMaxInFlight(t *testing.T) {
	t.Parallel()
	silent, _ := silentPort(t)
	var results atomic.Int64
	e := NewEngine(Options{MaxInFlight: 2, OnResult: func(string, time.Duration, string) { results.Add(1) }})
	defer e.Close()
	var targets []Target
	for i := range 8 {
		targets = append(targets, testTarget(TypeHTTP, silent, func(c *Config) {
			c.Path = fmt.Sprintf("/%d", i)
			c.Timeout, c.Interval = 100*time.Millisecond, 10*time.Second
		}))
	}
	start := time.Now()
	e.Subscribe(nil).Sync(targets)
	eventually(t, 5*time.Second, "8 results", func() bool { return results.Load() >= 8 })
	// 8 probes of 100ms, 2 at a time, take at least 400ms; all at once they would take 100ms.
	if took := time.Since(start); took < 350*time.Millisecond {
		t.Errorf("8 probes of 100ms with MaxInFlight 2 took %v", took)
	}
}

func TestEngineClose(t *testing.T) {
	silent, accepted := silentPort(t)
	b := newSwitchable(t)
	before := runtime.NumGoroutine()

	var results atomic.Int64
	e := NewEngine(Options{OnResult: func(string, time.Duration, string) { results.Add(1) }})
	sub := e.Subscribe(nil)
	var targets []Target
	for i := range 10 {
		path := fmt.Sprintf("/%d", i)
		targets = append(targets,
			testTarget(TypeHTTP, silent, func(c *Config) { c.Path = path; c.Timeout, c.Interval = 5*time.Second, 10*time.Second }),
			b.target(path, func(c *Config) { c.Interval = 100 * time.Millisecond; c.Timeout = 50 * time.Millisecond }))
	}
	sub.Sync(targets)
	eventually(t, 5*time.Second, "probes in flight", func() bool { return accepted.get() >= 10 && results.Load() >= 10 })

	start := time.Now()
	e.Close()
	if took := time.Since(start); took > time.Second {
		t.Errorf("Close took %v: running probes were not canceled", took)
	}
	// Close waited for the engine's goroutines; those of the backends' connections end soon.
	eventually(t, 5*time.Second, "goroutines gone", func() bool { return runtime.NumGoroutine() <= before })
	if st := sub.Sync(targets[:1]); st[0].State() != Unknown || e.Len() != 0 {
		t.Errorf("Sync after Close: %v, Len %d", st[0].State(), e.Len())
	}
	e.Close() // twice is fine
}

func TestSubscriptionCloseStopsChanges(t *testing.T) {
	t.Parallel()
	b := newSwitchable(t)
	e := NewEngine(Options{})
	defer e.Close()
	on1, ch1 := changes()
	on2, ch2 := changes()
	s1, s2 := e.Subscribe(on1), e.Subscribe(on2)
	tg := b.target("/x", func(c *Config) { c.Interval = 100 * time.Millisecond; c.Timeout = 50 * time.Millisecond })
	s1.Sync([]Target{tg})
	s2.Sync([]Target{tg})
	next(t, ch1)
	next(t, ch2)
	s1.Close()
	b.up.Store(false)
	if c := next(t, ch2); c.To != Down {
		t.Fatalf("change %+v", c)
	}
	if len(ch1) != 0 {
		t.Errorf("a closed subscription got a change")
	}
}
