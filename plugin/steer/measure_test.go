package steer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/steerdns/steerdns/healthcheck"
	"github.com/steerdns/steerdns/plugin/steer/admin"
)

// TestMeasureOperations reports the cost of the operations parts at scale (STEER_MEASURE=1):
// /v1/status at 10,000 endpoints (time to build and encode, size), and state_dir at 100,000
// services (500,000 targets): the size of the files and the time to load them.
//
//	STEER_MEASURE=1 go test -run TestMeasureOperations -v ./plugin/steer
func TestMeasureOperations(t *testing.T) {
	if os.Getenv("STEER_MEASURE") != "1" {
		t.Skip("set STEER_MEASURE=1 to measure")
	}
	t.Run("status at 10,000 endpoints", func(t *testing.T) {
		s, h := newTestSteer(t, flipPolicy(2000))
		h.set(t, healthcheck.Down, "10.0.0.1", "10.0.0.2")
		for _, f := range []admin.Filter{{}, {State: "down"}, {Service: "s7"}} {
			var size int
			const n = 20
			start := time.Now()
			for range n {
				b, err := json.MarshalIndent(s.Status(f), "", "  ")
				if err != nil {
					t.Fatal(err)
				}
				size = len(b)
			}
			t.Logf("status %+v: %v per call (build + encode), %d bytes", f, time.Since(start)/n, size)
		}
	})
	t.Run("state_dir at 100,000 services", func(t *testing.T) {
		s, _ := newTestSteer(t, flipPolicy(100_000))
		dir := t.TempDir()
		s.state = &stateDir{path: dir, dirty: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
		// Every target observed (a third down), 1,000 transitions of history.
		for i := range historySize {
			s.history.add(admin.Transition{Time: time.Now(), Endpoint: fmt.Sprintf("10.0.%d.%d", i/256, i%256), Check: "web", From: "up", To: "down", Reason: "timeout", Node: s.node, Zones: []string{"example.com."}})
		}
		s.pub.Lock()
		e := s.snap.Load().view.edit()
		for slot := range s.slots.targets {
			st := healthcheck.Up
			if slot%3 == 0 {
				st = healthcheck.Down
			}
			e.set(int32(slot), &TargetHealth{Own: healthcheck.Observation{State: st, Since: time.Now(), Reason: "timeout"}})
		}
		next := *s.snap.Load()
		next.view = e.done()
		s.snap.Store(&next)
		s.pub.Unlock()
		for range 5 {
			s.AddOverride(admin.OverrideRequest{Target: "region:a", Action: "drain", TTL: "1h", Reason: "measure", By: "test"})
		}
		start := time.Now()
		s.saveHealth()
		saved := time.Since(start)
		for _, f := range []string{overridesFile, targetsFile, historyFile} {
			fi, err := os.Stat(filepath.Join(dir, f))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %.1f MB", f, float64(fi.Size())/1e6)
		}
		fresh := New(Config{Paths: s.cfg.Paths, StateDir: dir})
		fresh.state = &stateDir{path: dir}
		start = time.Now()
		fresh.loadState()
		t.Logf("saving targets and history: %v; loading the three files: %v (%d target states, %d overrides, %d transitions)",
			saved, time.Since(start), len(fresh.restored), len(fresh.overrides), len(fresh.history.buf))
	})
}
