package zones

import (
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/steerdns/steerdns/healthcheck"
)

func compileText(t testing.TB, text string, serial uint32) *Zone {
	t.Helper()
	z, _ := compileSpec(t, text, serial)
	return z
}

// compileSpec is compileText that also returns the decoded file.
func compileSpec(t testing.TB, text string, serial uint32) (*Zone, *PolicyFile) {
	t.Helper()
	pf, err := Decode("c.yaml", []byte(text))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	return Compile(pf, "hash", serial), pf
}

const compileZone = `zone: example.com.
ttl: 300
ns: [ns1.example.com., ns2.example.net.]
soa: {minttl: 900}
records: |
  ns1   A     192.0.2.53
  mail  A     192.0.2.25
checks:
  web: {type: http, port: 8080}
  same-as-web: {type: http, port: 8080}
  tcp: {type: tcp, port: 443}
services:
  www:
    ttl: 60
    degraded_ttl: 5
    check: web
    when_all_down: fallback
    fallback: [192.0.2.250, 2001:db8::250]
    pools:
      - region: us-east
        weight: 3
        endpoints:
          - 192.0.2.10
          - 2001:db8::10
          - {address: 192.0.2.11, check: tcp, weight: 2}
          - {address: 192.0.2.12, check: none}
      - region: eu-west
        endpoints: [198.51.100.10, "::ffff:198.51.100.11"]
  api:
    check: web
    min_healthy: 50%
    pools:
      - endpoints: [192.0.2.10, 192.0.2.13, 192.0.2.14]
      - endpoints: [{address: 198.51.100.10, check: same-as-web}]
  cdn:
    ttl: 120
    degraded_ttl: 20
    pools:
      - endpoints: [Edge-1.Provider.example., edge-2.provider.example.]
      - endpoints: [www.example.com.]
  "@":
    pools:
      - endpoints: [192.0.2.1]
`

func TestCompile(t *testing.T) {
	z := compileText(t, compileZone, 2024050101)
	if z.Origin != "example.com." || z.Path != "c.yaml" || z.Hash != "hash" || z.Serial != 2024050101 || z.FileSerial != 0 || z.TTL != 300 {
		t.Errorf("zone %s %s %s %d", z.Origin, z.Path, z.Hash, z.Serial)
	}

	// Apex and static records, as the file plugin holds them.
	soa := z.Static.Apex.SOA
	if soa == nil || soa.Serial != 2024050101 || soa.Hdr.Ttl != 300 || soa.Ns != "ns1.example.com." ||
		soa.Mbox != "hostmaster.example.com." || soa.Minttl != 900 || soa.Refresh != 14400 {
		t.Errorf("SOA = %v", soa)
	}
	if len(z.Static.Apex.NS) != 2 || z.Static.Apex.NS[1].(*dns.NS).Ns != "ns2.example.net." || z.Static.Apex.NS[0].Header().Ttl != 300 {
		t.Errorf("NS = %v", z.Static.Apex.NS)
	}
	if e, ok := z.Static.Search("mail.example.com."); !ok || len(e.Type(dns.TypeA)) != 1 || e.Type(dns.TypeA)[0].Header().Ttl != 300 {
		t.Errorf("mail A not in the static tree")
	}
	for _, name := range []string{"www.example.com.", "api.example.com.", "cdn.example.com."} {
		if e, ok := z.Static.Search(name); !ok || len(e.Type(placeholderType)) != 1 {
			t.Errorf("no placeholder at %s", name)
		}
	}

	// Negative SOA: TTL min(zone ttl, minttl) = min(300, 900).
	if len(z.NegSOA) != 1 || z.NegSOA[0].Header().Ttl != 300 || z.NegSOA[0].(*dns.SOA).Minttl != 900 {
		t.Errorf("NegSOA = %v", z.NegSOA)
	}

	www := z.Service("www.example.com.")
	if www == nil || len(www.Pools) != 2 || www.TotalWeight != 4 {
		t.Fatalf("www = %+v", www)
	}
	p := www.Pools[0]
	if p.Region != "us-east" || p.Weight != 3 || p.MinHealthy != 1 || p.CNAME || len(p.Endpoints) != 4 {
		t.Errorf("pool 0 = %+v", p)
	}
	for kind, ttl := range [2]uint32{60, 5} {
		v4, v6 := p.Answer(kind, V4), p.Answer(kind, V6)
		if len(v4) != 3 || len(v6) != 1 {
			t.Fatalf("kind %d: %d A, %d AAAA", kind, len(v4), len(v6))
		}
		for _, rr := range v4 {
			if a, ok := rr.(*dns.A); !ok || a.Hdr.Name != "www.example.com." || a.Hdr.Ttl != ttl || a.Hdr.Class != dns.ClassINET {
				t.Errorf("kind %d: %v", kind, rr)
			}
		}
		if aaaa, ok := v6[0].(*dns.AAAA); !ok || aaaa.AAAA.String() != "2001:db8::10" || aaaa.Hdr.Ttl != ttl {
			t.Errorf("kind %d: %v", kind, v6[0])
		}
	}
	for i, want := range []struct {
		addr   string
		family int
		check  string
		weight int
	}{{"192.0.2.10", V4, "web", 1}, {"2001:db8::10", V6, "web", 1}, {"192.0.2.11", V4, "tcp", 2}, {"192.0.2.12", V4, CheckNone, 1}} {
		ep := p.Endpoints[i]
		if ep.Address != want.addr || ep.Family != want.family || ep.Check != want.check || ep.Weight != want.weight {
			t.Errorf("endpoint %d = %+v, want %+v", i, ep, want)
		}
		if (ep.Target == NoTarget) != (want.check == CheckNone) {
			t.Errorf("endpoint %d: target %v", i, ep.Target)
		}
		if p.Record(i, Primary) != ep.RR || ep.RR.Header().Ttl != 60 || p.Record(i, Degraded).Header().Ttl != 5 {
			t.Errorf("endpoint %d: TTLs %d %d", i, ep.RR.Header().Ttl, p.Record(i, Degraded).Header().Ttl)
		}
		// The pool's answers share the endpoint's records.
		for kind := range 2 {
			if ep.Family == V4 && !containsRR(p.Answer(kind, V4), p.Record(i, kind)) {
				t.Errorf("endpoint %d: its record of kind %d is not in the pool's answer", i, kind)
			}
		}
	}
	// A v4-mapped v6 address is answered as A.
	if ep := www.Pools[1].Endpoints[1]; ep.Family != V4 || ep.RR.(*dns.A).A.String() != "198.51.100.11" {
		t.Errorf("::ffff:198.51.100.11 = %+v %v", ep, ep.RR)
	}
	// Fallback answers by family, with degraded_ttl; NODATA SOA at most degraded_ttl.
	if fb := www.Fallback; len(fb[V4]) != 1 || len(fb[V6]) != 1 || fb[V4][0].Header().Ttl != 5 || fb[V6][0].(*dns.AAAA).AAAA.String() != "2001:db8::250" {
		t.Errorf("fallback = %v", fb)
	}
	if nd := z.NodataSOA(www); len(nd) != 1 || nd[0].Header().Ttl != 5 || nd[0].Header().Rrtype != dns.TypeSOA {
		t.Errorf("nodata SOA = %v", nd)
	}

	// min_healthy 50%: 2 of 3, 1 of 1.
	api := z.Service("api.example.com.")
	if api.Pools[0].MinHealthy != 2 || api.Pools[1].MinHealthy != 1 {
		t.Errorf("api minimums %d %d", api.Pools[0].MinHealthy, api.Pools[1].MinHealthy)
	}

	// CNAME endpoints.
	cdn := z.Service("cdn.example.com.")
	for i, want := range []struct {
		pool, ep int
		target   string
	}{{0, 0, "edge-1.provider.example."}, {0, 1, "edge-2.provider.example."}, {1, 0, "www.example.com."}} {
		pool := cdn.Pools[want.pool]
		for kind := range 2 {
			if !pool.CNAME || len(pool.Answer(kind, V4))+len(pool.Answer(kind, V6)) != 0 {
				t.Errorf("cdn pool %d: CNAME %v, answers %v %v", want.pool, pool.CNAME, pool.Answer(kind, V4), pool.Answer(kind, V6))
			}
		}
		for kind, ttl := range [2]uint32{120, 20} {
			rr := pool.Record(want.ep, kind)
			c, ok := rr.(*dns.CNAME)
			if !ok || c.Target != want.target || c.Hdr.Name != "cdn.example.com." || c.Hdr.Ttl != ttl {
				t.Errorf("cdn endpoint %d kind %d = %v", i, kind, rr)
			}
		}
	}

	if apex := z.Service("example.com."); apex == nil || z.Relative(apex.Name) != "@" || z.Relative("www.example.com.") != "www" {
		t.Errorf("apex service %v", apex)
	}
}

func containsRR(rrs []dns.RR, rr dns.RR) bool {
	for _, r := range rrs {
		if r == rr {
			return true
		}
	}
	return false
}

func TestCompileTargets(t *testing.T) {
	z := compileText(t, compileZone, 1)
	// web@192.0.2.10 (www and api), web@2001:db8::10, tcp@192.0.2.11, web@198.51.100.10 (www, and
	// api's same-as-web: the same probe), web@::ffff:198.51.100.11, web@192.0.2.13,
	// web@192.0.2.14. check none and the unchecked cdn and @ have none.
	keys := map[string]int{}
	for _, tg := range z.Targets {
		keys[tg.Key]++
	}
	if len(z.Targets) != 7 || len(keys) != 7 {
		for _, tg := range z.Targets {
			t.Logf("target %s", tg)
		}
		t.Fatalf("%d targets, %d keys, want 7", len(z.Targets), len(keys))
	}
	www, api := z.Service("www.example.com."), z.Service("api.example.com.")
	target := func(s *Service, pool, ep int) healthcheck.Target {
		return z.Targets[s.Pools[pool].Endpoints[ep].Target]
	}
	a, b := target(www, 0, 0), target(api, 0, 0)
	if a.Key != b.Key || a.Address != "192.0.2.10" || a.Config.Port != 8080 {
		t.Errorf("www and api probe 192.0.2.10 differently: %v %v", a, b)
	}
	if target(www, 1, 0).Key != target(api, 1, 0).Key {
		t.Error("two checks of one config at one address are two targets")
	}
	if target(www, 0, 0).Key == target(www, 0, 2).Key {
		t.Error("different checks share a target")
	}
	for _, tg := range z.Targets {
		if tg.Key != healthcheck.NewTarget(tg.Name, *tg.Config, tg.Address).Key {
			t.Errorf("target %s: key is not NewTarget's", tg)
		}
	}
}

// The targets of a check share its config, and so do checks with the same settings under
// other names; a quorum of their own, or other settings, keep a config apart.
func TestCompileSharesConfigs(t *testing.T) {
	z, pf := compileSpec(t, `zone: example.com.
ns: [ns1.example.com.]
checks:
  web: {type: http, port: 8080}
  same: {type: http, port: 8080}
  quorum: {type: http, port: 8080, quorum: all}
  other: {type: http, port: 8081}
  pipe1: {type: http, path: "/a|b"}
  pipe2: {type: http, path: /a, host: "b|"}
services:
  www:
    check: web
    pools: [{endpoints: [192.0.2.1, 192.0.2.2, {address: 192.0.2.3, check: same}, {address: 192.0.2.4, check: quorum},
      {address: 192.0.2.5, check: other}, {address: 192.0.2.6, check: pipe1}, {address: 192.0.2.7, check: pipe2}]}]
`, 1)
	config := map[string]*healthcheck.Config{}
	for _, tg := range z.Targets {
		config[tg.Address] = tg.Config
		if !reflect.DeepEqual(*tg.Config, pf.Checks[tg.Name]) {
			t.Errorf("target %s: config %+v, want %+v", tg, *tg.Config, pf.Checks[tg.Name])
		}
	}
	if len(config) != 7 {
		t.Fatalf("%d targets, want 7", len(config))
	}
	if config["192.0.2.1"] != config["192.0.2.2"] || config["192.0.2.1"] != config["192.0.2.3"] {
		t.Error("the targets of web, and of same, do not share a config")
	}
	for _, addr := range []string{"192.0.2.4", "192.0.2.5", "192.0.2.6"} {
		if config[addr] == config["192.0.2.1"] {
			t.Errorf("%s shares the config of web", addr)
		}
	}
	// A | in a path or a host once made their Keys read alike; their configs and targets differ.
	if config["192.0.2.6"] == config["192.0.2.7"] || config["192.0.2.6"].Key() == config["192.0.2.7"].Key() {
		t.Error("two checks with a | in a path or a host share a config or a Key")
	}
}

func TestCompileTargetIndex(t *testing.T) {
	z, pf := compileSpec(t, compileZone, 1)
	used := make([]bool, len(z.Targets))
	for _, s := range z.Services {
		for _, p := range s.Pools {
			for _, ep := range p.Endpoints {
				if ep.Check == CheckNone {
					if ep.Target != NoTarget {
						t.Errorf("%s %s (check none) has target %d", s.Name, ep.Address, ep.Target)
					}
					continue
				}
				if ep.Target < 0 || int(ep.Target) >= len(z.Targets) {
					t.Fatalf("%s %s: target index %d of %d", s.Name, ep.Address, ep.Target, len(z.Targets))
				}
				tg := z.Targets[ep.Target]
				// Two checks of one config at one address share the target of the first.
				if tg.Key != healthcheck.NewTarget(ep.Check, pf.Checks[ep.Check], ep.Address).Key {
					t.Errorf("%s %s: target %s", s.Name, ep.Address, tg)
				}
				used[ep.Target] = true
			}
		}
	}
	for i, u := range used {
		if !u {
			t.Errorf("target %s is named by no endpoint", z.Targets[i])
		}
	}
}

func TestCompileNegativeTTL(t *testing.T) {
	for _, tc := range []struct {
		ttl, minttl, degraded uint32
		neg, nodata           uint32
	}{
		{3600, 60, 10, 60, 10},
		{30, 60, 10, 30, 10},
		{3600, 5, 10, 5, 5},
		{0, 60, 10, 0, 0},
	} {
		text := fmt.Sprintf("zone: example.com.\nttl: %d\nns: [ns1.example.com.]\nsoa: {minttl: %d}\nservices:\n  www:\n    degraded_ttl: %d\n    pools:\n      - endpoints: [192.0.2.1]\n",
			tc.ttl, tc.minttl, tc.degraded)
		z := compileText(t, text, 1)
		if got := z.NegSOA[0].Header().Ttl; got != tc.neg {
			t.Errorf("ttl %d minttl %d: negative SOA TTL %d, want %d", tc.ttl, tc.minttl, got, tc.neg)
		}
		if got := z.Static.Apex.SOA.Hdr.Ttl; got != tc.ttl {
			t.Errorf("ttl %d: SOA TTL %d", tc.ttl, got)
		}
		if got := z.NodataSOA(z.Service("www.example.com."))[0].Header().Ttl; got != tc.nodata {
			t.Errorf("ttl %d minttl %d degraded %d: NODATA SOA TTL %d, want %d", tc.ttl, tc.minttl, tc.degraded, got, tc.nodata)
		}
	}
}

// TestDegradedRecords checks that a pool makes its degraded_ttl records only when asked, once,
// for every query that races to ask.
func TestDegradedRecords(t *testing.T) {
	z := compileText(t, compileZone, 1)
	p := z.Service("www.example.com.").Pools[0]
	if p.degraded.Load() != nil {
		t.Fatal("degraded records made at compile time")
	}
	got := make(chan [2]any, 8)
	for range 8 {
		go func() { got <- [2]any{p.Record(2, Degraded), &p.Answer(Degraded, V4)[0]} }()
	}
	first := <-got
	for range 7 {
		if g := <-got; g != first {
			t.Fatal("two queries got different degraded records")
		}
	}
	if rr := p.Record(2, Degraded).(*dns.A); rr.A.String() != "192.0.2.11" || rr.Hdr.Ttl != 5 || p.Endpoints[2].RR.Header().Ttl != 60 {
		t.Errorf("degraded record %v, primary %v", rr, p.Endpoints[2].RR)
	}
}

// TestReserial gives a compiled zone a new serial: every SOA it serves (apex, negative,
// nodata) carries it, everything else is shared, and the zone it came from is unchanged.
func TestReserial(t *testing.T) {
	z := compileText(t, compileZone, 7)
	r := z.Reserial(9)
	if r.Serial != 9 || r.Static.Apex.SOA.Serial != 9 || r.NegSOA[0].(*dns.SOA).Serial != 9 {
		t.Errorf("reserialled: serial %d, SOA %v, negative %v", r.Serial, r.Static.Apex.SOA, r.NegSOA[0])
	}
	if z.Serial != 7 || z.Static.Apex.SOA.Serial != 7 || z.NegSOA[0].(*dns.SOA).Serial != 7 {
		t.Errorf("original: serial %d, SOA %v, negative %v", z.Serial, z.Static.Apex.SOA, z.NegSOA[0])
	}
	for name, svc := range z.Services {
		if r.Services[name] != svc {
			t.Errorf("%s is not shared", name)
		}
		old, nd := z.NodataSOA(svc)[0].(*dns.SOA), r.NodataSOA(svc)[0].(*dns.SOA)
		if old.Serial != 7 || nd.Serial != 9 || nd.Hdr.Ttl != old.Hdr.Ttl {
			t.Errorf("%s: nodata SOA %v, was %v", name, nd, old)
		}
	}
	if r.NegSOA[0].Header().Ttl != z.NegSOA[0].Header().Ttl || !reflect.DeepEqual(r.Targets, z.Targets) {
		t.Error("the negative TTL or the targets changed")
	}
	// The static records are those of z: the tree is shared, the apex NS too.
	if r.Static.Tree != z.Static.Tree || len(r.Static.Apex.NS) != 2 {
		t.Errorf("static tree %p (was %p), apex NS %v", r.Static.Tree, z.Static.Tree, r.Static.Apex.NS)
	}
	if e, _ := r.Static.Search("mail.example.com."); e == nil || len(e.Type(dns.TypeA)) != 1 {
		t.Error("mail.example.com. A is gone")
	}
}

// TestCompileKeepsNoSpec checks that a compiled zone holds nothing of the file it was decoded
// from: at 100,000 services the decoded file was ~100 MB that nothing served.
func TestCompileKeepsNoSpec(t *testing.T) {
	pf, err := Decode("c.yaml", []byte(compileZone))
	if err != nil {
		t.Fatal(err)
	}
	freed := make(chan string, 3)
	runtime.SetFinalizer(pf, func(*PolicyFile) { freed <- "the policy file" })
	runtime.SetFinalizer(pf.Services[0], func(*ServiceSpec) { freed <- "a service" })
	runtime.SetFinalizer(pf.Services[0].Pools[0].Endpoints[0], func(*EndpointSpec) { freed <- "an endpoint" })
	z := Compile(pf, "hash", 1)
	pf = nil
	for left := 3; left > 0; {
		runtime.GC()
		select {
		case <-freed:
			left--
		case <-time.After(time.Second):
			t.Fatalf("%d of the decoded file's objects are still held by the compiled zone", left)
		}
	}
	if www := z.Service("www.example.com."); www == nil || www.TTL != 60 || www.ServiceSpec.Pools != nil || len(www.Pools) != 2 {
		t.Errorf("www: %+v", www)
	}
}

// TestCompileExample compiles the SPEC example.
func TestCompileExample(t *testing.T) {
	z := Compile(decodeFile(t, exampleFile), "h", 7)
	if len(z.Services) != 2 || z.Static.Apex.SOA.Serial != 7 {
		t.Fatalf("services %d", len(z.Services))
	}
	// web@192.0.2.10, web@2001:db8::10, web-alt@192.0.2.11, web@198.51.100.10; cdn is unchecked.
	if len(z.Targets) != 4 {
		t.Errorf("%d targets, want 4", len(z.Targets))
	}
	for _, tg := range z.Targets {
		if _, err := tg.Config.Validate(); err != nil {
			t.Errorf("target %s: %v", tg, err)
		}
	}
}

// bigPolicy returns a policy file of services services with endpoints endpoints each, in two
// pools, checked by one of three checks; services share addresses, as steered names do.
func bigPolicy(services, endpoints int) []byte {
	var b strings.Builder
	b.WriteString("zone: big.example.\nns: [ns1.big.example.]\nrecords: |\n  ns1 A 192.0.2.53\nchecks:\n")
	b.WriteString("  web: {type: http, port: 8080, path: /healthz}\n  tls: {type: https}\n  db: {type: tcp, port: 5432}\n")
	b.WriteString("services:\n")
	checks := []string{"web", "tls", "db", "none"}
	for i := range services {
		fmt.Fprintf(&b, "  s%d:\n    policy: %s\n    check: %s\n    pools:\n", i, []string{"failover", "weighted", "multivalue"}[i%3], checks[i%4])
		for pool := range 2 {
			fmt.Fprintf(&b, "      - region: r%d\n        endpoints:\n", pool)
			for e := pool; e < endpoints; e += 2 {
				// Each service's endpoints are distinct; every 16 services share a range.
				n := (i/16)*endpoints + e
				if e%5 == 4 {
					a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(n >> 8), 15: byte(n)})
					fmt.Fprintf(&b, "          - %s\n", a)
				} else {
					fmt.Fprintf(&b, "          - 10.%d.%d.%d\n", n>>16&255, n>>8&255, n&255)
				}
			}
		}
	}
	return []byte(b.String())
}

func TestBigPolicyValid(t *testing.T) {
	z := compileText(t, string(bigPolicy(50, 10)), 1)
	if len(z.Services) != 50 {
		t.Fatalf("%d services", len(z.Services))
	}
	n := 0
	for _, s := range z.Services {
		for _, p := range s.Pools {
			n += len(p.Endpoints)
		}
	}
	if n != 500 {
		t.Errorf("%d endpoints, want 500", n)
	}
}

// BenchmarkCompile decodes and compiles a zone of 1,000 services and 10,000 endpoints.
func BenchmarkCompile(b *testing.B) {
	data := bigPolicy(1000, 10)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		pf, err := Decode("big.yaml", data)
		if err != nil {
			b.Fatal(err)
		}
		Compile(pf, "hash", 1)
	}
}

// TestCompileHuge compiles 100,000 services (500,000 endpoints) and logs the time and the heap
// it takes. Run with STEER_BIG=1 go test -run TestCompileHuge -v ./zones.
func TestCompileHuge(t *testing.T) {
	if os.Getenv("STEER_BIG") != "1" {
		t.Skip("set STEER_BIG=1 to compile 100,000 services")
	}
	data := bigPolicy(100_000, 5)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	start := time.Now()
	pf, err := Decode("huge.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	decoded := time.Since(start)
	z := Compile(pf, "hash", 1)
	compiled := time.Since(start) - decoded

	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if len(z.Services) != 100_000 {
		t.Fatalf("%d services", len(z.Services))
	}
	t.Logf("100,000 services, %d targets, file %.1f MB: decode %v, compile %v, heap in use %.0f MB (before %.0f MB)",
		len(z.Targets), float64(len(data))/1e6, decoded.Round(time.Millisecond), compiled.Round(time.Millisecond),
		float64(after.HeapInuse)/1e6, float64(before.HeapInuse)/1e6)
	runtime.KeepAlive(z)
}

func TestNetworksLookup(t *testing.T) {
	n := compileNetworks([]Network{
		{netip.MustParsePrefix("192.0.2.0/24"), "a"},
		{netip.MustParsePrefix("192.0.2.128/25"), "b"},
		{netip.MustParsePrefix("10.0.0.0/8"), "c"},
		{netip.MustParsePrefix("2001:db8::/32"), "d"},
		{netip.MustParsePrefix("2001:db8:e0::/48"), "e"},
	})
	for _, c := range []struct {
		client string
		region string
		bits   uint8
	}{
		{"192.0.2.7/32", "a", 24},
		{"192.0.2.200/32", "b", 25},
		{"192.0.2.128/25", "b", 25},
		{"192.0.2.0/24", "a", 24}, // the /25 does not cover the whole /24
		{"192.0.0.0/16", "", 0},   // nor does the /24 cover a /16
		{"10.1.2.0/24", "c", 8},
		{"198.51.100.0/24", "", 0},
		{"2001:db8:e0:1::/64", "e", 48},
		{"2001:db8:1::/48", "d", 32},
		{"::ffff:192.0.2.7/128", "", 0}, // a v4-mapped address is IPv6 here; the plugin unmaps sources
	} {
		r, ok := n.Lookup(netip.MustParsePrefix(c.client))
		if r.Region != c.region || r.Bits != c.bits || ok != (c.region != "") {
			t.Errorf("%s: %+v %t, want %s /%d", c.client, r, ok, c.region, c.bits)
		}
	}
	if _, ok := (*Networks)(nil).Lookup(netip.MustParsePrefix("192.0.2.0/24")); ok {
		t.Error("nil networks matched")
	}
}
