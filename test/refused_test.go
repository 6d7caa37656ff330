package test

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

const refusedPolicy = `zone: example.com.
ns: [ns1.example.com.]
records: |
  ns1 A 192.0.2.53
services:
  www:
    pools:
      - endpoints: [192.0.2.10]
`

const netMaster = `$ORIGIN example.net.
$TTL 300
@    SOA ns1.example.net. hostmaster.example.net. 1 7200 3600 1209600 60
@    NS  ns1.example.net.
ns1  A   203.0.113.53
www  A   203.0.113.1
`

// comMaster serves example.com too, behind steer: it holds a name that steer does not.
const comMaster = `$ORIGIN example.com.
$TTL 300
@     SOA ns1.example.com. hostmaster.example.com. 1 7200 3600 1209600 60
@     NS  ns1.example.com.
extra A   203.0.113.7
`

// startRoot serves example.com with steer in a server block for the root zone, so that every
// query reaches the plugin; opts is the body of the steer directive's block, next the rest of
// the server block, with DIR for the folder of db.example.net and db.example.com.
func startRoot(t *testing.T, opts, next string) *server {
	t.Helper()
	dir := t.TempDir()
	pol := writeFile(t, dir, "example.com.yaml", refusedPolicy)
	writeFile(t, dir, "db.example.net", netMaster)
	writeFile(t, dir, "db.example.com", comMaster)
	if opts != "" {
		opts = " {\n        " + opts + "\n    }"
	}
	return start(t, fmt.Sprintf(`.:0 {
    bind 127.0.0.1
    steer %s%s
%s
}`, pol, opts, strings.ReplaceAll(next, "DIR", dir)))
}

type query struct {
	name  string
	qtype uint16
}

func TestRefused(t *testing.T) {
	s := startRoot(t, "", "")
	refused := []query{
		{"www.example.net.", dns.TypeA},
		{"example.net.", dns.TypeSOA},
		{".", dns.TypeNS},
		{".", dns.TypeSOA},
		{"com.", dns.TypeNS},             // the zone's parent
		{"notexample.com.", dns.TypeA},   // not on a label boundary
		{"example.com.evil.", dns.TypeA}, // the zone as a prefix
		{"www.example.COM.org.", dns.TypeA},
		{"localhost.", dns.TypeA},
		{"1.0.0.127.in-addr.arpa.", dns.TypePTR},
		{"www.example.net.", dns.TypeANY},
	}
	for _, proto := range []string{"udp", "tcp"} {
		addr := s.UDP
		if proto == "tcp" {
			addr = s.TCP
		}
		for _, q := range refused {
			r := ask(t, proto, addr, q.name, q.qtype)
			if r.Rcode != dns.RcodeRefused || len(r.Answer) != 0 || r.Authoritative {
				t.Errorf("%s %s %s: rcode %s aa %v answer %v, want REFUSED, no AA, no answer", proto, q.name,
					dns.TypeToString[q.qtype], dns.RcodeToString[r.Rcode], r.Authoritative, r.Answer)
			}
			if len(r.Question) != 1 || r.Question[0].Name != q.name {
				t.Errorf("%s %s: question echoed as %v", proto, q.name, r.Question)
			}
		}
		// The zone itself is served: by the steered name, NXDOMAIN for a name it does not hold.
		if r := ask(t, proto, addr, "www.example.com.", dns.TypeA); r.Rcode != dns.RcodeSuccess || !slices.Equal(answers(r), []string{"192.0.2.10"}) {
			t.Errorf("%s www.example.com A: %s %v", proto, dns.RcodeToString[r.Rcode], answers(r))
		}
		if r := ask(t, proto, addr, "extra.example.com.", dns.TypeA); r.Rcode != dns.RcodeNameError || !r.Authoritative {
			t.Errorf("%s extra.example.com A: %s aa %v, want NXDOMAIN and AA", proto, dns.RcodeToString[r.Rcode], r.Authoritative)
		}
	}
}

func TestRefusedFallthrough(t *testing.T) {
	s := startRoot(t, "fallthrough", "    file DIR/db.example.net example.net\n    file DIR/db.example.com example.com")
	for _, proto := range []string{"udp", "tcp"} {
		addr := s.UDP
		if proto == "tcp" {
			addr = s.TCP
		}
		// Outside every policy file: passed to file, which serves example.net.
		r := ask(t, proto, addr, "www.example.net.", dns.TypeA)
		if r.Rcode != dns.RcodeSuccess || !r.Authoritative || !slices.Equal(answers(r), []string{"203.0.113.1"}) {
			t.Errorf("%s www.example.net A: %s aa %v %v, want file's answer 203.0.113.1", proto, dns.RcodeToString[r.Rcode], r.Authoritative, answers(r))
		}
		// A name steer's zone does not hold: passed on too, and file holds it.
		r = ask(t, proto, addr, "extra.example.com.", dns.TypeA)
		if r.Rcode != dns.RcodeSuccess || !slices.Equal(answers(r), []string{"203.0.113.7"}) {
			t.Errorf("%s extra.example.com A: %s %v, want file's answer 203.0.113.7", proto, dns.RcodeToString[r.Rcode], answers(r))
		}
		// What steer holds, steer answers.
		r = ask(t, proto, addr, "www.example.com.", dns.TypeA)
		if r.Rcode != dns.RcodeSuccess || !slices.Equal(answers(r), []string{"192.0.2.10"}) {
			t.Errorf("%s www.example.com A: %s %v, want steer's answer", proto, dns.RcodeToString[r.Rcode], answers(r))
		}
		r = ask(t, proto, addr, "ns1.example.com.", dns.TypeA)
		if r.Rcode != dns.RcodeSuccess || !slices.Equal(answers(r), []string{"192.0.2.53"}) {
			t.Errorf("%s ns1.example.com A: %s %v, want steer's answer", proto, dns.RcodeToString[r.Rcode], answers(r))
		}
		// NODATA is an answer of steer's, not passed on.
		r = ask(t, proto, addr, "ns1.example.com.", dns.TypeMX)
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 || len(r.Ns) != 1 || r.Ns[0].(*dns.SOA).Serial == 1 {
			t.Errorf("%s ns1.example.com MX: %s %v %v, want steer's NODATA", proto, dns.RcodeToString[r.Rcode], r.Answer, r.Ns)
		}
		// Served by no one: the last plugin refuses.
		r = ask(t, proto, addr, "www.example.org.", dns.TypeA)
		if r.Rcode != dns.RcodeRefused {
			t.Errorf("%s www.example.org A: %s, want REFUSED", proto, dns.RcodeToString[r.Rcode])
		}
	}
}

func TestRefusedFallthroughZones(t *testing.T) {
	s := startRoot(t, "fallthrough example.net", "    file DIR/db.example.net example.net\n    file DIR/db.example.com example.com")
	for _, proto := range []string{"udp", "tcp"} {
		addr := s.UDP
		if proto == "tcp" {
			addr = s.TCP
		}
		r := ask(t, proto, addr, "www.example.net.", dns.TypeA)
		if r.Rcode != dns.RcodeSuccess || !slices.Equal(answers(r), []string{"203.0.113.1"}) {
			t.Errorf("%s www.example.net A: %s %v, want file's answer", proto, dns.RcodeToString[r.Rcode], answers(r))
		}
		// example.com is not among the fallthrough zones: steer's NXDOMAIN stands.
		r = ask(t, proto, addr, "extra.example.com.", dns.TypeA)
		if r.Rcode != dns.RcodeNameError || len(r.Answer) != 0 {
			t.Errorf("%s extra.example.com A: %s %v, want steer's NXDOMAIN", proto, dns.RcodeToString[r.Rcode], answers(r))
		}
		// Outside the fallthrough zones and every policy file: refused by steer.
		r = ask(t, proto, addr, "www.example.org.", dns.TypeA)
		if r.Rcode != dns.RcodeRefused {
			t.Errorf("%s www.example.org A: %s, want REFUSED", proto, dns.RcodeToString[r.Rcode])
		}
	}
}

// garbage returns packets that are not well-formed DNS queries.
func garbage() [][]byte {
	hdr := func(id, flags, qd, an, ns, ar uint16) []byte {
		b := make([]byte, 12)
		for i, v := range []uint16{id, flags, qd, an, ns, ar} {
			binary.BigEndian.PutUint16(b[2*i:], v)
		}
		return b
	}
	q := func(m *dns.Msg) []byte {
		b, err := m.Pack()
		if err != nil {
			panic(err)
		}
		return b
	}
	valid := new(dns.Msg)
	valid.SetQuestion("www.example.com.", dns.TypeA)
	valid.Id = 4242
	wire := q(valid)
	rnd := rand.New(rand.NewPCG(1, 2))
	junk := make([]byte, 4000)
	for i := range junk {
		junk[i] = byte(rnd.UintN(256))
	}
	response := valid.Copy()
	response.Response = true
	two := valid.Copy()
	two.Question = append(two.Question, dns.Question{Name: "example.com.", Qtype: dns.TypeSOA, Qclass: dns.ClassINET})
	return [][]byte{
		{},
		{0},
		wire[:11],                  // shorter than a header
		hdr(1, 0x0100, 1, 0, 0, 0), // a question announced, none there
		append(hdr(2, 0x0100, 1, 0, 0, 0), 63, 'a', 'b'),                                                           // a label longer than the packet
		append(hdr(3, 0x0100, 1, 0, 0, 0), 0xc0, 12, 0, 1, 0, 1),                                                   // a compression pointer to itself
		append(hdr(4, 0x0100, 1, 0, 0, 0), 0xc0, 200, 0, 1, 0, 1),                                                  // a pointer past the end
		append(hdr(5, 0x0100, 1, 0, 0, 1), wire[12:]...),                                                           // an additional record announced, none there
		append(hdr(6, 0x0100, 0, 1, 0, 0), wire[12:]...),                                                           // no question, an answer
		append(hdr(7, 0x0100, 1, 0, 0, 1), append(wire[12:], 0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 9, 0, 8, 0, 20)...), // OPT with a cut option
		append(slices.Clone(wire), 0xde, 0xad, 0xbe, 0xef),                                                         // trailing bytes
		q(response), // a response
		q(two),      // two questions
		junk[:12],
		junk[:300],
		junk,
	}
}

// nextWorks asks www.example.com A on conn, skipping replies to what was sent before.
func nextWorks(t *testing.T, conn net.Conn, id uint16) {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion("www.example.com.", dns.TypeA)
	m.Id = id
	buf, _ := m.Pack()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write(buf); err != nil {
		t.Fatal(err)
	}
	in := make([]byte, 65535)
	for {
		n, err := conn.Read(in)
		if err != nil {
			t.Fatalf("no reply to a valid query after garbage: %v", err)
		}
		r := new(dns.Msg)
		if r.Unpack(in[:n]) != nil || r.Id != id || len(r.Question) != 1 || r.Question[0] != m.Question[0] {
			continue // a reply to the garbage (FORMERR), or garbage back
		}
		if r.Rcode != dns.RcodeSuccess || !slices.Equal(answers(r), []string{"192.0.2.10"}) {
			t.Fatalf("after garbage: %s %v", dns.RcodeToString[r.Rcode], answers(r))
		}
		return
	}
}

func TestGarbage(t *testing.T) {
	s := startRoot(t, "", "")
	conn, err := net.Dial("udp", s.UDP)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i, g := range garbage() {
		if _, err := conn.Write(g); err != nil {
			t.Fatal(err)
		}
		nextWorks(t, conn, uint16(50000+i))
	}

	// Over TCP: garbage in a length-prefixed frame, and a frame that announces more than comes.
	for i, g := range append(garbage(), nil) {
		c, err := net.Dial("tcp", s.TCP)
		if err != nil {
			t.Fatal(err)
		}
		frame := binary.BigEndian.AppendUint16(nil, uint16(len(g)))
		if g == nil {
			frame = []byte{0xff, 0xff, 1, 2, 3}
		}
		c.Write(append(frame, g...))
		c.Close()
		r := ask(t, "tcp", s.TCP, "www.example.com.", dns.TypeA)
		if !slices.Equal(answers(r), []string{"192.0.2.10"}) {
			t.Fatalf("after TCP garbage %d: %s %v", i, dns.RcodeToString[r.Rcode], answers(r))
		}
	}
}

// TestOddQueries: well-formed queries that the plugin does not answer with data.
func TestOddQueries(t *testing.T) {
	s := startRoot(t, "", "")
	cases := []struct {
		what   string
		make   func(m *dns.Msg)
		rcodes []int // acceptable rcodes
	}{
		{"UPDATE", func(m *dns.Msg) { m.Opcode = dns.OpcodeUpdate }, []int{dns.RcodeNotImplemented}},
		{"NOTIFY", func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify }, []int{dns.RcodeNotImplemented}}, // no secondary zones here
		{"IQUERY", func(m *dns.Msg) { m.Opcode = dns.OpcodeIQuery }, []int{dns.RcodeNotImplemented}},
		{"AXFR", func(m *dns.Msg) { m.Question[0].Qtype = dns.TypeAXFR }, []int{dns.RcodeRefused}},
		{"IXFR", func(m *dns.Msg) { m.Question[0].Qtype = dns.TypeIXFR }, []int{dns.RcodeRefused}},
		{"EDNS version 1", func(m *dns.Msg) { m.SetEdns0(1232, false); m.IsEdns0().SetVersion(1) }, []int{dns.RcodeBadVers}},
		{"qtype 0", func(m *dns.Msg) { m.Question[0].Qtype = 0 }, []int{dns.RcodeSuccess}}, // NODATA
	}
	for _, proto := range []string{"udp", "tcp"} {
		addr := s.UDP
		if proto == "tcp" {
			addr = s.TCP
		}
		for _, c := range cases {
			m := new(dns.Msg)
			m.SetQuestion("example.com.", dns.TypeSOA)
			c.make(m)
			r := exchange(t, proto, addr, m)
			if !slices.Contains(c.rcodes, r.Rcode) {
				t.Errorf("%s %s: rcode %s, want one of %v", proto, c.what, dns.RcodeToString[r.Rcode], c.rcodes)
			}
			if len(r.Answer) != 0 {
				t.Errorf("%s %s: answered %v", proto, c.what, r.Answer)
			}
		}
		if r := ask(t, proto, addr, "www.example.com.", dns.TypeA); !slices.Equal(answers(r), []string{"192.0.2.10"}) {
			t.Errorf("%s: after odd queries: %s %v", proto, dns.RcodeToString[r.Rcode], answers(r))
		}
	}
}
