package steer

import (
	"context"
	"math/rand/v2"

	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"
	"github.com/steerdns/steerdns/healthcheck"
)

// drivenHealth is a Health whose states the test sets by endpoint address.
type drivenHealth struct {
	mu     sync.Mutex
	byAddr map[string]*healthcheck.Status
	ready  bool
}

func newDriven() *drivenHealth {
	return &drivenHealth{byAddr: map[string]*healthcheck.Status{}, ready: true}
}

func (d *drivenHealth) source(func(Transition)) Health { return d }

func (d *drivenHealth) Sync(ts []healthcheck.Target) []*healthcheck.Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]*healthcheck.Status, len(ts))
	for i, t := range ts {
		st := d.byAddr[t.Address]
		if st == nil {
			st = healthcheck.NewStatus(healthcheck.Unknown)
			d.byAddr[t.Address] = st
		}
		out[i] = st
	}
	return out
}

func (d *drivenHealth) Ready() bool { return d.ready }
func (d *drivenHealth) Close()      {}

// set changes the state of the endpoints at addrs.
func (d *drivenHealth) set(t testing.TB, s healthcheck.State, addrs ...string) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, a := range addrs {
		st := d.byAddr[a]
		if st == nil {
			t.Fatalf("no checked endpoint at %s", a)
		}
		st.Set(s)
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

// query runs one question through ServeDNS from client address src and returns the reply.
func query(t testing.TB, s *Steer, name string, qtype uint16, src string) *dns.Msg {
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
