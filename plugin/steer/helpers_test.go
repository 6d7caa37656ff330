package steer

import (
	"context"
	"math/rand/v2"
	"net/netip"

	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"
	"github.com/steerdns/steerdns/healthcheck"
	"github.com/steerdns/steerdns/zones"
)

// drivenHealth is a Health whose states the test sets by endpoint address: each set is
// delivered as the engine delivers a change, before set returns.
type drivenHealth struct {
	mu       sync.Mutex
	byAddr   map[string]healthcheck.State
	targets  map[string]healthcheck.Target // by key: what the plugin holds now
	onChange func(healthcheck.Change)
	ready    bool
}

func newDriven() *drivenHealth {
	return &drivenHealth{byAddr: map[string]healthcheck.State{}, targets: map[string]healthcheck.Target{}, ready: true}
}

func (d *drivenHealth) source(onChange func(healthcheck.Change)) Health {
	d.onChange = onChange
	return d
}

func (d *drivenHealth) Hold(ts []healthcheck.Target) []*healthcheck.Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]*healthcheck.Status, len(ts))
	cells := map[healthcheck.State]*healthcheck.Status{} // targets in one state share a cell
	for i, t := range ts {
		d.targets[t.Key] = t
		st := d.byAddr[t.Address]
		if cells[st] == nil {
			cells[st] = healthcheck.NewStatus(st)
		}
		out[i] = cells[st]
	}
	return out
}

func (d *drivenHealth) Release(keys []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, k := range keys {
		delete(d.targets, k)
	}
}

func (d *drivenHealth) Live(key string) (healthcheck.Observation, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, ok := d.targets[key]
	if !ok {
		return healthcheck.Observation{}, false
	}
	return healthcheck.Observation{State: d.byAddr[t.Address]}, true
}

func (d *drivenHealth) Ready() bool { return d.ready }
func (d *drivenHealth) Close()      {}

// set changes the state of the endpoints at addrs.
func (d *drivenHealth) set(t testing.TB, s healthcheck.State, addrs ...string) {
	t.Helper()
	d.mu.Lock()
	var changes []healthcheck.Change
	for _, a := range addrs {
		found := false
		for _, tg := range d.targets {
			if tg.Address == a {
				found = true
				changes = append(changes, healthcheck.Change{Target: tg, From: d.byAddr[a], To: s, At: time.Now()})
			}
		}
		if !found {
			d.mu.Unlock()
			t.Fatalf("no checked endpoint at %s", a)
		}
		d.byAddr[a] = s
	}
	d.mu.Unlock()
	for _, c := range changes {
		d.onChange(c)
	}
}

// newTestSteer serves policy (one file) with driven health and a seeded random source.
func newTestSteer(t testing.TB, policy string) (*Steer, *drivenHealth) {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "zone.yaml")
	if err := os.WriteFile(p, []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	s := New(Config{Paths: []string{p}})
	r := rand.New(rand.NewPCG(1, 2))
	s.randN = r.IntN
	h := newDriven()
	if err := s.Provision(h.source); err != nil {
		t.Fatal(err)
	}
	if err := s.OnStartup(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.OnShutdown() })
	return s, h
}

// ask runs one question through ServeDNS from client address src and returns the reply.
func ask(t testing.TB, s *Steer, name string, qtype uint16, src string) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	w := &test.ResponseWriter{RemoteIP: src}
	if src == "" {
		w = &test.ResponseWriter{}
	}
	rec := dnstest.NewRecorder(w)
	rcode, err := s.ServeDNS(context.Background(), rec, m)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if rec.Msg == nil {
		r := new(dns.Msg)
		r.SetRcode(m, rcode)
		return r
	}
	return rec.Msg
}

func addrs(r *dns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		switch x := rr.(type) {
		case *dns.A:
			out = append(out, x.A.String())
		case *dns.AAAA:
			out = append(out, x.AAAA.String())
		case *dns.CNAME:
			out = append(out, x.Target)
		}
	}
	return out
}

func ttlOf(r *dns.Msg) uint32 {
	if len(r.Answer) == 0 {
		return 0
	}
	return r.Answer[0].Header().Ttl
}

// testQuery is the query value ServeDNS would make for a question to z from client, on the
// view served now.
func testQuery(s *Steer, z *zones.Zone, from netip.Addr) *query {
	sn := s.snap.Load()
	zs := sn.zones[z]
	return &query{zone: z, served: zs, health: zoneHealth{v: sn.view, slots: zs.slots}, randN: s.randN,
		client: client{prefix: netip.PrefixFrom(from, from.BitLen()), found: true}}
}
