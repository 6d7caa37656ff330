package test

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/coredns/caddy"
	"github.com/miekg/dns"
)

// The differential tests serve the same static records twice from one server: once with the
// CoreDNS file plugin from a master file, once with steer from a policy file, each in its own
// server block on its own port, and compare every byte a client sees.

// diffRecords are the static records of the compared zone, the same text in both files. The
// record with an explicit TTL comes last, so that no record after it could inherit that TTL
// (see TestDifferentialDefaultTTL for that case).
const diffRecords = `ns1        A     192.0.2.53
ns2        A     198.51.100.53
ns2        AAAA  2001:db8::53
@          MX    10 mail
@          MX    20 mail2.example.net.
@          TXT   "v=spf1 -all"
@          TXT   "hello" "world"
@          A     192.0.2.1
@          AAAA  2001:db8::1
mail       A     192.0.2.25
mail       AAAA  2001:db8::25
*.wild     A     192.0.2.80
*.wild     TXT   "wildcard"
host.wild  A     192.0.2.81
*.wcname   CNAME mail
alias      CNAME mail
out        CNAME www.example.net.
chain1     CNAME chain2
chain2     CNAME chain3
chain3     A     192.0.2.33
dangling   CNAME nothere
sub        NS    ns.sub
sub        NS    ns.other.example.net.
sub        DS    60485 13 2 D4B7D520E7BB5F0F67674A0CCEB1E3E0614B93C4F9E99B8383F6A1E4469DA50A
ns.sub     A     192.0.2.99
ns.sub     AAAA  2001:db8::99
sub2       NS    ns.example.net.
a.b.c      A     192.0.2.3
_sip._tcp  SRV   10 60 5060 sipserver
sipserver  A     192.0.2.50
multi      A     192.0.2.61
multi      A     192.0.2.62
multi      A     192.0.2.63
multi      A     192.0.2.64
several    A     192.0.2.70
several    AAAA  2001:db8::70
several    TXT   "several types"
several    MX    5 mail
several    TYPE65280 \# 4 0a0b0c0d
unk        TYPE65280 \# 3 abcdef
ttl300 300 A     192.0.2.30
`

// The zone's TTL is larger than its minttl, so that the negative-answer SOA TTL differs.
const diffPolicy = `zone: example.org.
ttl: 3600
ns: [ns1.example.org., ns2.example.org.]
soa: {mbox: hostmaster.example.org., serial: 2024010101, refresh: 7200, retry: 3600, expire: 1209600, minttl: 60}
records: |
%s`

const diffMaster = `$ORIGIN example.org.
$TTL 3600
@  SOA  ns1.example.org. hostmaster.example.org. 2024010101 7200 3600 1209600 60
@  NS   ns1.example.org.
@  NS   ns2.example.org.
%s`

// diffPair is one running server with the two server blocks.
type diffPair struct {
	file, steer string // 127.0.0.1:port of each block, for UDP and TCP
}

// freePort returns a port that is free now for TCP on 127.0.0.1 and for UDP on the test
// servers' loopback address.
func freePort(t testing.TB) int {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("%s:%d", loopback, port))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no port free for both UDP and TCP on 127.0.0.1")
	return 0
}

// startOnPorts starts one server from the Corefile that corefile makes for n distinct free
// ports. Server blocks of the same zone cannot share port 0, hence the chosen ports; a port
// taken by someone else in between is retried with new ones.
func startOnPorts(t testing.TB, n int, corefile func(ports []int) string) []int {
	t.Helper()
	var lastErr error
	for range 5 {
		var ports []int
		for len(ports) < n {
			if p := freePort(t); !slices.Contains(ports, p) {
				ports = append(ports, p)
			}
		}
		cf := strings.ReplaceAll(corefile(ports), "bind 127.0.0.1", "bind "+loopback)
		startMu.Lock()
		inst, err := caddy.Start(input(cf))
		startMu.Unlock()
		if err == nil {
			t.Cleanup(func() {
				inst.Stop()
				inst.ShutdownCallbacks()
			})
			return ports
		}
		lastErr = err
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	t.Fatalf("starting the server: %v", lastErr)
	return nil
}

// startDiff serves policy with steer and master with file, as zone example.org in one server.
func startDiff(t testing.TB, policy, master string) diffPair {
	t.Helper()
	dir := t.TempDir()
	pol := writeFile(t, dir, "example.org.yaml", policy)
	db := writeFile(t, dir, "db.example.org", master)
	ports := startOnPorts(t, 2, func(p []int) string {
		return fmt.Sprintf(`example.org:%d {
    bind 127.0.0.1
    file %s
}
example.org:%d {
    bind 127.0.0.1
    steer %s
}`, p[0], db, p[1], pol)
	})
	return diffPair{file: fmt.Sprintf("%s:%d", loopback, ports[0]), steer: fmt.Sprintf("%s:%d", loopback, ports[1])}
}

// indent makes records the body of a YAML literal block.
func indent(records string) string {
	var b strings.Builder
	for l := range strings.SplitSeq(strings.TrimRight(records, "\n"), "\n") {
		b.WriteString("  " + l + "\n")
	}
	return b.String()
}

// diffQuery is one question of the comparison.
type diffQuery struct {
	name  string
	qtype uint16
}

// diffQueries are asked of both blocks over UDP and TCP, without EDNS, with EDNS and with DO.
// ANY at a name with data is left out: there the two answer differently on purpose
// (TestDifferentialANY).
var diffQueries = []diffQuery{
	// Apex.
	{"example.org.", dns.TypeSOA},
	{"example.org.", dns.TypeNS},
	{"example.org.", dns.TypeMX},
	{"example.org.", dns.TypeTXT},
	{"example.org.", dns.TypeA},
	{"example.org.", dns.TypeAAAA},
	{"example.org.", dns.TypeSRV},   // NODATA
	{"example.org.", dns.TypeCNAME}, // NODATA
	{"example.org.", dns.TypeDS},    // NODATA
	{"example.org.", 65280},         // unknown type, NODATA
	{"EXAMPLE.Org.", dns.TypeSOA},
	{"eXaMpLe.OrG.", dns.TypeNS},
	// Wildcard.
	{"x.wild.example.org.", dns.TypeA},
	{"X.Wild.Example.ORG.", dns.TypeA},
	{"x.wild.example.org.", dns.TypeTXT},
	{"x.wild.example.org.", dns.TypeMX},    // wildcard NODATA
	{"x.wild.example.org.", dns.TypeCNAME}, // wildcard NODATA
	{"x.wild.example.org.", 65280},         // wildcard NODATA, unknown type
	{"deep.x.wild.example.org.", dns.TypeA},
	{"host.wild.example.org.", dns.TypeA},
	{"host.wild.example.org.", dns.TypeTXT}, // the name exists: no wildcard
	{"sub.host.wild.example.org.", dns.TypeA},
	{"wild.example.org.", dns.TypeA}, // empty non-terminal above the wildcard
	{"y.wcname.example.org.", dns.TypeA},
	{"y.wcname.example.org.", dns.TypeCNAME},
	// CNAMEs.
	{"alias.example.org.", dns.TypeA},
	{"alias.example.org.", dns.TypeAAAA},
	{"alias.example.org.", dns.TypeMX},
	{"alias.example.org.", dns.TypeCNAME},
	{"ALIAS.example.org.", dns.TypeA},
	{"alias.example.org.", dns.TypeANY}, // a CNAME, not a name with data of its own
	{"out.example.org.", dns.TypeA},
	{"out.example.org.", dns.TypeCNAME},
	{"chain1.example.org.", dns.TypeA},
	{"chain1.example.org.", dns.TypeTXT},
	{"chain2.example.org.", dns.TypeA},
	{"dangling.example.org.", dns.TypeA},
	// Delegations.
	{"sub.example.org.", dns.TypeNS},
	{"sub.example.org.", dns.TypeA},
	{"sub.example.org.", dns.TypeDS},
	{"SUB.example.org.", dns.TypeDS},
	{"host.sub.example.org.", dns.TypeA},
	{"ns.sub.example.org.", dns.TypeA},
	{"ns.sub.example.org.", dns.TypeAAAA},
	{"deep.host.sub.example.org.", dns.TypeMX},
	{"host.sub.example.org.", dns.TypeANY},
	{"sub2.example.org.", dns.TypeNS},
	{"sub2.example.org.", dns.TypeDS}, // no DS at this cut: NODATA
	{"x.sub2.example.org.", dns.TypeA},
	// Empty non-terminals.
	{"a.b.c.example.org.", dns.TypeA},
	{"a.b.c.example.org.", dns.TypeAAAA},
	{"b.c.example.org.", dns.TypeA},
	{"B.C.example.org.", dns.TypeTXT},
	{"c.example.org.", dns.TypeA},
	{"_tcp.example.org.", dns.TypeSRV},
	// NXDOMAIN.
	{"nope.example.org.", dns.TypeA},
	{"NOPE.Example.Org.", dns.TypeAAAA},
	{"nope.b.c.example.org.", dns.TypeA},
	{"x.a.b.c.example.org.", dns.TypeA},
	{"nope.example.org.", 65280},
	{"nope.example.org.", dns.TypeANY},
	{"nothere.example.org.", dns.TypeCNAME},
	// Additional-section processing.
	{"_sip._tcp.example.org.", dns.TypeSRV},
	{"_SIP._tcp.example.org.", dns.TypeSRV},
	{"several.example.org.", dns.TypeMX},
	// Sets and names with several types.
	{"multi.example.org.", dns.TypeA},
	{"multi.example.org.", dns.TypeAAAA}, // NODATA
	{"several.example.org.", dns.TypeA},
	{"several.example.org.", dns.TypeAAAA},
	{"several.example.org.", dns.TypeTXT},
	{"several.example.org.", 65280},
	{"several.example.org.", dns.TypeSRV}, // NODATA
	{"unk.example.org.", 65280},
	{"unk.example.org.", dns.TypeA}, // NODATA
	{"ns1.example.org.", dns.TypeA},
	{"ns2.example.org.", dns.TypeAAAA},
	{"mail.example.org.", dns.TypeA},
	{"mail.example.org.", dns.TypeNS}, // NODATA
	{"ttl300.example.org.", dns.TypeA},
}

// ednsModes are the three ways a query is asked.
var ednsModes = []struct {
	name string
	set  func(m *dns.Msg)
}{
	{"plain", func(*dns.Msg) {}},
	{"edns", func(m *dns.Msg) { m.SetEdns0(1232, false) }},
	{"do", func(m *dns.Msg) { m.SetEdns0(1232, true) }},
}

func TestDifferential(t *testing.T) {
	p := startDiff(t, fmt.Sprintf(diffPolicy, indent(diffRecords)), fmt.Sprintf(diffMaster, diffRecords))
	n := 0
	seen := map[string]int{} // kinds of answer compared, so that the comparison is not vacuous
	for _, proto := range []string{"udp", "tcp"} {
		for _, mode := range ednsModes {
			for _, q := range diffQueries {
				m := new(dns.Msg)
				m.SetQuestion(q.name, q.qtype)
				mode.set(m)
				want := exchange(t, proto, p.file, m.Copy())
				got := exchange(t, proto, p.steer, m.Copy())
				n++
				seen[kind(want)]++
				if want.Rcode != dns.RcodeSuccess && want.Rcode != dns.RcodeNameError {
					t.Errorf("%s %s %s: file answered %s: the zone is not served as the test means", proto, q.name,
						dns.TypeToString[q.qtype], dns.RcodeToString[want.Rcode])
				}
				normalizeNegativeSOA(want)
				if w, g := canonical(want), canonical(got); w != g {
					t.Errorf("%s %s %s %s: steer differs from file\n--- file (negative SOA TTL normalized)\n%s--- steer\n%s",
						proto, mode.name, q.name, dns.TypeToString[q.qtype], w, g)
				}
				if got.Id != m.Id {
					t.Errorf("%s %s %s: reply id %d, query id %d", proto, q.name, dns.TypeToString[q.qtype], got.Id, m.Id)
				}
			}
		}
	}
	for _, k := range []string{"answer", "answer+additional", "cname", "referral", "nodata", "nxdomain"} {
		if seen[k] == 0 {
			t.Errorf("no query gave a %s answer: %v", k, seen)
		}
	}
	t.Logf("%d queries compared: %v", n, seen)
}

// kind classifies an answer for the non-vacuity check of TestDifferential.
func kind(m *dns.Msg) string {
	switch {
	case m.Rcode == dns.RcodeNameError:
		return "nxdomain"
	case len(m.Answer) > 0 && m.Answer[0].Header().Rrtype == dns.TypeCNAME:
		return "cname"
	case len(m.Answer) > 0 && len(m.Extra) > 0 && m.Extra[0].Header().Rrtype != dns.TypeOPT:
		return "answer+additional"
	case len(m.Answer) > 0:
		return "answer"
	case !m.Authoritative && len(m.Ns) > 0 && m.Ns[0].Header().Rrtype == dns.TypeNS:
		return "referral"
	case len(m.Ns) > 0 && m.Ns[0].Header().Rrtype == dns.TypeSOA:
		return "nodata"
	}
	return "other"
}

// TestDifferentialNegativeSOA asserts the first deliberate difference: in a negative answer
// steer gives the SOA the TTL min(SOA TTL, minttl) (RFC 2308 §3), file the SOA's own TTL.
func TestDifferentialNegativeSOA(t *testing.T) {
	p := startDiff(t, fmt.Sprintf(diffPolicy, indent(diffRecords)), fmt.Sprintf(diffMaster, diffRecords))
	cases := []struct {
		name  string
		qtype uint16
		rcode int
	}{
		{"nope.example.org.", dns.TypeA, dns.RcodeNameError},
		{"NoPe.example.org.", dns.TypeAAAA, dns.RcodeNameError},
		{"sub.host.wild.example.org.", dns.TypeA, dns.RcodeNameError},
		{"x.a.b.c.example.org.", dns.TypeA, dns.RcodeNameError},
		{"unknown-name.example.org.", 65280, dns.RcodeNameError},
		{"dangling.example.org.", dns.TypeA, dns.RcodeNameError}, // a CNAME to nothing
		{"mail.example.org.", dns.TypeTXT, dns.RcodeSuccess},     // NODATA
		{"example.org.", 65280, dns.RcodeSuccess},                // NODATA at the apex
		{"multi.example.org.", dns.TypeAAAA, dns.RcodeSuccess},   // NODATA at a set
		{"several.example.org.", dns.TypeSRV, dns.RcodeSuccess},  // NODATA at a name with several types
		{"x.wild.example.org.", dns.TypeMX, dns.RcodeSuccess},    // wildcard NODATA
		{"b.c.example.org.", dns.TypeA, dns.RcodeSuccess},        // empty non-terminal
		{"sub2.example.org.", dns.TypeDS, dns.RcodeSuccess},      // NODATA for DS at a cut
		// Positive answers and referrals carry no SOA in the authority section.
		{"example.org.", dns.TypeSOA, dns.RcodeSuccess},
		{"alias.example.org.", dns.TypeMX, dns.RcodeSuccess},
		{"ns.sub.example.org.", dns.TypeA, dns.RcodeSuccess},
	}
	for _, proto := range []string{"udp", "tcp"} {
		for _, c := range cases {
			f := ask(t, proto, p.file, c.name, c.qtype)
			s := ask(t, proto, p.steer, c.name, c.qtype)
			if f.Rcode != c.rcode || s.Rcode != c.rcode {
				t.Errorf("%s %s %s: rcode file %s steer %s, want %s", proto, c.name, dns.TypeToString[c.qtype],
					dns.RcodeToString[f.Rcode], dns.RcodeToString[s.Rcode], dns.RcodeToString[c.rcode])
			}
			fs, ss := authoritySOA(f), authoritySOA(s)
			if (fs == nil) != (ss == nil) {
				t.Errorf("%s %s %s: SOA in authority: file %v steer %v", proto, c.name, dns.TypeToString[c.qtype], fs, ss)
				continue
			}
			if fs == nil {
				continue
			}
			if fs.Hdr.Ttl != 3600 {
				t.Errorf("%s %s %s: file's negative SOA TTL %d, want 3600 (its own TTL)", proto, c.name, dns.TypeToString[c.qtype], fs.Hdr.Ttl)
			}
			if ss.Hdr.Ttl != 60 {
				t.Errorf("%s %s %s: steer's negative SOA TTL %d, want 60 = min(SOA TTL 3600, minttl 60)", proto, c.name, dns.TypeToString[c.qtype], ss.Hdr.Ttl)
			}
			fs.Hdr.Ttl = ss.Hdr.Ttl
			if fs.String() != ss.String() {
				t.Errorf("%s %s %s: negative SOA differs beyond its TTL:\nfile  %s\nsteer %s", proto, c.name, dns.TypeToString[c.qtype], fs, ss)
			}
		}
	}
}

// TestDifferentialANY asserts the second deliberate difference: ANY at a name with data gets
// an RFC 8482 §4.2 answer (one synthesized HINFO "RFC8482"), where file answers an empty
// NOERROR.
func TestDifferentialANY(t *testing.T) {
	p := startDiff(t, fmt.Sprintf(diffPolicy, indent(diffRecords)), fmt.Sprintf(diffMaster, diffRecords))
	names := []string{
		"example.org.", "EXAMPLE.ORG.", "mail.example.org.", "multi.example.org.", "several.example.org.",
		"unk.example.org.", "x.wild.example.org.", "Deep.X.wild.example.org.", "host.wild.example.org.",
		"a.b.c.example.org.", "_sip._tcp.example.org.", "chain3.example.org.",
		"sub.example.org.", "ns.sub.example.org.", // at and below a cut: referrals
	}
	for _, proto := range []string{"udp", "tcp"} {
		for _, mode := range ednsModes {
			for _, name := range names {
				m := new(dns.Msg)
				m.SetQuestion(name, dns.TypeANY)
				mode.set(m)
				f := exchange(t, proto, p.file, m.Copy())
				s := exchange(t, proto, p.steer, m.Copy())
				where := fmt.Sprintf("%s %s ANY %s", proto, mode.name, name)
				if name == "sub.example.org." || name == "ns.sub.example.org." {
					// Referrals: the same from both; the data is not this zone's to answer.
					if canonical(f) != canonical(s) {
						t.Errorf("%s: steer differs from file\n--- file\n%s--- steer\n%s", where, canonical(f), canonical(s))
					}
					continue
				}
				if f.Rcode != dns.RcodeSuccess || len(f.Answer) != 0 {
					t.Errorf("%s: file answered %s %v; the test assumes file's empty NOERROR", where, dns.RcodeToString[f.Rcode], f.Answer)
				}
				if s.Rcode != dns.RcodeSuccess || !s.Authoritative || len(s.Answer) != 1 {
					t.Fatalf("%s: steer answered\n%s\nwant NOERROR, AA and one HINFO", where, s)
				}
				h, ok := s.Answer[0].(*dns.HINFO)
				if !ok || h.Cpu != "RFC8482" || h.Os != "" || !strings.EqualFold(h.Hdr.Name, name) || h.Hdr.Class != dns.ClassINET {
					t.Errorf("%s: steer answered %v, want %s HINFO \"RFC8482\" \"\"", where, s.Answer[0], name)
				}
				if len(s.Ns) != 0 {
					t.Errorf("%s: authority section %v, want none beside the HINFO", where, s.Ns)
				}
				if s.Question[0] != m.Question[0] {
					t.Errorf("%s: question echoed as %v", where, s.Question[0])
				}
				// Everything but the sections is as file has it.
				fh, sh := f.Copy(), s.Copy()
				fh.Answer, fh.Ns, sh.Answer, sh.Ns = nil, nil, nil, nil
				if canonical(fh) != canonical(sh) {
					t.Errorf("%s: header or additional section differs\n--- file\n%s--- steer\n%s", where, canonical(fh), canonical(sh))
				}
			}
		}
	}

	// An empty non-terminal holds no RRsets: there is nothing for RFC 8482 to withhold, and both
	// answer NODATA.
	for _, proto := range []string{"udp", "tcp"} {
		f := ask(t, proto, p.file, "b.c.example.org.", dns.TypeANY)
		s := ask(t, proto, p.steer, "b.c.example.org.", dns.TypeANY)
		normalizeNegativeSOA(f)
		if canonical(f) != canonical(s) {
			t.Errorf("%s ANY at an empty non-terminal: steer differs from file\n--- file\n%s--- steer\n%s", proto, canonical(f), canonical(s))
		}
	}
}

// TestDifferentialDefaultTTL: the policy file's ttl is the default TTL of static records, as
// $TTL is in a master file. A record with an explicit TTL does not change the TTL of the
// records after it.
func TestDifferentialDefaultTTL(t *testing.T) {
	records := `short 60 A 192.0.2.1
after    A 192.0.2.2
after    TXT "after the short one"
`
	p := startDiff(t, fmt.Sprintf(diffPolicy, indent(records)), fmt.Sprintf(diffMaster, records))
	for _, q := range []diffQuery{{"short.example.org.", dns.TypeA}, {"after.example.org.", dns.TypeA}, {"after.example.org.", dns.TypeTXT}} {
		f := ask(t, "udp", p.file, q.name, q.qtype)
		s := ask(t, "udp", p.steer, q.name, q.qtype)
		if canonical(f) != canonical(s) {
			t.Errorf("%s %s: steer differs from file\n--- file\n%s--- steer\n%s", q.name, dns.TypeToString[q.qtype], canonical(f), canonical(s))
		}
	}
}

// normalizeNegativeSOA applies to a file answer the one deliberate difference in negative
// answers: the SOA in the authority section gets min(SOA TTL, minttl).
func normalizeNegativeSOA(m *dns.Msg) {
	for i, rr := range m.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			c := dns.Copy(soa).(*dns.SOA)
			c.Hdr.Ttl = min(c.Hdr.Ttl, c.Minttl)
			m.Ns[i] = c
		}
	}
}

// authoritySOA returns the SOA of the authority section, or nil.
func authoritySOA(m *dns.Msg) *dns.SOA {
	for _, rr := range m.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			return soa
		}
	}
	return nil
}

// canonical renders everything a client sees of m but its id: the header flags, the question,
// EDNS, and the sections with TTLs. The order of RRs inside an RRset, and of the authority and
// additional sections, is not significant and is sorted; the order of the RRsets in the answer
// (a CNAME chain) is kept.
func canonical(m *dns.Msg) string {
	var b strings.Builder
	fmt.Fprintf(&b, "opcode=%s rcode=%s qr=%v aa=%v tc=%v rd=%v ra=%v z=%v ad=%v cd=%v\n",
		dns.OpcodeToString[m.Opcode], dns.RcodeToString[m.Rcode], m.Response, m.Authoritative, m.Truncated,
		m.RecursionDesired, m.RecursionAvailable, m.Zero, m.AuthenticatedData, m.CheckingDisabled)
	for _, q := range m.Question {
		fmt.Fprintf(&b, "question: %s\n", q.String())
	}
	if o := m.IsEdns0(); o != nil {
		fmt.Fprintf(&b, "edns: version=%d do=%v udp=%d flags=%#x options=%v\n", o.Version(), o.Do(), o.UDPSize(), o.Hdr.Ttl, o.Option)
	}
	var extra []dns.RR
	for _, rr := range m.Extra {
		if rr.Header().Rrtype != dns.TypeOPT {
			extra = append(extra, rr)
		}
	}
	// The answer: RRsets in order, each sorted.
	var set []string
	flush := func() {
		slices.Sort(set)
		for _, s := range set {
			b.WriteString("answer: " + s + "\n")
		}
		set = set[:0]
	}
	for i, rr := range m.Answer {
		if i > 0 {
			prev := m.Answer[i-1].Header()
			if !strings.EqualFold(prev.Name, rr.Header().Name) || prev.Rrtype != rr.Header().Rrtype {
				flush()
			}
		}
		set = append(set, rr.String())
	}
	flush()
	for _, sec := range []struct {
		name string
		rrs  []dns.RR
	}{{"authority", m.Ns}, {"additional", extra}} {
		var lines []string
		for _, rr := range sec.rrs {
			lines = append(lines, rr.String())
		}
		slices.Sort(lines)
		for _, l := range lines {
			b.WriteString(sec.name + ": " + l + "\n")
		}
	}
	return b.String()
}
