package test

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// manyPolicy has a service with 40 IPv4 endpoints (about 660 bytes of answer) and a static
// TXT set of 6 long strings (about 1600 bytes).
func manyPolicy() string {
	var eps []string
	for i := range 40 {
		eps = append(eps, fmt.Sprintf("192.0.2.%d", i+1))
	}
	long := strings.Repeat("t", 250)
	var txt strings.Builder
	for i := range 6 {
		fmt.Fprintf(&txt, "  big TXT \"%d%s\"\n", i, long[1:])
	}
	return fmt.Sprintf(`zone: example.com.
ttl: 3600
ns: [ns1.example.com.]
records: |
  ns1 A 192.0.2.53
%sservices:
  many:
    pools:
      - endpoints: [%s]
`, txt.String(), strings.Join(eps, ", "))
}

// rawUDP sends m over UDP and returns the reply and its size on the wire.
func rawUDP(t *testing.T, addr string, m *dns.Msg) (*dns.Msg, int) {
	t.Helper()
	buf, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write(buf); err != nil {
		t.Fatal(err)
	}
	in := make([]byte, 65535)
	for {
		n, err := c.Read(in)
		if err != nil {
			t.Fatalf("%s: reading the reply: %v", m.Question[0].Name, err)
		}
		r := new(dns.Msg)
		if err := r.Unpack(in[:n]); err != nil {
			t.Fatalf("%s: unpacking a reply of %d bytes: %v", m.Question[0].Name, n, err)
		}
		if r.Id == m.Id {
			return r, n
		}
	}
}

func TestTruncation(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "example.com.yaml", manyPolicy())
	s := start(t, fmt.Sprintf("example.com:0 {\n    bind 127.0.0.1\n    steer %s\n}", dir))

	cases := []struct {
		name  string
		qtype uint16
		n     int // RRs in the complete answer
	}{
		{"many.example.com.", dns.TypeA, 40}, // steered
		{"big.example.com.", dns.TypeTXT, 6}, // static
	}
	for _, c := range cases {
		where := c.name + " " + dns.TypeToString[c.qtype]

		// UDP without EDNS: truncated to 512 bytes, TC set.
		m := new(dns.Msg)
		m.SetQuestion(c.name, c.qtype)
		r, size := rawUDP(t, s.UDP, m)
		if !r.Truncated || size > 512 {
			t.Errorf("%s over UDP without EDNS: tc %v and %d bytes, want TC and at most 512", where, r.Truncated, size)
		}
		if r.Rcode != dns.RcodeSuccess || len(r.Question) != 1 || r.Question[0] != m.Question[0] {
			t.Errorf("%s over UDP without EDNS: rcode %s question %v", where, dns.RcodeToString[r.Rcode], r.Question)
		}
		if len(r.Answer) >= c.n {
			t.Errorf("%s over UDP without EDNS: %d answers in 512 bytes?", where, len(r.Answer))
		}

		// UDP with a buffer of 4096: complete.
		m = new(dns.Msg)
		m.SetQuestion(c.name, c.qtype)
		m.SetEdns0(4096, false)
		r, size = rawUDP(t, s.UDP, m)
		if r.Truncated || len(r.Answer) != c.n || r.Rcode != dns.RcodeSuccess {
			t.Errorf("%s over UDP with EDNS 4096: tc %v, %d answers (%d bytes), rcode %s; want no TC and %d answers",
				where, r.Truncated, len(r.Answer), size, dns.RcodeToString[r.Rcode], c.n)
		}
		if size <= 512 {
			t.Errorf("%s: the complete answer has %d bytes; the test needs one over 512", where, size)
		}
		if o := r.IsEdns0(); o == nil {
			t.Errorf("%s over UDP with EDNS 4096: no OPT in the reply", where)
		}

		// UDP with a buffer of 1232 bytes: the static set of about 1600 bytes is truncated to fit.
		if c.qtype == dns.TypeTXT {
			m = new(dns.Msg)
			m.SetQuestion(c.name, c.qtype)
			m.SetEdns0(1232, false)
			r, size = rawUDP(t, s.UDP, m)
			if !r.Truncated || size > 1232 {
				t.Errorf("%s over UDP with EDNS 1232: tc %v and %d bytes, want TC and at most 1232", where, r.Truncated, size)
			}
		}

		// TCP, with and without EDNS: complete.
		for _, edns := range []bool{false, true} {
			m = new(dns.Msg)
			m.SetQuestion(c.name, c.qtype)
			if edns {
				m.SetEdns0(512, false)
			}
			r = exchange(t, "tcp", s.TCP, m)
			if r.Truncated || len(r.Answer) != c.n || r.Rcode != dns.RcodeSuccess || !r.Authoritative {
				t.Errorf("%s over TCP (edns %v): tc %v aa %v, %d answers, rcode %s; want no TC, AA and %d answers",
					where, edns, r.Truncated, r.Authoritative, len(r.Answer), dns.RcodeToString[r.Rcode], c.n)
			}
		}
	}

	// The truncated reply is what a resolver falls back from: the same client retries over TCP.
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	m := new(dns.Msg)
	m.SetQuestion("many.example.com.", dns.TypeA)
	r, _, err := c.Exchange(m, s.UDP)
	if err != nil || !r.Truncated {
		t.Fatalf("many A over UDP: %v %v", r, err)
	}
	r = exchange(t, "tcp", s.TCP, m)
	if len(r.Answer) != 40 {
		t.Errorf("many A over TCP after TC: %d answers", len(r.Answer))
	}
}
