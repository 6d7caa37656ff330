package test

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	_ "github.com/coredns/coredns/plugin/geoip"
	_ "github.com/coredns/coredns/plugin/metadata"
	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
	"github.com/miekg/dns"
)

// geoPlaces is the GeoIP database the geo tests make: prefixes of the documentation and
// shared ranges placed around the world. They are data, never destinations.
var geoPlaces = []struct {
	cidr, country, continent string
	lat, lon                 float64
}{
	{"203.0.113.0/24", "GB", "EU", 51.5, -0.13},   // London
	{"198.51.100.0/24", "US", "NA", 47.6, -122.3}, // Seattle
	{"100.64.1.0/24", "DE", "EU", 50.1, 8.7},      // Frankfurt: a country no region lists
	{"100.64.2.0/24", "JP", "AS", 35.7, 139.7},    // Tokyo: a continent no region is on
	{"2001:db8:ff::/48", "FR", "EU", 48.9, 2.35},  // Paris
}

// writeGeoDB writes geoPlaces as a City database (the schema of the geoip plugin).
func writeGeoDB(t testing.TB, path string) {
	t.Helper()
	w, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "GeoLite2-City", IncludeReservedNetworks: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range geoPlaces {
		_, n, err := net.ParseCIDR(p.cidr)
		if err != nil {
			t.Fatal(err)
		}
		rec := mmdbtype.Map{
			"country":   mmdbtype.Map{"iso_code": mmdbtype.String(p.country)},
			"continent": mmdbtype.Map{"code": mmdbtype.String(p.continent)},
			"location":  mmdbtype.Map{"latitude": mmdbtype.Float64(p.lat), "longitude": mmdbtype.Float64(p.lon)},
		}
		if err := w.Insert(n, rec); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := w.WriteTo(f); err != nil {
		t.Fatal(err)
	}
}

// geoPolicy: three regions, each pool checked by TCP at its own loopback address.
const geoPolicy = `zone: example.com.
ns: [ns1.example.com.]
records: |
  ns1 A 192.0.2.53
checks:
  east: {type: tcp, port: %d, interval: 200ms, timeout: 100ms, fast_interval: 50ms, rise: 1, fall: 1}
  west: {type: tcp, port: %d, interval: 200ms, timeout: 100ms, fast_interval: 50ms, rise: 1, fall: 1}
  eu:   {type: tcp, port: %d, interval: 200ms, timeout: 100ms, fast_interval: 50ms, rise: 1, fall: 1}
regions:
  us-east: {continent: NA, countries: [US], location: [38.9, -77.0], fallback: [eu-west]}
  us-west: {continent: NA, location: [37.4, -122.1], fallback: [us-east]}
  eu-west: {continent: EU, countries: [GB, FR], location: [53.3, -6.3], fallback: [us-east]}
networks:
  192.0.2.0/24: us-west
services:
  geo:
    policy: geo
    ttl: 60
    degraded_ttl: 5
    min_healthy: 2 # the IPv6 endpoints (check none) alone do not keep a pool up
    pools:
      - {region: us-east, endpoints: [{address: 127.0.0.11, check: east}, {address: "2001:db8:11::1", check: none}]}
      - {region: us-west, endpoints: [{address: 127.0.0.12, check: west}, {address: "2001:db8:12::1", check: none}]}
      - {region: eu-west, endpoints: [{address: 127.0.0.13, check: eu}, {address: "2001:db8:13::1", check: none}]}
  near:
    policy: nearest
    ttl: 60
    degraded_ttl: 5
    pools:
      - {region: us-east, endpoints: [{address: 127.0.0.11, check: east}]}
      - {region: us-west, endpoints: [{address: 127.0.0.12, check: west}]}
      - {region: eu-west, endpoints: [{address: 127.0.0.13, check: eu}]}
  static-fo:
    pools:
      - {region: us-east, endpoints: [127.0.0.21]}
`

// tcpBackend is a listener at host:port that accepts and closes; Stop makes the port refuse.
type tcpBackend struct {
	l    net.Listener
	addr string
}

func newTCPBackend(t testing.TB, addr string) *tcpBackend {
	t.Helper()
	b := &tcpBackend{addr: addr}
	b.Start(t)
	t.Cleanup(b.Stop)
	return b
}

func (b *tcpBackend) Start(t testing.TB) {
	t.Helper()
	eventually(t, 5*time.Second, "listening on "+b.addr, func() bool {
		l, err := net.Listen("tcp", b.addr)
		if err == nil {
			b.l = l
		}
		return err == nil
	})
	if b.addr[len(b.addr)-2:] == ":0" {
		b.addr = b.l.Addr().String()
	}
	go func(l net.Listener) {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}(b.l)
}

func (b *tcpBackend) Stop() {
	if b.l != nil {
		b.l.Close()
		b.l = nil
	}
}

func (b *tcpBackend) port() int { return b.l.Addr().(*net.TCPAddr).Port }

// geoServer starts steerdns with geoip (edns-subnet) and metadata over geoPolicy, with a
// backend per region; extra goes into the steer block.
func geoServer(t *testing.T, extra string) (*server, map[string]*tcpBackend) {
	t.Helper()
	dir := t.TempDir()
	db := filepath.Join(dir, "city.mmdb")
	writeGeoDB(t, db)
	backends := map[string]*tcpBackend{
		"us-east": newTCPBackend(t, "127.0.0.11:0"),
		"us-west": newTCPBackend(t, "127.0.0.12:0"),
		"eu-west": newTCPBackend(t, "127.0.0.13:0"),
	}
	policy := fmt.Sprintf(geoPolicy, backends["us-east"].port(), backends["us-west"].port(), backends["eu-west"].port())
	zonesDir := filepath.Join(dir, "zones")
	os.Mkdir(zonesDir, 0o755)
	writeFile(t, zonesDir, "example.com.yaml", policy)
	s := start(t, fmt.Sprintf("example.com:0 {\n bind 127.0.0.1\n metadata\n geoip %s {\n  edns-subnet\n }\n steer %s {\n%s\n }\n}", db, zonesDir, extra))
	return s, backends
}

// askECS asks name/qtype over net with an ECS option for prefix ("" = none).
func askECS(t testing.TB, net, addr, name string, qtype uint16, prefix string) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.SetEdns0(1232, false)
	if prefix != "" {
		p := netip.MustParsePrefix(prefix)
		fam := uint16(1)
		if p.Addr().Is6() {
			fam = 2
		}
		m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: fam, SourceNetmask: uint8(p.Bits()), Address: p.Addr().AsSlice()})
	}
	return exchange(t, net, addr, m)
}

// ecsScope returns the ECS scope of r, or -1 when r has no ECS option.
func ecsScope(r *dns.Msg) int {
	if o := r.IsEdns0(); o != nil {
		for _, e := range o.Option {
			if s, ok := e.(*dns.EDNS0_SUBNET); ok {
				return int(s.SourceScope)
			}
		}
	}
	return -1
}

func TestGeoEndToEnd(t *testing.T) {
	s, backends := geoServer(t, "")
	eventually(t, 5*time.Second, "every region checked up", func() bool {
		return slices.Equal(answers(askECS(t, "udp", s.UDP, "geo.example.com.", dns.TypeA, "203.0.113.0/24")), []string{"127.0.0.13"})
	})
	cases := []struct {
		what, name string
		qtype      uint16
		ecs        string
		want       []string
		ttl        uint32
		scope      int
	}{
		{"networks rule", "geo", dns.TypeA, "192.0.2.0/24", []string{"127.0.0.12"}, 60, 24},
		{"country GB", "geo", dns.TypeA, "203.0.113.0/24", []string{"127.0.0.13"}, 60, 24},
		{"country US", "geo", dns.TypeA, "198.51.100.0/24", []string{"127.0.0.11"}, 60, 24},
		{"continent EU (DE listed by no region)", "geo", dns.TypeA, "100.64.1.0/24", []string{"127.0.0.13"}, 60, 24},
		{"unknown (AS): file order", "geo", dns.TypeA, "100.64.2.0/24", []string{"127.0.0.11"}, 60, 24},
		{"IPv6 client, country FR", "geo", dns.TypeAAAA, "2001:db8:ff::/48", []string{"2001:db8:13::1"}, 60, 48},
		{"ECS /0: not located", "geo", dns.TypeA, "0.0.0.0/0", []string{"127.0.0.11"}, 60, 0},
		{"no ECS: the source address (loopback, unknown)", "geo", dns.TypeA, "", []string{"127.0.0.11"}, 60, -1},
		{"nearest: Seattle", "near", dns.TypeA, "198.51.100.0/24", []string{"127.0.0.12"}, 60, 24},
		{"nearest: Frankfurt", "near", dns.TypeA, "100.64.1.0/24", []string{"127.0.0.13"}, 60, 24},
		{"nearest: Tokyo", "near", dns.TypeA, "100.64.2.0/24", []string{"127.0.0.12"}, 60, 24},
		{"failover: scope 0", "static-fo", dns.TypeA, "203.0.113.0/24", []string{"127.0.0.21"}, 30, 0},
		{"static record: scope 0", "ns1", dns.TypeA, "203.0.113.0/24", []string{"192.0.2.53"}, 3600, 0},
	}
	check := func(t *testing.T, net string) {
		for _, c := range cases {
			r := askECS(t, net, map[string]string{"udp": s.UDP, "tcp": s.TCP}[net], c.name+".example.com.", c.qtype, c.ecs)
			if got := answers(r); !slices.Equal(got, c.want) || r.Answer[0].Header().Ttl != c.ttl || ecsScope(r) != c.scope || !r.Authoritative {
				t.Errorf("%s over %s: %v ttl %d scope %d aa %t, want %v ttl %d scope %d", c.what, net, got, r.Answer[0].Header().Ttl, ecsScope(r), r.Authoritative, c.want, c.ttl, c.scope)
			}
		}
	}
	check(t, "udp")
	check(t, "tcp")

	// The client's region goes down: its fallback regions, in order, with the degraded TTL.
	backends["eu-west"].Stop()
	eventually(t, 5*time.Second, "GB moves to eu-west's fallback us-east", func() bool {
		r := askECS(t, "udp", s.UDP, "geo.example.com.", dns.TypeA, "203.0.113.0/24")
		return slices.Equal(answers(r), []string{"127.0.0.11"}) && r.Answer[0].Header().Ttl == 5 && ecsScope(r) == 24
	})
	backends["us-east"].Stop()
	eventually(t, 5*time.Second, "GB, with eu-west and us-east down, gets us-west (file order)", func() bool {
		return slices.Equal(answers(askECS(t, "udp", s.UDP, "geo.example.com.", dns.TypeA, "203.0.113.0/24")), []string{"127.0.0.12"})
	})
	// The nearest is down: the next nearest.
	backends["us-east"].Start(t)
	backends["us-west"].Stop()
	eventually(t, 5*time.Second, "Seattle's nearest (us-west) down: us-east, degraded", func() bool {
		r := askECS(t, "udp", s.UDP, "near.example.com.", dns.TypeA, "198.51.100.0/24")
		return slices.Equal(answers(r), []string{"127.0.0.11"}) && r.Answer[0].Header().Ttl == 5
	})
	backends["eu-west"].Start(t)
	eventually(t, 5*time.Second, "GB back on eu-west", func() bool {
		r := askECS(t, "udp", s.UDP, "geo.example.com.", dns.TypeA, "203.0.113.0/24")
		return slices.Equal(answers(r), []string{"127.0.0.13"}) && r.Answer[0].Header().Ttl == 60
	})
}

// rawECS sends name A with an ECS option whose bytes are data (family, source, scope,
// address), as a client that packs it by hand would.
func rawECS(t testing.TB, addr, name string, data []byte) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	m.SetEdns0(1232, false)
	m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_LOCAL{Code: dns.EDNS0SUBNET, Data: data})
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%x: %v", data, err)
	}
	return r
}

func TestMalformedECSEndToEnd(t *testing.T) {
	s, _ := geoServer(t, "")
	for _, c := range []struct {
		what string
		data []byte
	}{
		{"address bits beyond the source prefix", []byte{0, 1, 24, 0, 203, 0, 113, 7}},
		{"unknown family", []byte{0, 3, 24, 0, 203, 0, 113}},
		{"source prefix over 32", []byte{0, 1, 33, 0, 203, 0, 113, 0, 0}},
		{"IPv6 bits beyond the prefix", []byte{0, 2, 32, 0, 0x20, 0x01, 0x0d, 0xb8, 0xff}},
		{"too short to hold a family", []byte{0}},
		{"an octet more than /24 needs", []byte{0, 1, 24, 0, 203, 0, 113, 0}},
		{"an octet fewer than /24 needs", []byte{0, 1, 24, 0, 203, 0}},
		{"IPv6 /48 with 8 octets", []byte{0, 2, 48, 0, 0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0}},
	} {
		if r := rawECS(t, s.UDP, "geo.example.com.", c.data); r.Rcode != dns.RcodeFormatError {
			t.Errorf("%s: %s, want FORMERR", c.what, dns.RcodeToString[r.Rcode])
		}
	}
	// A well-formed one still works, and the server kept serving.
	if r := rawECS(t, s.UDP, "geo.example.com.", []byte{0, 1, 24, 0, 203, 0, 113}); r.Rcode != dns.RcodeSuccess || ecsScope(r) != 24 {
		t.Errorf("a good ECS option after the bad ones: %v", r)
	}
	// Well-formed with a cookie beside it (dig sends one), and /0 with family 0 (dig +subnet=0).
	m := new(dns.Msg)
	m.SetQuestion("geo.example.com.", dns.TypeA)
	m.SetEdns0(1232, false)
	m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0123456789abcdef"},
		&dns.EDNS0_LOCAL{Code: dns.EDNS0SUBNET, Data: []byte{0, 1, 20, 0, 203, 0, 112}})
	if r := exchange(t, "udp", s.UDP, m); r.Rcode != dns.RcodeSuccess || ecsScope(r) != 20 {
		t.Errorf("ECS /20 with a cookie: %v", r)
	}
	if r := rawECS(t, s.UDP, "geo.example.com.", []byte{0, 0, 0, 0}); r.Rcode != dns.RcodeSuccess {
		t.Errorf("ECS family 0, /0: %v", r)
	}
}

func TestECSOffEndToEnd(t *testing.T) {
	s, _ := geoServer(t, "  ecs off")
	// The ECS option matches the networks rule of us-west, but with ecs off steer locates the
	// client by its source (loopback: unknown, file order) and echoes no ECS. The geoip plugin
	// reads ECS by its own edns-subnet option, so a server with ecs off should configure geoip
	// without it (README); this prefix is in no geoip record.
	eventually(t, 5*time.Second, "ecs off: the source decides", func() bool {
		r := askECS(t, "udp", s.UDP, "geo.example.com.", dns.TypeA, "192.0.2.0/24")
		return slices.Equal(answers(r), []string{"127.0.0.11"}) && ecsScope(r) == -1
	})
}
