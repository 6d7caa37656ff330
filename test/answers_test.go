package test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/miekg/dns"
)

const appPolicy = `zone: example.com.
ttl: 3600
ns: [ns1.example.com., ns2.example.com.]
soa: {minttl: 60}
records: |
  ns1   A     192.0.2.53
  ns2   A     198.51.100.53
  @     MX    10 mail
  mail  A     192.0.2.25
  alias CNAME www
  sub   NS    ns.sub
  ns.sub A    192.0.2.99
  big   TXT   "%s"
  big   TXT   "%s"
services:
  www:
    policy: failover
    pools:
      - region: us-east
        endpoints: [192.0.2.10, 2001:db8::10]
      - region: eu-west
        endpoints: [198.51.100.10]
  www.eu:
    pools:
      - endpoints: [198.51.100.20]
  cdn:
    pools:
      - endpoints: [edge-1.provider.example.]
  inzone:
    pools:
      - endpoints: [www.example.com.]
`

func startApp(t *testing.T) *server {
	dir := t.TempDir()
	long := make([]byte, 250)
	for i := range long {
		long[i] = 'x'
	}
	writeFile(t, dir, "example.com.yaml", fmt.Sprintf(appPolicy, long, long[:249]))
	return start(t, fmt.Sprintf(`example.com:0 {
    bind 127.0.0.1
    steer %s
}`, dir))
}

func TestAnswers(t *testing.T) {
	s := startApp(t)
	for _, net := range []string{"udp", "tcp"} {
		addr := s.UDP
		if net == "tcp" {
			addr = s.TCP
		}
		cases := []struct {
			name  string
			qtype uint16
			rcode int
			want  []string
			aa    bool
		}{
			{"www.example.com.", dns.TypeA, dns.RcodeSuccess, []string{"192.0.2.10"}, true},
			{"WwW.Example.COM.", dns.TypeA, dns.RcodeSuccess, []string{"192.0.2.10"}, true},
			{"www.example.com.", dns.TypeAAAA, dns.RcodeSuccess, []string{"2001:db8::10"}, true},
			{"www.example.com.", dns.TypeMX, dns.RcodeSuccess, nil, true},
			{"www.example.com.", dns.TypeANY, dns.RcodeSuccess, []string{"192.0.2.10", "2001:db8::10"}, true},
			{"eu.example.com.", dns.TypeA, dns.RcodeSuccess, nil, true}, // empty non-terminal
			{"x.www.example.com.", dns.TypeA, dns.RcodeNameError, nil, true},
			{"nope.example.com.", dns.TypeA, dns.RcodeNameError, nil, true},
			{"cdn.example.com.", dns.TypeA, dns.RcodeSuccess, []string{"CNAME edge-1.provider.example."}, true},
			{"inzone.example.com.", dns.TypeA, dns.RcodeSuccess, []string{"CNAME www.example.com.", "192.0.2.10"}, true},
			{"alias.example.com.", dns.TypeA, dns.RcodeSuccess, []string{"CNAME www.example.com.", "192.0.2.10"}, true},
			{"host.sub.example.com.", dns.TypeA, dns.RcodeSuccess, nil, false}, // referral
		}
		for _, c := range cases {
			r := ask(t, net, addr, c.name, c.qtype)
			got := answers(r)
			if r.Rcode != c.rcode || !slices.Equal(got, c.want) || r.Authoritative != c.aa {
				t.Errorf("%s %s %s: rcode %s aa %v answers %v, want %s aa %v %v", net, c.name, dns.TypeToString[c.qtype],
					dns.RcodeToString[r.Rcode], r.Authoritative, got, dns.RcodeToString[c.rcode], c.aa, c.want)
			}
			if r.Question[0].Name != c.name {
				t.Errorf("%s: question echoed as %s", c.name, r.Question[0].Name)
			}
		}
	}
}
