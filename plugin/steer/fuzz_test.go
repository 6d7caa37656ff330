package steer

import (
	"context"
	"testing"

	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"
	"github.com/steerdns/steerdns/healthcheck"
)

// FuzzServeDNS feeds arbitrary packets to the query path: whatever unpacks must be answered
// without a panic, and the answer must pack. Seeds: plugin/testdata/fuzz/FuzzServeDNS.
func FuzzServeDNS(f *testing.F) {
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"fo.example.com.", dns.TypeA}, {"FO.example.COM.", dns.TypeAAAA}, {"w.example.com.", dns.TypeANY},
		{"nope.example.com.", dns.TypeMX}, {"example.com.", dns.TypeSOA}, {"example.org.", dns.TypeA},
	} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		m.SetEdns0(1232, true)
		buf, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(buf)
	}
	s, h := newTestSteer(f, policyZone)
	h.set(f, healthcheck.Down, "192.0.2.1", "192.0.2.121", "192.0.2.122")
	f.Fuzz(func(t *testing.T, data []byte) {
		m := new(dns.Msg)
		if m.Unpack(data) != nil || len(m.Question) != 1 {
			return
		}
		rec := dnstest.NewRecorder(&test.ResponseWriter{})
		s.ServeDNS(context.Background(), rec, m)
		if rec.Msg != nil {
			if _, err := rec.Msg.Pack(); err != nil {
				t.Fatalf("reply to %v does not pack: %v", m.Question[0], err)
			}
		}
	})
}
