package healthcheck

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"
)

// The first round of many targets ends within 11/12 of the interval (so within interval +
// timeout, for ready), and their second probes spread over the whole interval again, each at
// most 1/12 of an interval late.
func TestFirstRoundSpread(t *testing.T) {
	const n = 300 // n × startSpacing is over the interval: the spread is the interval's
	const interval = time.Second
	const slack = 100 * time.Millisecond // scheduling, under -race on a busy machine
	var mu sync.Mutex
	seen := map[string][]time.Time{}
	_, port := httpBackend(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.Path] = append(seen[r.URL.Path], time.Now())
		mu.Unlock()
	})
	targets := make([]Target, n)
	for i := range targets {
		targets[i] = testTarget(TypeHTTP, port, func(c *Config) {
			c.Path = fmt.Sprintf("/%d", i)
			c.Interval = interval
		})
	}
	e := NewEngine(Options{})
	t.Cleanup(e.Close)
	t0 := time.Now()
	e.Subscribe(nil).Sync(targets)
	eventually(t, 5*interval, "two probes of every target", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for i := range n {
			if len(seen[fmt.Sprintf("/%d", i)]) < 2 {
				return false
			}
		}
		return true
	})
	mu.Lock()
	defer mu.Unlock()
	var lastFirst, lastPhase time.Duration
	for i := range n {
		ts := seen[fmt.Sprintf("/%d", i)]
		first, gap := ts[0].Sub(t0), ts[1].Sub(ts[0])
		lastFirst = max(lastFirst, first)
		lastPhase = max(lastPhase, ts[1].Sub(t0)-interval)
		if gap < interval-slack || gap > interval+interval/12+slack {
			t.Errorf("target %d: second probe %v after the first, want %v to %v", i, gap, interval, interval+interval/12)
		}
	}
	if lastFirst > interval*11/12+slack {
		t.Errorf("the last first probe came %v after the start, want within %v", lastFirst, interval*11/12)
	}
	if lastPhase < interval*11/12 {
		t.Errorf("the second probes spread over %v of the %v interval, want the whole", lastPhase, interval)
	}
}

// TestBulkStart declares thousands of targets at once, by Sync and by Hold, which queue them
// in one heap.Init instead of one push each, into maps made to size: the queue must be a heap
// whose entries know their places, and hold every target once.
func TestBulkStart(t *testing.T) {
	port := refusedPort(t)
	c := testTarget(TypeTCP, port, func(c *Config) { c.Interval = time.Hour; c.Timeout = time.Second }).Config
	mk := func(net, n int) []Target { // loopback addresses 127.net.x.y; an hour's interval: few probes
		ts := make([]Target, n)
		for i := range ts {
			ts[i] = NewTarget("c", *c, fmt.Sprintf("127.%d.%d.%d", net, i/250, i%250+1))
		}
		return ts
	}
	e := NewEngine(Options{})
	t.Cleanup(e.Close)
	s1, s2 := e.Subscribe(nil), e.Subscribe(nil)
	s1.Sync(mk(1, 3000))
	s2.Hold(mk(2, 2000))
	s2.Hold(mk(1, 1500)) // held by both: no new entries
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.targets) != 5000 {
		t.Fatalf("%d targets, want 5000", len(e.targets))
	}
	queued := 0
	for i, ent := range e.queue {
		if ent.index != i {
			t.Fatalf("entry at %d says it is at %d", i, ent.index)
		}
		if i > 0 && e.queue.Less(i, (i-1)/2) {
			t.Fatalf("entry %d is due before its parent: not a heap", i)
		}
		queued++
	}
	if probing := len(e.targets) - queued; probing < 0 || probing > e.max {
		t.Errorf("%d queued of %d targets, %d in flight at most", queued, len(e.targets), e.max)
	}
}

// BenchmarkHold declares 100,000 new targets with one Hold, into an engine of its own each
// time, as a server starting on a zone of 20,000 services with a check each and five endpoints
// each does: the five targets of a check share its config.
func BenchmarkHold(b *testing.B) {
	port := refusedPort(b)
	ts := make([]Target, 0, 100_000)
	for i := range 20_000 {
		c := testTarget(TypeHTTP, port, func(c *Config) {
			c.Interval, c.Timeout, c.Path = time.Hour, time.Second, fmt.Sprintf("/s%d", i)
		}).Config
		key := c.Key()
		for j := range 5 {
			ts = append(ts, NewTargetKeyed("c", c, key, fmt.Sprintf("127.%d.%d.%d", i/250, i%250, j+1)))
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		e := NewEngine(Options{})
		s := e.Subscribe(nil)
		b.StartTimer()
		s.Hold(ts)
		b.StopTimer()
		e.Close()
		b.StartTimer()
	}
}
