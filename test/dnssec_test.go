package test

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

const dnssecPolicy = `zone: example.com.
ttl: 3600
ns: [ns1.example.com.]
soa: {minttl: 60}
records: |
  ns1    A     192.0.2.53
  static A     192.0.2.20
  static A     192.0.2.21
  static A     192.0.2.22
  @      MX    10 static
  alias  CNAME www
services:
  www:
    pools:
      - endpoints: [192.0.2.10, 192.0.2.11, 2001:db8::10]
  cdn:
    pools:
      - endpoints: [edge-1.provider.example.]
`

// newKey generates an ECDSA P-256 key for example.com. and writes it as dnssec-keygen does:
// Kexample.com.+013+TAG.key and .private in dir. It returns the key and the files' base name.
func newKey(t testing.TB, dir string) (*dns.DNSKEY, string) {
	t.Helper()
	k := &dns.DNSKEY{
		Hdr:       dns.RR_Header{Name: "example.com.", Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 3600},
		Flags:     257,
		Protocol:  3,
		Algorithm: dns.ECDSAP256SHA256,
	}
	priv, err := k.Generate(256)
	if err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("K%s+%03d+%05d", k.Hdr.Name, k.Algorithm, k.KeyTag())
	writeFile(t, dir, base+".key", k.String()+"\n")
	writeFile(t, dir, base+".private", k.PrivateKeyString(priv))
	return k, filepath.Join(dir, base)
}

func startSigned(t *testing.T) (*server, *dns.DNSKEY) {
	dir := t.TempDir()
	key, base := newKey(t, dir)
	writeFile(t, dir, "example.com.yaml", dnssecPolicy)
	s := start(t, fmt.Sprintf(`example.com:0 {
    bind 127.0.0.1
    dnssec {
        key file %s
    }
    steer %s
}`, base, filepath.Join(dir, "example.com.yaml")))
	return s, key
}

// askDO asks with EDNS, a 4096-byte buffer and the DO bit.
func askDO(t testing.TB, proto, addr, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.SetEdns0(4096, true)
	return exchange(t, proto, addr, m)
}

// rrsets groups the RRs of a section other than RRSIG and OPT by owner and type.
func rrsets(rrs []dns.RR) map[string][]dns.RR {
	sets := map[string][]dns.RR{}
	for _, rr := range rrs {
		h := rr.Header()
		if h.Rrtype == dns.TypeRRSIG || h.Rrtype == dns.TypeOPT {
			continue
		}
		k := strings.ToLower(h.Name) + " " + dns.TypeToString[h.Rrtype]
		sets[k] = append(sets[k], rr)
	}
	return sets
}

// verifySection checks that every RRset of the section has an RRSIG by key that verifies and
// is valid now, and that no RRSIG is left without its RRset. It returns the RRsets verified.
func verifySection(t *testing.T, where string, key *dns.DNSKEY, section []dns.RR) []string {
	t.Helper()
	sets := rrsets(section)
	signed := map[string]bool{}
	for _, rr := range section {
		sig, ok := rr.(*dns.RRSIG)
		if !ok {
			continue
		}
		k := strings.ToLower(sig.Hdr.Name) + " " + dns.TypeToString[sig.TypeCovered]
		set := sets[k]
		if set == nil {
			t.Errorf("%s: RRSIG without the RRset it covers: %v", where, sig)
			continue
		}
		if sig.KeyTag != key.KeyTag() || sig.Algorithm != key.Algorithm || sig.SignerName != "example.com." {
			t.Errorf("%s: RRSIG over %s by %s key %d alg %d, want example.com. key %d alg %d", where, k,
				sig.SignerName, sig.KeyTag, sig.Algorithm, key.KeyTag(), key.Algorithm)
		}
		if err := sig.Verify(key, set); err != nil {
			t.Errorf("%s: RRSIG over %s does not verify: %v\n%v\n%v", where, k, err, sig, set)
			continue
		}
		if !sig.ValidityPeriod(time.Now()) {
			t.Errorf("%s: RRSIG over %s is not valid now: %v", where, k, sig)
			continue
		}
		signed[k] = true
	}
	var out []string
	for k := range sets {
		if !signed[k] {
			t.Errorf("%s: RRset %s has no valid RRSIG", where, k)
			continue
		}
		out = append(out, k)
	}
	return out
}

func TestDNSSEC(t *testing.T) {
	s, key := startSigned(t)
	for _, proto := range []string{"udp", "tcp"} {
		addr := s.UDP
		if proto == "tcp" {
			addr = s.TCP
		}
		// The DNSKEY is ours and signed by itself.
		r := askDO(t, proto, addr, "example.com.", dns.TypeDNSKEY)
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
			t.Fatalf("%s DNSKEY: %v", proto, r)
		}
		if k, ok := r.Answer[0].(*dns.DNSKEY); !ok || k.PublicKey != key.PublicKey || k.KeyTag() != key.KeyTag() {
			t.Fatalf("%s DNSKEY: answered %v, want %v", proto, r.Answer[0], key)
		}
		verifySection(t, proto+" DNSKEY", key, r.Answer)

		cases := []struct {
			name  string
			qtype uint16
			want  []string // RRsets of the answer
			neg   bool     // a denial: SOA and NSEC in the authority section
		}{
			{"www.example.com.", dns.TypeA, []string{"www.example.com. A"}, false},       // steered
			{"WWW.example.com.", dns.TypeA, []string{"www.example.com. A"}, false},       // steered, mixed case
			{"www.example.com.", dns.TypeAAAA, []string{"www.example.com. AAAA"}, false}, // steered
			{"static.example.com.", dns.TypeA, []string{"static.example.com. A"}, false}, // static set of 3
			{"example.com.", dns.TypeMX, []string{"example.com. MX"}, false},             // static, apex
			{"example.com.", dns.TypeSOA, []string{"example.com. SOA"}, false},           // apex SOA
			{"cdn.example.com.", dns.TypeA, []string{"cdn.example.com. CNAME"}, false},   // name endpoint
			{"www.example.com.", dns.TypeMX, nil, true},                                  // NODATA at a service
			{"static.example.com.", dns.TypeTXT, nil, true},                              // NODATA at a static name
			{"nope.example.com.", dns.TypeA, nil, true},                                  // NXDOMAIN (a black lie)
			{"alias.example.com.", dns.TypeA, []string{"alias.example.com. CNAME", "www.example.com. A"}, false},
		}
		for _, c := range cases {
			where := fmt.Sprintf("%s %s %s", proto, c.name, dns.TypeToString[c.qtype])
			r := askDO(t, proto, addr, c.name, c.qtype)
			if r.Rcode != dns.RcodeSuccess || !r.Authoritative || r.Truncated {
				t.Errorf("%s: rcode %s aa %v tc %v, want NOERROR (a black lie for NXDOMAIN), AA, no TC", where,
					dns.RcodeToString[r.Rcode], r.Authoritative, r.Truncated)
			}
			if o := r.IsEdns0(); o == nil || !o.Do() {
				t.Errorf("%s: DO bit not echoed", where)
			}
			got := verifySection(t, where+" answer", key, r.Answer)
			if !sameSet(got, c.want) {
				t.Errorf("%s: signed answer RRsets %v, want %v", where, got, c.want)
			}
			auth := verifySection(t, where+" authority", key, r.Ns)
			if c.neg {
				owner := strings.ToLower(c.name)
				if !sameSet(auth, []string{"example.com. SOA", owner + " NSEC"}) {
					t.Errorf("%s: signed authority RRsets %v, want the SOA and an NSEC at %s", where, auth, owner)
				}
				for _, rr := range r.Ns {
					if nsec, ok := rr.(*dns.NSEC); ok {
						for _, ty := range nsec.TypeBitMap {
							if ty == c.qtype {
								t.Errorf("%s: the NSEC's type bitmap holds the type asked: %v", where, nsec)
							}
						}
					}
				}
			}
		}

		// Without DO: no signatures.
		r = ask(t, proto, addr, "www.example.com.", dns.TypeA)
		for _, rr := range append(append(r.Answer, r.Ns...), r.Extra...) {
			if rr.Header().Rrtype == dns.TypeRRSIG || rr.Header().Rrtype == dns.TypeNSEC {
				t.Errorf("%s www A without DO: %v", proto, rr)
			}
		}
	}
}

// TestDNSSECConcurrent signs answers of shared, compiled RRsets from many clients at once: the
// race detector sees whether signing writes to memory that other queries read or write.
func TestDNSSECConcurrent(t *testing.T) {
	s, key := startSigned(t)
	questions := []struct {
		name  string
		qtype uint16
	}{
		{"static.example.com.", dns.TypeA},
		{"www.example.com.", dns.TypeA},
		{"example.com.", dns.TypeMX},
		{"nope.example.com.", dns.TypeA},
		{"alias.example.com.", dns.TypeA},
	}
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := range 8 {
		wg.Go(func() {
			for i := range 40 {
				q := questions[(g+i)%len(questions)]
				m := new(dns.Msg)
				m.SetQuestion(q.name, q.qtype)
				m.SetEdns0(4096, true)
				c := &dns.Client{Net: "tcp", Timeout: 2 * time.Second}
				r, _, err := c.Exchange(m, s.TCP)
				if err != nil {
					errs <- fmt.Sprintf("%s: %v", q.name, err)
					return
				}
				sets := rrsets(r.Answer)
				for _, rr := range r.Answer {
					if sig, ok := rr.(*dns.RRSIG); ok {
						set := sets[strings.ToLower(sig.Hdr.Name)+" "+dns.TypeToString[sig.TypeCovered]]
						if err := sig.Verify(key, set); err != nil {
							errs <- fmt.Sprintf("%s: %v: %v", q.name, sig, err)
							return
						}
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]int{}
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		if m[x] == 0 {
			return false
		}
		m[x]--
	}
	return true
}
