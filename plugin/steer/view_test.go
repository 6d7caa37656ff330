package steer

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/steerdns/steerdns/healthcheck"
)

const overrideZone = `zone: example.com.
ns: [ns1.example.com.]
records: |
  ns1 A 192.0.2.53
checks:
  web: {type: tcp, port: 80}
services:
  www:
    check: web
    pools:
      - {region: us-east, endpoints: [192.0.2.1, 192.0.2.2]}
      - {region: eu-west, endpoints: [198.51.100.1]}
  api:
    check: web
    pools:
      - {region: us-east, endpoints: [192.0.2.1]}
      - {region: eu-west, endpoints: [198.51.100.1]}
`

func TestOverridePrecedence(t *testing.T) {
	s, h := newTestSteer(t, overrideZone)
	now := time.Now()
	at := func(d time.Duration) time.Time { return now.Add(d) }
	steps := []struct {
		name      string
		overrides []*Override
		www, api  []string
	}{
		{"none", nil, []string{"192.0.2.1", "192.0.2.2"}, []string{"192.0.2.1"}},
		// A pool drain moves www alone, though api lists the same address.
		{"pool", []*Override{{ID: "p", Scope: ScopePool, Action: ActionDrain, Zone: "example.com.", Service: "www", Region: "us-east", Created: at(0)}},
			[]string{"198.51.100.1"}, []string{"192.0.2.1"}},
		// A region drain covers every pool of the region.
		{"region", []*Override{{ID: "r", Scope: ScopeRegion, Action: ActionDrain, Region: "us-east", Created: at(0)}},
			[]string{"198.51.100.1"}, []string{"198.51.100.1"}},
		// An endpoint force-up beats the region drain; the endpoint's other pool-mate stays drained.
		{"endpoint beats region", []*Override{
			{ID: "r", Scope: ScopeRegion, Action: ActionDrain, Region: "us-east", Created: at(0)},
			{ID: "e", Scope: ScopeEndpoint, Action: ActionForceUp, Address: "192.0.2.1", Created: at(-time.Hour)},
		}, []string{"192.0.2.1"}, []string{"192.0.2.1"}},
		// A pool force-up beats a region drain, whatever their age.
		{"pool beats region", []*Override{
			{ID: "r", Scope: ScopeRegion, Action: ActionDrain, Region: "us-east", Created: at(0)},
			{ID: "p", Scope: ScopePool, Action: ActionForceUp, Zone: "example.com.", Service: "api", Region: "us-east", Created: at(-time.Hour)},
		}, []string{"198.51.100.1"}, []string{"192.0.2.1"}},
		// At one scope the newest wins.
		{"newest at one scope", []*Override{
			{ID: "old", Scope: ScopeRegion, Action: ActionForceUp, Region: "us-east", Created: at(-time.Hour)},
			{ID: "new", Scope: ScopeRegion, Action: ActionDrain, Region: "us-east", Created: at(0)},
		}, []string{"198.51.100.1"}, []string{"198.51.100.1"}},
		// An expired override covers nothing.
		{"expired", []*Override{{ID: "x", Scope: ScopeRegion, Action: ActionDrain, Region: "us-east", Created: at(-time.Hour), Expires: at(-time.Minute)}},
			[]string{"192.0.2.1", "192.0.2.2"}, []string{"192.0.2.1"}},
	}
	for _, st := range steps {
		s.SetOverrides(st.overrides)
		if got := addrs(ask(t, s, "www.example.com.", dns.TypeA, "")); !slices.Equal(got, st.www) {
			t.Errorf("%s: www %v, want %v", st.name, got, st.www)
		}
		if got := addrs(ask(t, s, "api.example.com.", dns.TypeA, "")); !slices.Equal(got, st.api) {
			t.Errorf("%s: api %v, want %v", st.name, got, st.api)
		}
	}

	// A force-up wins over the probes; a drain over an up endpoint.
	h.set(t, healthcheck.Down, "192.0.2.1", "192.0.2.2")
	s.SetOverrides([]*Override{{ID: "f", Scope: ScopeEndpoint, Action: ActionForceUp, Address: "192.0.2.2", Created: now}})
	if got := addrs(ask(t, s, "www.example.com.", dns.TypeA, "")); !slices.Equal(got, []string{"192.0.2.2"}) {
		t.Errorf("force-up of a down endpoint: www %v", got)
	}
	if v := s.View(); len(v.Overrides()) != 1 || v.Overrides()[0].ID != "f" {
		t.Errorf("overrides listed: %v", v.Overrides())
	}

	// An override that expires stops covering on time, without another step.
	s.SetOverrides([]*Override{{ID: "t", Scope: ScopeRegion, Action: ActionDrain, Region: "eu-west", Created: now, Expires: time.Now().Add(100 * time.Millisecond)}})
	h.set(t, healthcheck.Up, "192.0.2.1", "192.0.2.2")
	if got := addrs(ask(t, s, "api.example.com.", dns.TypeA, "")); !slices.Equal(got, []string{"192.0.2.1"}) {
		t.Fatalf("api %v", got)
	}
	h.set(t, healthcheck.Down, "192.0.2.1")
	if got := addrs(ask(t, s, "api.example.com.", dns.TypeA, "")); !slices.Equal(got, []string{"192.0.2.1"}) {
		t.Errorf("api with us-east down and eu-west drained: %v, want fail-open 192.0.2.1", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(s.View().Overrides()) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the override did not expire")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := addrs(ask(t, s, "api.example.com.", dns.TypeA, "")); !slices.Equal(got, []string{"198.51.100.1"}) {
		t.Errorf("api after the drain expired: %v", got)
	}
}

// TestViewImmutable: a change makes a new view; one taken before it does not move.
func TestViewImmutable(t *testing.T) {
	s, h := newTestSteer(t, overrideZone)
	before := s.View()
	z := s.Set().Zone("example.com.")
	hb := zoneHealth{v: before, slots: s.snap.Load().zones[z].slots}
	p := z.Service("www.example.com.").Pools[0]
	h.set(t, healthcheck.Down, "192.0.2.1")
	after := s.View()
	ha := zoneHealth{v: after, slots: hb.slots}
	if after.Version <= before.Version {
		t.Errorf("version %d after %d", after.Version, before.Version)
	}
	if hb.state(p, p.Endpoints[0]) != StateUnknown || ha.state(p, p.Endpoints[0]) != StateDown {
		t.Errorf("before %v, after %v", hb.state(p, p.Endpoints[0]), ha.state(p, p.Endpoints[0]))
	}
	th := after.Target(hb.slots[p.Endpoints[0].Target])
	if th == nil || th.Own.State != healthcheck.Down || th.Own.Since.IsZero() {
		t.Errorf("target health %+v", th)
	}
	// The cluster's verdict, when there is one, comes before this node's own.
	th2 := *th
	th2.Cluster = StateUp
	if th2.State() != StateUp || th.State() != StateDown {
		t.Errorf("cluster verdict: %v, own %v", th2.State(), th.State())
	}
}

// TestSharedTargetHealth: new targets that start alike share one TargetHealth; one that starts
// otherwise has its own, and a change to one target leaves the others as they were.
func TestSharedTargetHealth(t *testing.T) {
	p := filepath.Join(t.TempDir(), "zone.yaml")
	if err := os.WriteFile(p, []byte(overrideZone), 0o644); err != nil {
		t.Fatal(err)
	}
	s := New(Config{Paths: []string{p}})
	h := newDriven()
	h.byAddr["198.51.100.1"] = healthcheck.Down // known down at once
	if err := s.Provision(h.source); err != nil {
		t.Fatal(err)
	}
	if err := s.OnStartup(); err != nil {
		t.Fatal(err)
	}
	defer s.OnShutdown()
	z := s.Set().Zone("example.com.")
	slots := s.snap.Load().zones[z].slots
	health := func(addr string) *TargetHealth {
		for i, tg := range z.Targets {
			if tg.Address == addr {
				return s.View().Target(slots[i])
			}
		}
		t.Fatalf("no target at %s", addr)
		return nil
	}
	a, b, c := health("192.0.2.1"), health("192.0.2.2"), health("198.51.100.1")
	if a == nil || a != b || a.Own.State != healthcheck.Unknown {
		t.Errorf("192.0.2.1 and 192.0.2.2, both unknown, have %p %+v and %p %+v", a, a, b, b)
	}
	if c == a || c.Own.State != healthcheck.Down {
		t.Errorf("198.51.100.1, down, has %p %+v", c, c)
	}
	h.set(t, healthcheck.Up, "192.0.2.1")
	if got := health("192.0.2.1"); got.Own.State != healthcheck.Up {
		t.Errorf("192.0.2.1 after its change: %+v", got)
	}
	if got := health("192.0.2.2"); got != b || got.Own.State != healthcheck.Unknown {
		t.Errorf("192.0.2.2 after another target's change: %+v", got)
	}
}

// TestPagedEdit: an edit copies the nodes it writes and leaves the original as it was.
func TestPagedEdit(t *testing.T) {
	var p paged[int]
	e := pagedEdit[int]{p: p}
	for i := range int32(3 * fan * fan) {
		e.set(i, int(i))
	}
	p = e.p
	e2 := pagedEdit[int]{p: p}
	e2.set(fan*fan+5, -1)
	e2.set(fan*fan+6, -2)
	q := e2.p
	if p.at(fan*fan+5) != fan*fan+5 || q.at(fan*fan+5) != -1 || q.at(fan*fan+6) != -2 || q.at(7) != 7 || q.at(2*fan*fan+9) != 2*fan*fan+9 {
		t.Errorf("p %d, q %d %d %d", p.at(fan*fan+5), q.at(fan*fan+5), q.at(fan*fan+6), q.at(7))
	}
	if p.root == q.root || p.root[0] != q.root[0] || p.root[1] == q.root[1] || p.root[1][1] != q.root[1][1] || p.root[1][0] == q.root[1][0] {
		t.Error("an untouched node was copied, or a touched one shared")
	}
	if q.at(10*fan*fan) != 0 || q.at(maxSlots) != 0 {
		t.Error("a slot past the end is not the zero value")
	}
}

const flipZone = `zone: example.com.
ns: [ns1.example.com.]
records: |
  ns1 A 192.0.2.53
checks:
  web: {type: tcp, port: 80}
services:
  fo:
    check: web
    ttl: 30
    degraded_ttl: 10
    pools:
      - {region: a, endpoints: [192.0.2.1, 192.0.2.2]}
      - {region: b, endpoints: [192.0.2.11, 192.0.2.12]}
      - {region: c, endpoints: [192.0.2.21, 192.0.2.22]}
  mv:
    policy: multivalue
    check: web
    min_healthy: 2
    pools:
      - {region: a, endpoints: [192.0.2.1, 192.0.2.2]}
      - {region: b, endpoints: [192.0.2.11, 192.0.2.12]}
`

// TestConsistentAnswers flips targets without pause while many goroutines query: every answer
// must be one view's answer. A failover answer comes from one pool, is never empty (when all
// are down it fails open), and carries the primary TTL only with the first pool's addresses;
// a multivalue answer lists both endpoints of a pool or neither (min_healthy 2: a pool with one
// endpoint up is left out whole, and failing open lists both).
func TestConsistentAnswers(t *testing.T) {
	s, h := newTestSteer(t, flipZone)
	s.randN = func(n int) int { return 0 } // the seeded source is not safe for many goroutines
	pools := [][]string{{"192.0.2.1", "192.0.2.2"}, {"192.0.2.11", "192.0.2.12"}, {"192.0.2.21", "192.0.2.22"}}
	all := slices.Concat(pools...)
	poolOf := map[string]int{}
	for i, p := range pools {
		for _, a := range p {
			poolOf[a] = i
		}
	}
	var stop atomic.Bool
	var flips atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r := rand.New(rand.NewPCG(3, 4))
		for !stop.Load() {
			st := healthcheck.Up
			if r.IntN(2) == 0 {
				st = healthcheck.Down
			}
			h.set(t, st, all[r.IntN(len(all))])
			flips.Add(1)
		}
	}()
	var queries atomic.Int64
	errs := make(chan string, 16)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				queries.Add(1)
				r := ask(t, s, "fo.example.com.", dns.TypeA, "")
				got := addrs(r)
				if len(got) == 0 {
					errs <- "failover: empty answer"
					return
				}
				p := poolOf[got[0]]
				for _, a := range got {
					if poolOf[a] != p {
						errs <- "failover: addresses of two pools: " + a + " and " + got[0]
						return
					}
				}
				if p != 0 && ttlOf(r) == 30 {
					errs <- "failover: the primary TTL with a later pool's addresses"
					return
				}
				mv := addrs(ask(t, s, "mv.example.com.", dns.TypeA, ""))
				count := map[int]int{}
				for _, a := range mv {
					count[poolOf[a]]++
				}
				for p, n := range count {
					if n != 2 {
						errs <- "multivalue: part of a pool that is not healthy: " + pools[p][0]
						return
					}
				}
			}
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for (flips.Load() < 20000 || queries.Load() < 20000) && time.Now().Before(deadline) && len(errs) == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if flips.Load() < 1000 || queries.Load() < 1000 {
		t.Errorf("only %d flips and %d queries ran", flips.Load(), queries.Load())
	}
}
