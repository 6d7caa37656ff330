package steer

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/coredns/coredns/plugin/file"
	"github.com/coredns/coredns/plugin/metadata"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"
	"github.com/steerdns/steerdns/healthcheck"
)

// discard is a ResponseWriter that drops the reply after it is built, so the benchmarks
// measure the plugin and not packing.
type discard struct{ test.ResponseWriter }

func (*discard) WriteMsg(*dns.Msg) error { return nil }

const benchZone = `zone: example.com.
ns: [ns1.example.com.]
records: |
  ns1  A 192.0.2.53
  static A 192.0.2.80
checks:
  web: {type: tcp, port: 80}
services:
  www:
    policy: failover
    check: web
    pools:
      - {region: a, endpoints: [192.0.2.1, 192.0.2.2]}
      - {region: b, endpoints: [192.0.2.11, 192.0.2.12]}
      - {region: c, endpoints: [192.0.2.21, 192.0.2.22]}
`

const benchMaster = `$ORIGIN example.com.
@ 3600 IN SOA ns1.example.com. hostmaster.example.com. 1 7200 3600 1209600 60
@ 3600 IN NS ns1
ns1 3600 IN A 192.0.2.53
static 3600 IN A 192.0.2.80
`

func benchServe(b *testing.B, h interface {
	ServeDNS(context.Context, dns.ResponseWriter, *dns.Msg) (int, error)
}, name string) {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	w := &discard{}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.ServeDNS(ctx, w, m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkServeDNS(b *testing.B) {
	s, _ := newTestSteer(b, benchZone)
	z, err := file.Parse(strings.NewReader(benchMaster), "example.com.", "bench", 0)
	if err != nil {
		b.Fatal(err)
	}
	f := file.File{Zones: file.Zones{Z: map[string]*file.Zone{"example.com.": z}, Names: []string{"example.com."}}}
	b.Run("steer/steered", func(b *testing.B) { benchServe(b, s, "www.example.com.") })
	b.Run("steer/static", func(b *testing.B) { benchServe(b, s, "static.example.com.") })
	b.Run("file/static", func(b *testing.B) { benchServe(b, f, "static.example.com.") })
	b.Run("steer/nxdomain", func(b *testing.B) { benchServe(b, s, "nope.example.com.") })
	b.Run("file/nxdomain", func(b *testing.B) { benchServe(b, f, "nope.example.com.") })
}

// BenchmarkChoose measures policy selection alone, with every endpoint healthy and with the
// first pool down.
func BenchmarkChoose(b *testing.B) {
	s, h := newTestSteer(b, policyZone)
	z := s.Set().Zone("example.com.")
	client := netip.MustParseAddr("198.51.100.7")
	for _, name := range []string{"fo", "w", "sticky", "mv"} {
		svc := z.Service(name + ".example.com.")
		b.Run(name, func(b *testing.B) {
			q := testQuery(s, z, client)
			b.ReportAllocs()
			for b.Loop() {
				choose(svc, q)
			}
		})
	}
	h.set(b, healthcheck.Down, "192.0.2.1", "192.0.2.2", "2001:db8::1", "192.0.2.71", "192.0.2.91", "192.0.2.101")
	for _, name := range []string{"fo", "w", "sticky", "mv"} {
		svc := z.Service(name + ".example.com.")
		b.Run(name+"/first-pool-down", func(b *testing.B) {
			q := testQuery(s, z, client)
			b.ReportAllocs()
			for b.Loop() {
				choose(svc, q)
			}
		})
	}
}

// flipPolicy is a zone of n failover services, each with five endpoints of their own, all
// checked: 5n targets.
func flipPolicy(n int) string {
	var b strings.Builder
	b.WriteString("zone: example.com.\nns: [ns1.example.com.]\nrecords: |\n  ns1 A 192.0.2.53\nchecks:\n  web: {type: tcp, port: 80}\nservices:\n")
	addr := func(k int) string { return fmt.Sprintf("10.%d.%d.%d", k>>16&255, k>>8&255, k&255) }
	for i := range n {
		fmt.Fprintf(&b, "  s%d:\n    check: web\n    pools:\n      - {region: a, endpoints: [%s, %s, %s]}\n      - {region: b, endpoints: [%s, %s]}\n",
			i, addr(5*i), addr(5*i+1), addr(5*i+2), addr(5*i+3), addr(5*i+4))
	}
	return b.String()
}

// BenchmarkPublishFlip measures what one target's change costs: a new view with that slot
// changed, swapped in. The page table is copied (a pointer per 1,024 targets) and one page of
// each of the two slot arrays; the zones, the services and the other targets are not touched.
func BenchmarkPublishFlip(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			s, h := newTestSteer(b, flipPolicy(n))
			z := s.Set().Zone("example.com.")
			if len(z.Targets) != 5*n {
				b.Fatalf("%d targets, want %d", len(z.Targets), 5*n)
			}
			tg := z.Targets[len(z.Targets)/2]
			to := [2]healthcheck.State{healthcheck.Down, healthcheck.Up}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				s.observe(healthcheck.Change{Target: tg, From: to[(i+1)%2], To: to[i%2]})
				i++
			}
			_ = h
		})
	}
}

// BenchmarkLocated measures answers that depend on where the client is, beside a failover
// answer of the same zone: ServeDNS with an ECS option, the client's /24 cycling over 4,096
// subnets (a networks rule covers a quarter of them; geoip metadata places the rest).
func BenchmarkLocated(b *testing.B) {
	s, _ := newTestSteer(b, geoZone)
	subnets := make([]*dns.Msg, 4096)
	for i := range subnets {
		m := new(dns.Msg)
		m.SetEdns0(1232, false)
		a := netip.AddrFrom4([4]byte{198, 51, byte(100 + i%4), 0})
		if i%4 != 0 {
			a = netip.AddrFrom4([4]byte{100, byte(64 + i/256), byte(i % 256), 0})
		}
		m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: a.AsSlice()})
		subnets[i] = m
	}
	ctx := metadata.ContextWithMetadata(context.Background())
	for k, v := range map[string]string{"country/code": "FR", "continent/code": "EU", "latitude": "48.9", "longitude": "2.35"} {
		metadata.SetValueFunc(ctx, "geoip/"+k, func() string { return v })
	}
	w := &discard{}
	for _, name := range []string{"fo", "geo", "near", "sticky", "fo/no-geoip", "geo/no-geoip"} {
		b.Run(name, func(b *testing.B) {
			svc, plain := strings.CutSuffix(name, "/no-geoip")
			c := ctx
			if plain {
				c = context.Background() // networks rules alone: no metadata plugin in the chain
			}
			for _, m := range subnets {
				m.SetQuestion(svc+".example.com.", dns.TypeA)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := s.ServeDNS(c, w, subnets[i&4095]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
