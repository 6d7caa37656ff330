package steer

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/miekg/dns"
	"github.com/steerdns/steerdns/healthcheck"
)

const policyZone = `zone: example.com.
ns: [ns1.example.com.]
soa: {minttl: 60}
records: |
  ns1 A 192.0.2.53
checks:
  web: {type: tcp, port: 80}
services:
  fo:
    policy: failover
    check: web
    ttl: 30
    degraded_ttl: 10
    pools:
      - region: a
        endpoints: [192.0.2.1, 192.0.2.2, 2001:db8::1]
      - region: b
        endpoints: [192.0.2.11]
      - region: c
        endpoints: [192.0.2.21]
  minh:
    policy: failover
    check: web
    min_healthy: 2
    pools:
      - region: a
        endpoints: [192.0.2.31, 192.0.2.32, 192.0.2.33]
      - region: b
        endpoints: [192.0.2.41, 192.0.2.42]
  pct:
    check: web
    min_healthy: "50%"
    pools:
      - endpoints: [192.0.2.51, 192.0.2.52, 192.0.2.53, 192.0.2.54]
      - endpoints: [192.0.2.61]
  w:
    policy: weighted
    check: web
    pools:
      - {region: a, weight: 3, endpoints: [192.0.2.71]}
      - {region: b, weight: 1, endpoints: [192.0.2.81]}
  sticky:
    policy: weighted
    sticky: true
    check: web
    pools:
      - {region: a, weight: 1, endpoints: [192.0.2.91]}
      - {region: b, weight: 1, endpoints: [192.0.2.92]}
      - {region: c, weight: 1, endpoints: [192.0.2.93]}
  mv:
    policy: multivalue
    check: web
    max_answers: 3
    pools:
      - endpoints: [192.0.2.101, 192.0.2.102]
      - endpoints: [192.0.2.103, 192.0.2.104]
  mvone:
    policy: multivalue
    max_answers: 2
    pools:
      - endpoints: [192.0.2.161, 192.0.2.162, 192.0.2.163]
  mvall:
    policy: multivalue
    check: web
    pools:
      - endpoints: [192.0.2.111, 192.0.2.112]
  down-all:
    check: web
    when_all_down: all
    pools:
      - endpoints: [192.0.2.121]
      - endpoints: [192.0.2.122]
  down-nodata:
    check: web
    when_all_down: nodata
    pools:
      - endpoints: [192.0.2.131]
  down-servfail:
    check: web
    when_all_down: servfail
    pools:
      - endpoints: [192.0.2.141]
  down-fallback:
    check: web
    when_all_down: fallback
    fallback: [192.0.2.250, 2001:db8::250]
    pools:
      - endpoints: [192.0.2.151]
`

func TestFailover(t *testing.T) {
	s, h := newTestSteer(t, policyZone)
	steps := []struct {
		down []string
		up   []string
		want []string
		ttl  uint32
	}{
		{nil, nil, []string{"192.0.2.1", "192.0.2.2"}, 30},
		{[]string{"192.0.2.1"}, nil, []string{"192.0.2.2"}, 30},
		{[]string{"192.0.2.2", "2001:db8::1"}, nil, []string{"192.0.2.11"}, 10},
		{[]string{"192.0.2.11"}, nil, []string{"192.0.2.21"}, 10},
		{nil, []string{"192.0.2.11"}, []string{"192.0.2.11"}, 10},
		{nil, []string{"192.0.2.1"}, []string{"192.0.2.1"}, 30},
	}
	for i, st := range steps {
		if len(st.down) > 0 {
			h.set(t, healthcheck.Down, st.down...)
		}
		if len(st.up) > 0 {
			h.set(t, healthcheck.Up, st.up...)
		}
		r := ask(t, s, "fo.example.com.", dns.TypeA, "")
		if got := addrs(r); !slices.Equal(got, st.want) || ttlOf(r) != st.ttl {
			t.Errorf("step %d: got %v ttl %d, want %v ttl %d", i, got, ttlOf(r), st.want, st.ttl)
		}
	}
}

func TestFamiliesAndOtherTypes(t *testing.T) {
	s, _ := newTestSteer(t, policyZone)
	if got := addrs(ask(t, s, "fo.example.com.", dns.TypeAAAA, "")); !slices.Equal(got, []string{"2001:db8::1"}) {
		t.Errorf("AAAA: %v", got)
	}
	r := ask(t, s, "fo.example.com.", dns.TypeTXT, "")
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 || len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA || r.Ns[0].Header().Ttl != 60 {
		t.Errorf("TXT at a service: want NODATA with the SOA (TTL 60), got %v", r)
	}
	if !r.Authoritative {
		t.Error("AA not set")
	}
	// A service with only IPv4 endpoints in the chosen pool: AAAA is NODATA.
	if r := ask(t, s, "w.example.com.", dns.TypeAAAA, ""); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 {
		t.Errorf("AAAA at v4-only service: %v", r)
	}
}

func TestMinHealthy(t *testing.T) {
	s, h := newTestSteer(t, policyZone)
	h.set(t, healthcheck.Down, "192.0.2.31")
	if got := addrs(ask(t, s, "minh.example.com.", dns.TypeA, "")); !slices.Equal(got, []string{"192.0.2.32", "192.0.2.33"}) {
		t.Errorf("2 of 3 up, min 2: got %v", got)
	}
	h.set(t, healthcheck.Down, "192.0.2.32")
	if got := addrs(ask(t, s, "minh.example.com.", dns.TypeA, "")); !slices.Equal(got, []string{"192.0.2.41", "192.0.2.42"}) {
		t.Errorf("1 of 3 up, min 2: got %v", got)
	}
	// 50% of 4 is 2.
	h.set(t, healthcheck.Down, "192.0.2.51", "192.0.2.52")
	if got := addrs(ask(t, s, "pct.example.com.", dns.TypeA, "")); !slices.Equal(got, []string{"192.0.2.53", "192.0.2.54"}) {
		t.Errorf("2 of 4 up, 50%%: got %v", got)
	}
	h.set(t, healthcheck.Down, "192.0.2.53")
	if got := addrs(ask(t, s, "pct.example.com.", dns.TypeA, "")); !slices.Equal(got, []string{"192.0.2.61"}) {
		t.Errorf("1 of 4 up, 50%%: got %v", got)
	}
}

func TestWeightedDistribution(t *testing.T) {
	s, h := newTestSteer(t, policyZone)
	const n = 20000
	count := map[string]int{}
	for range n {
		r := ask(t, s, "w.example.com.", dns.TypeA, "")
		count[addrs(r)[0]]++
		if ttlOf(r) != 30 {
			t.Fatalf("all healthy: ttl %d, want 30", ttlOf(r))
		}
	}
	// Weights 3:1: expect 75% +- 5 standard deviations.
	p := float64(count["192.0.2.71"]) / n
	if sd := math.Sqrt(0.75 * 0.25 / n); math.Abs(p-0.75) > 5*sd {
		t.Errorf("weight 3 of 4 got share %.4f, want 0.75", p)
	}
	h.set(t, healthcheck.Down, "192.0.2.71")
	for range 100 {
		r := ask(t, s, "w.example.com.", dns.TypeA, "")
		if got := addrs(r); !slices.Equal(got, []string{"192.0.2.81"}) || ttlOf(r) != 10 {
			t.Fatalf("pool a down: got %v ttl %d", got, ttlOf(r))
		}
	}
}

func TestStickyMovesOnlyClientsOfFailedPool(t *testing.T) {
	s, h := newTestSteer(t, policyZone)
	const clients = 3000
	before := make([]string, clients)
	share := map[string]int{}
	for i := range clients {
		src := fmt.Sprintf("10.%d.%d.7", i/256, i%256)
		a := addrs(ask(t, s, "sticky.example.com.", dns.TypeA, src))[0]
		// The same subnet always gets the same pool.
		if b := addrs(ask(t, s, "sticky.example.com.", dns.TypeA, fmt.Sprintf("10.%d.%d.200", i/256, i%256)))[0]; a != b {
			t.Fatalf("client subnet %s: %s then %s", src, a, b)
		}
		before[i] = a
		share[a]++
	}
	for addr, c := range share {
		if c < clients/3-200 || c > clients/3+200 {
			t.Errorf("pool %s got %d of %d subnets; want about a third", addr, c, clients)
		}
	}
	h.set(t, healthcheck.Down, "192.0.2.92")
	moved := 0
	for i := range clients {
		src := fmt.Sprintf("10.%d.%d.7", i/256, i%256)
		r := ask(t, s, "sticky.example.com.", dns.TypeA, src)
		a := addrs(r)[0]
		switch {
		case before[i] == "192.0.2.92":
			if a == "192.0.2.92" {
				t.Fatal("answered the failed pool")
			}
			if ttlOf(r) != 10 {
				t.Errorf("moved client: ttl %d, want degraded 10", ttlOf(r))
			}
			moved++
		case a != before[i]:
			t.Fatalf("client %s of a healthy pool moved from %s to %s", src, before[i], a)
		case ttlOf(r) != 30:
			t.Errorf("unmoved client: ttl %d, want 30", ttlOf(r))
		}
	}
	if moved != share["192.0.2.92"] {
		t.Errorf("moved %d, want %d", moved, share["192.0.2.92"])
	}
}

func TestMultivalue(t *testing.T) {
	s, h := newTestSteer(t, policyZone)
	seen := map[string]bool{}
	for range 200 {
		r := ask(t, s, "mv.example.com.", dns.TypeA, "")
		got := addrs(r)
		if len(got) != 3 {
			t.Fatalf("max_answers 3: got %v", got)
		}
		for _, a := range got {
			seen[a] = true
		}
	}
	if len(seen) != 4 {
		t.Errorf("every endpoint should appear across answers; saw %v", seen)
	}
	h.set(t, healthcheck.Down, "192.0.2.101", "192.0.2.103")
	r := ask(t, s, "mv.example.com.", dns.TypeA, "")
	got := addrs(r)
	slices.Sort(got)
	if !slices.Equal(got, []string{"192.0.2.102", "192.0.2.104"}) || ttlOf(r) != 10 {
		t.Errorf("two down: got %v ttl %d", got, ttlOf(r))
	}
	// One pool trimmed by max_answers: the prepared answer of the zone must stay intact, so
	// every answer holds two different endpoints of the three.
	for range 100 {
		got := addrs(ask(t, s, "mvone.example.com.", dns.TypeA, ""))
		if len(got) != 2 || got[0] == got[1] {
			t.Fatalf("max_answers 2 of 3: got %v", got)
		}
	}
	// Default max_answers of multivalue is 8; both endpoints fit.
	if got := addrs(ask(t, s, "mvall.example.com.", dns.TypeA, "")); !slices.Equal(got, []string{"192.0.2.111", "192.0.2.112"}) {
		t.Errorf("mvall: %v", got)
	}
}

func TestWhenAllDown(t *testing.T) {
	s, h := newTestSteer(t, policyZone)
	h.set(t, healthcheck.Down, "192.0.2.121", "192.0.2.122", "192.0.2.131", "192.0.2.141", "192.0.2.151")

	r := ask(t, s, "down-all.example.com.", dns.TypeA, "")
	if got := addrs(r); !slices.Equal(got, []string{"192.0.2.121"}) || ttlOf(r) != 10 {
		t.Errorf("all: fail open to the first pool with degraded TTL; got %v ttl %d", got, ttlOf(r))
	}
	r = ask(t, s, "down-nodata.example.com.", dns.TypeA, "")
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 || len(r.Ns) != 1 || r.Ns[0].Header().Ttl != 10 {
		t.Errorf("nodata: want NOERROR, no answer, SOA with TTL min(60, degraded 10); got %v", r)
	}
	if r = ask(t, s, "down-servfail.example.com.", dns.TypeA, ""); r.Rcode != dns.RcodeServerFailure {
		t.Errorf("servfail: got %s", dns.RcodeToString[r.Rcode])
	}
	r = ask(t, s, "down-fallback.example.com.", dns.TypeA, "")
	if got := addrs(r); !slices.Equal(got, []string{"192.0.2.250"}) || ttlOf(r) != 10 {
		t.Errorf("fallback A: got %v ttl %d", got, ttlOf(r))
	}
	if got := addrs(ask(t, s, "down-fallback.example.com.", dns.TypeAAAA, "")); !slices.Equal(got, []string{"2001:db8::250"}) {
		t.Errorf("fallback AAAA: got %v", got)
	}
	// Recovery returns to the first choice with the primary TTL.
	h.set(t, healthcheck.Up, "192.0.2.151")
	r = ask(t, s, "down-fallback.example.com.", dns.TypeA, "")
	if got := addrs(r); !slices.Equal(got, []string{"192.0.2.151"}) || ttlOf(r) != 30 {
		t.Errorf("recovered: got %v ttl %d", got, ttlOf(r))
	}
}

func TestUnknownCountsAsUp(t *testing.T) {
	s, h := newTestSteer(t, policyZone)
	if got := addrs(ask(t, s, "fo.example.com.", dns.TypeA, "")); !slices.Equal(got, []string{"192.0.2.1", "192.0.2.2"}) {
		t.Errorf("cold start: %v", got)
	}
	h.set(t, healthcheck.Unknown, "192.0.2.1")
	if got := addrs(ask(t, s, "fo.example.com.", dns.TypeA, "")); !slices.Equal(got, []string{"192.0.2.1", "192.0.2.2"}) {
		t.Errorf("unknown: %v", got)
	}
}

func TestAnswersCounted(t *testing.T) {
	s, h := newTestSteer(t, policyZone)
	ctr := answersTotal.WithLabelValues("example.com.", "fo", "failover")
	before := counterValue(t, ctr)
	h.set(t, healthcheck.Down, "192.0.2.1", "192.0.2.2", "2001:db8::1")
	ask(t, s, "fo.example.com.", dns.TypeA, "")
	ask(t, s, "fo.example.com.", dns.TypeA, "")
	if got := counterValue(t, ctr) - before; got != 2 {
		t.Errorf("failover answers counted %v, want 2", got)
	}
}
