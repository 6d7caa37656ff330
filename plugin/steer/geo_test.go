package steer

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/coredns/coredns/plugin/metadata"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"
	"github.com/steerdns/steerdns/healthcheck"
)

const geoZone = `zone: example.com.
ns: [ns1.example.com.]
records: |
  ns1 A 192.0.2.53
  static A 192.0.2.80
checks:
  web: {type: tcp, port: 80}
regions:
  us-east: {continent: NA, countries: [US, CA], location: [38.9, -77.0], fallback: [us-west, eu-west]}
  us-west: {continent: NA, location: [37.4, -122.1], fallback: [us-east]}
  eu-west: {continent: EU, countries: [IE, GB, FR, DE], location: [53.3, -6.3], fallback: [eu-central, us-east]}
  eu-central: {continent: EU, location: [50.1, 8.7], fallback: [eu-west]}
  ap-south: {continent: AS, location: [19.1, 72.9], fallback: [eu-central]}
networks:
  192.0.2.0/24: us-west
  198.51.100.0/24: eu-west
  198.51.100.128/25: eu-central
  203.0.113.0/24: ap-south
  2001:db8:e0::/48: eu-central
services:
  geo:
    policy: geo
    check: web
    ttl: 60
    degraded_ttl: 5
    pools:
      - {region: us-east, endpoints: [10.0.1.1, "2001:db8:1::1"]}
      - {region: us-west, endpoints: [10.0.2.1]}
      - {region: eu-west, endpoints: [10.0.3.1]}
      - {region: eu-central, endpoints: [10.0.4.1, "2001:db8:4::1"]}
  near:
    policy: nearest
    check: web
    ttl: 60
    degraded_ttl: 5
    pools:
      - {region: us-east, endpoints: [10.1.1.1]}
      - {region: us-west, endpoints: [10.1.2.1]}
      - {region: eu-west, endpoints: [10.1.3.1]}
      - {region: eu-central, endpoints: [10.1.4.1]}
  fo:
    check: web
    pools:
      - {region: us-east, endpoints: [10.2.1.1]}
      - {region: eu-west, endpoints: [10.2.3.1]}
  sticky:
    policy: weighted
    sticky: true
    check: web
    pools:
      - {region: us-east, endpoints: [10.3.1.1]}
      - {region: us-west, endpoints: [10.3.2.1]}
      - {region: eu-west, endpoints: [10.3.3.1]}
      - {region: eu-central, endpoints: [10.3.4.1]}
  trickle:
    policy: multivalue
    max_answers: 1
    pools:
      - endpoints:
          - {address: 10.4.0.1, weight: 9}
          - {address: 10.4.0.2, weight: 1}
`

// geoAsk sends name/qtype from source src with an ECS option for ecs ("" = none), with the
// geoip metadata of md (country, continent, latitude, longitude; nil = no geoip).
func geoAsk(t testing.TB, s *Steer, name string, qtype uint16, src, ecs string, md map[string]string) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	if ecs != "" {
		p := netip.MustParsePrefix(ecs)
		m.SetEdns0(1232, false)
		fam := uint16(1)
		if p.Addr().Is6() {
			fam = 2
		}
		m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: fam, SourceNetmask: uint8(p.Bits()), Address: p.Addr().AsSlice()})
	}
	ctx := context.Background()
	if md != nil {
		ctx = metadata.ContextWithMetadata(ctx)
		for k, v := range md {
			metadata.SetValueFunc(ctx, "geoip/"+k, func() string { return v })
		}
	}
	rec := dnstest.NewRecorder(&test.ResponseWriter{RemoteIP: src})
	rcode, err := s.ServeDNS(ctx, rec, m)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Msg == nil {
		r := new(dns.Msg)
		r.SetRcode(m, rcode)
		return r
	}
	return rec.Msg
}

// scopeOf returns the ECS scope of r, or -1 when r carries no ECS.
func scopeOf(r *dns.Msg) int {
	if o := r.IsEdns0(); o != nil {
		for _, e := range o.Option {
			if s, ok := e.(*dns.EDNS0_SUBNET); ok {
				return int(s.SourceScope)
			}
		}
	}
	return -1
}

func country(cc, cont string) map[string]string {
	return map[string]string{"country/code": cc, "continent/code": cont}
}

func TestGeo(t *testing.T) {
	s, h := newTestSteer(t, geoZone)
	for _, c := range []struct {
		name     string
		down     []string
		src, ecs string
		md       map[string]string
		qtype    uint16
		want     []string
		ttl      uint32
		scope    int
	}{
		{"networks rule", nil, "10.9.9.9", "192.0.2.0/24", nil, dns.TypeA, []string{"10.0.2.1"}, 60, 24},
		{"longest rule", nil, "10.9.9.9", "198.51.100.128/25", nil, dns.TypeA, []string{"10.0.4.1"}, 60, 25},
		{"a /25 rule does not cover a /24 client", nil, "10.9.9.9", "198.51.100.0/24", nil, dns.TypeA, []string{"10.0.3.1"}, 60, 24},
		{"rule scope at most the source prefix", nil, "10.9.9.9", "192.0.2.128/26", nil, dns.TypeA, []string{"10.0.2.1"}, 60, 24},
		{"country", nil, "10.9.9.9", "100.64.0.0/24", country("FR", "EU"), dns.TypeA, []string{"10.0.3.1"}, 60, 24},
		{"continent", nil, "10.9.9.9", "100.64.0.0/24", country("ES", "EU"), dns.TypeA, []string{"10.0.3.1"}, 60, 24},
		{"unknown client: file order", nil, "10.9.9.9", "100.64.0.0/24", nil, dns.TypeA, []string{"10.0.1.1"}, 60, 24},
		{"no ECS: the source address", nil, "192.0.2.77", "", nil, dns.TypeA, []string{"10.0.2.1"}, 60, -1},
		{"ECS /0: not located", nil, "192.0.2.77", "0.0.0.0/0", nil, dns.TypeA, []string{"10.0.1.1"}, 60, 0},
		{"IPv6 client", nil, "10.9.9.9", "2001:db8:e0:100::/56", nil, dns.TypeAAAA, []string{"2001:db8:4::1"}, 60, 48},
		{"region down: its fallbacks in order", []string{"10.0.3.1"}, "10.9.9.9", "198.51.100.0/24", nil, dns.TypeA, []string{"10.0.4.1"}, 5, 24},
		{"two down: the next fallback", []string{"10.0.3.1", "10.0.4.1", "2001:db8:4::1"}, "10.9.9.9", "198.51.100.0/24", nil, dns.TypeA, []string{"10.0.1.1"}, 5, 24},
		{"no pool of the region: its fallback", nil, "10.9.9.9", "203.0.113.0/24", nil, dns.TypeA, []string{"10.0.4.1"}, 60, 24},
		{"fallbacks down too: file order", []string{"10.0.4.1", "2001:db8:4::1", "10.0.3.1", "10.0.1.1", "2001:db8:1::1"}, "10.9.9.9", "203.0.113.0/24", nil, dns.TypeA, []string{"10.0.2.1"}, 5, 24},
		{"static records: scope 0", nil, "10.9.9.9", "192.0.2.0/24", nil, dns.TypeA, []string{"192.0.2.80"}, 3600, 0},
		{"failover: scope 0", nil, "10.9.9.9", "198.51.100.0/24", nil, dns.TypeA, []string{"10.2.1.1"}, 30, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			if len(c.down) > 0 {
				h.set(t, healthcheck.Down, c.down...)
				defer h.set(t, healthcheck.Up, c.down...)
			}
			name := "geo.example.com."
			switch {
			case strings.HasPrefix(c.name, "static"):
				name = "static.example.com."
			case strings.HasPrefix(c.name, "failover"):
				name = "fo.example.com."
			}
			r := geoAsk(t, s, name, c.qtype, c.src, c.ecs, c.md)
			if got := addrs(r); !slices.Equal(got, c.want) || ttlOf(r) != c.ttl || scopeOf(r) != c.scope {
				t.Errorf("got %v ttl %d scope %d, want %v ttl %d scope %d", got, ttlOf(r), scopeOf(r), c.want, c.ttl, c.scope)
			}
		})
	}
}

func TestNearest(t *testing.T) {
	s, h := newTestSteer(t, geoZone)
	at := func(lat, lon float64) map[string]string {
		return map[string]string{"latitude": fmt.Sprint(lat), "longitude": fmt.Sprint(lon)}
	}
	for _, c := range []struct {
		name  string
		down  []string
		ecs   string
		md    map[string]string
		want  string
		ttl   uint32
		scope int
	}{
		{"Paris is nearest eu-central", nil, "100.64.0.0/24", at(48.9, 2.35), "10.1.4.1", 60, 24},
		{"Dublin is nearest eu-west", nil, "100.64.0.0/24", at(53.35, -6.26), "10.1.3.1", 60, 24},
		{"Seattle is nearest us-west", nil, "100.64.0.0/24", at(47.6, -122.3), "10.1.2.1", 60, 24},
		{"nearest down: the next nearest", []string{"10.1.2.1"}, "100.64.0.0/24", at(47.6, -122.3), "10.1.1.1", 5, 24},
		{"a networks rule: its region's location", nil, "203.0.113.0/24", nil, "10.1.4.1", 60, 24},
		{"unknown: file order", nil, "100.64.0.0/24", nil, "10.1.1.1", 60, 24},
		{"unknown, first down: the next in file order", []string{"10.1.1.1"}, "100.64.0.0/24", nil, "10.1.2.1", 5, 24},
		{"0,0 from geoip means unknown", nil, "100.64.0.0/24", at(0, 0), "10.1.1.1", 60, 24},
	} {
		t.Run(c.name, func(t *testing.T) {
			if len(c.down) > 0 {
				h.set(t, healthcheck.Down, c.down...)
				defer h.set(t, healthcheck.Up, c.down...)
			}
			r := geoAsk(t, s, "near.example.com.", dns.TypeA, "10.9.9.9", c.ecs, c.md)
			if got := addrs(r); !slices.Equal(got, []string{c.want}) || ttlOf(r) != c.ttl || scopeOf(r) != c.scope {
				t.Errorf("got %v ttl %d scope %d, want %s ttl %d scope %d", got, ttlOf(r), scopeOf(r), c.want, c.ttl, c.scope)
			}
		})
	}
}

// TestStickyMovement: the same subnet gets the same pool every time; when one of four equal
// pools fails, only its share of the subnets moves, and they come back when it recovers.
func TestStickyMovement(t *testing.T) {
	s, h := newTestSteer(t, geoZone)
	const n = 4000
	subnet := func(i int) string { return fmt.Sprintf("100.%d.%d.0/24", 64+i/256, i%256) }
	assign := func() []string {
		out := make([]string, n)
		for i := range n {
			r := geoAsk(t, s, "sticky.example.com.", dns.TypeA, "10.9.9.9", subnet(i), nil)
			if got := addrs(r); len(got) == 1 && scopeOf(r) == 24 {
				out[i] = got[0]
			} else {
				t.Fatalf("%s: %v scope %d", subnet(i), got, scopeOf(r))
			}
		}
		return out
	}
	before := assign()
	// Stable: 1,000 more asks of one subnet, and the whole set again, give the same pools.
	for range 1000 {
		if got := addrs(geoAsk(t, s, "sticky.example.com.", dns.TypeA, "10.9.9.9", subnet(7), nil)); got[0] != before[7] {
			t.Fatalf("subnet 7 moved from %s to %s", before[7], got[0])
		}
	}
	if again := assign(); !slices.Equal(again, before) {
		t.Fatal("assignment changed with nothing down")
	}
	h.set(t, healthcheck.Down, "10.3.2.1")
	during := assign()
	moved, share := 0, 0
	for i := range n {
		if before[i] == "10.3.2.1" {
			share++
		}
		if during[i] != before[i] {
			moved++
			if before[i] != "10.3.2.1" {
				t.Fatalf("subnet %s moved from %s, which is up", subnet(i), before[i])
			}
		}
	}
	if moved != share {
		t.Errorf("%d subnets moved, %d were on the failed pool", moved, share)
	}
	if frac := float64(share) / n; frac < 0.23 || frac > 0.27 {
		t.Errorf("the failed pool had %.1f%% of subnets, want 25%% ± 2", 100*frac)
	}
	t.Logf("moved %d of %d subnets (%.2f%%); the failed pool's share was %.2f%%", moved, n, 100*float64(moved)/n, 100*float64(share)/n)
	h.set(t, healthcheck.Up, "10.3.2.1")
	if after := assign(); !slices.Equal(after, before) {
		t.Error("subnets did not return when the pool recovered")
	}
}

func TestEndpointWeights(t *testing.T) {
	s, _ := newTestSteer(t, geoZone)
	s.randN = rand.New(rand.NewPCG(5, 6)).IntN
	count := map[string]int{}
	for range 2000 {
		got := addrs(ask(t, s, "trickle.example.com.", dns.TypeA, ""))
		if len(got) != 1 {
			t.Fatalf("max_answers 1: %v", got)
		}
		count[got[0]]++
	}
	if share := float64(count["10.4.0.2"]) / 2000; share < 0.07 || share > 0.13 {
		t.Errorf("weight 1 of 10 got %.1f%% of answers, want ~10%% (%v)", 100*share, count)
	}
}

func TestMalformedECS(t *testing.T) {
	s, _ := newTestSteer(t, geoZone)
	for _, c := range []struct {
		name string
		ecs  *dns.EDNS0_SUBNET
	}{
		{"bits beyond the prefix", &dns.EDNS0_SUBNET{Family: 1, SourceNetmask: 24, Address: netip.MustParseAddr("192.0.2.1").AsSlice()}},
		{"IPv6 bits beyond the prefix", &dns.EDNS0_SUBNET{Family: 2, SourceNetmask: 32, Address: netip.MustParseAddr("2001:db8:1::").AsSlice()}},
	} {
		m := new(dns.Msg)
		m.SetQuestion("geo.example.com.", dns.TypeA)
		m.SetEdns0(1232, false)
		c.ecs.Code = dns.EDNS0SUBNET
		m.IsEdns0().Option = append(m.IsEdns0().Option, c.ecs)
		rec := dnstest.NewRecorder(&test.ResponseWriter{})
		if rcode, _ := s.ServeDNS(context.Background(), rec, m); rcode != dns.RcodeFormatError || rec.Msg != nil {
			t.Errorf("%s: rcode %s", c.name, dns.RcodeToString[rcode])
		}
	}
	// Two ECS options.
	m := new(dns.Msg)
	m.SetQuestion("geo.example.com.", dns.TypeA)
	m.SetEdns0(1232, false)
	for range 2 {
		m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: netip.MustParseAddr("192.0.2.0").AsSlice()})
	}
	if rcode, _ := s.ServeDNS(context.Background(), dnstest.NewRecorder(&test.ResponseWriter{}), m); rcode != dns.RcodeFormatError {
		t.Errorf("two ECS options: rcode %s", dns.RcodeToString[rcode])
	}
}

func TestECSOff(t *testing.T) {
	s, _ := newTestSteer(t, geoZone)
	off := New(Config{Paths: s.cfg.Paths, IgnoreECS: true})
	if err := off.Provision(newDriven().source); err != nil {
		t.Fatal(err)
	}
	if err := off.OnStartup(); err != nil {
		t.Fatal(err)
	}
	defer off.OnShutdown()
	// The ECS option names eu-west; the source address, us-west: with ecs off the source wins
	// and no ECS is echoed.
	r := geoAsk(t, off, "geo.example.com.", dns.TypeA, "192.0.2.9", "198.51.100.0/24", nil)
	if got := addrs(r); !slices.Equal(got, []string{"10.0.2.1"}) || scopeOf(r) != -1 {
		t.Errorf("ecs off: %v scope %d", got, scopeOf(r))
	}
	r = geoAsk(t, s, "geo.example.com.", dns.TypeA, "192.0.2.9", "198.51.100.0/24", nil)
	if got := addrs(r); !slices.Equal(got, []string{"10.0.3.1"}) || scopeOf(r) != 24 {
		t.Errorf("ecs on: %v scope %d", got, scopeOf(r))
	}
}

// TestExplainAgrees: explain runs the answer's code: for every client of a list it gives the
// answer a real query gets, and says where the client is and why.
func TestExplainAgrees(t *testing.T) {
	s, h := newTestSteer(t, geoZone)
	h.set(t, healthcheck.Down, "10.0.3.1")
	for _, c := range []struct{ name, client string }{
		{"geo.example.com.", "198.51.100.0/24"},
		{"geo.example.com.", "192.0.2.0/24"},
		{"geo.example.com.", "192.0.2.7"},
		{"geo.example.com.", ""},
		{"near.example.com.", "203.0.113.0/24"},
		{"fo.example.com.", "198.51.100.0/24"},
		{"static.example.com.", "198.51.100.0/24"},
	} {
		ex, err := s.Explain(context.Background(), c.name, dns.TypeA, c.client)
		if err != nil {
			t.Fatal(err)
		}
		src, ecs := "10.9.9.9", ""
		if strings.Contains(c.client, "/") {
			ecs = c.client
		} else if c.client != "" {
			src = c.client
		}
		var want []string
		if c.client == "" {
			m := new(dns.Msg)
			m.SetQuestion(c.name, dns.TypeA)
			w := &explainWriter{}
			var q query
			s.serve(context.Background(), w, m, &q)
			for _, rr := range w.msg.Answer {
				want = append(want, rr.String())
			}
		} else {
			for _, rr := range geoAsk(t, s, c.name, dns.TypeA, src, ecs, nil).Answer {
				want = append(want, rr.String())
			}
		}
		if !slices.Equal(ex.Answer, want) {
			t.Errorf("%s from %q: explain %v, answer %v", c.name, c.client, ex.Answer, want)
		}
		if len(ex.Steps) == 0 {
			t.Errorf("%s from %q: no steps", c.name, c.client)
		}
		t.Logf("%s from %q:\n  %s", c.name, c.client, strings.Join(ex.Steps, "\n  "))
	}
	ex, _ := s.Explain(context.Background(), "geo.example.com.", dns.TypeA, "198.51.100.0/24")
	if len(ex.Services) != 1 || ex.Services[0].Located != "networks rule /24 -> region eu-west" || ex.Services[0].Pools[0].Region != "eu-west" ||
		ex.Services[0].Pools[0].Healthy || ex.Services[0].Chosen != "eu-central" || ex.Scope == nil || *ex.Scope != 24 || *ex.TTL != 5 {
		t.Errorf("explain of a client whose region is down: %+v", ex)
	}
	if _, err := s.Explain(context.Background(), "geo.example.com.", dns.TypeA, "nowhere"); err == nil {
		t.Error("a bad client was explained")
	}
}

// TestReadECSLength: an ECS address of the wrong length, which miekg/dns pads or cuts when it
// unpacks, is found from the OPT RR's RDLENGTH.
func TestReadECSLength(t *testing.T) {
	for _, c := range []struct {
		data  []byte
		extra []dns.EDNS0
		err   error
	}{
		{data: []byte{0, 1, 24, 0, 192, 0, 2}},
		{data: []byte{0, 1, 24, 0, 192, 0, 2, 0}, err: errECSLength},
		{data: []byte{0, 1, 24, 0, 192, 0}, err: errECSLength},
		{data: []byte{0, 1, 0, 0}},
		{data: []byte{0, 0, 0, 0}},
		{data: []byte{0, 2, 56, 0, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 1}},
		{data: []byte{0, 2, 56, 0, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 1, 0}, err: errECSLength},
		{data: []byte{0, 1, 24, 0, 192, 0, 2}, extra: []dns.EDNS0{&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0011223344556677"}, &dns.EDNS0_PADDING{Padding: make([]byte, 9)}}},
		{data: []byte{0, 1, 24, 0, 192, 0, 2, 9}, extra: []dns.EDNS0{&dns.EDNS0_NSID{Code: dns.EDNS0NSID}}, err: errECSLength},
	} {
		m := new(dns.Msg)
		m.SetQuestion("www.example.com.", dns.TypeA)
		m.SetEdns0(1232, false)
		opt := m.IsEdns0()
		opt.Option = append(append(opt.Option, c.extra...), &dns.EDNS0_LOCAL{Code: dns.EDNS0SUBNET, Data: c.data})
		wire, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		var r dns.Msg
		if err := r.Unpack(wire); err != nil {
			t.Fatalf("%x: %v", c.data, err)
		}
		if _, _, err := readECS(&r); err != c.err {
			t.Errorf("%x: %v, want %v", c.data, err, c.err)
		}
	}
}
