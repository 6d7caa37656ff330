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
