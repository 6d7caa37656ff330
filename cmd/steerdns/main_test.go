package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/miekg/dns"
)

func TestSteerRunsBeforeFile(t *testing.T) {
	d := dnsserver.Directives
	s, f := slices.Index(d, "steer"), slices.Index(d, "file")
	if s < 0 || f != s+1 {
		t.Fatalf("steer at %d, file at %d: steer must come right before file", s, f)
	}
	// What -plugins prints.
	if !slices.Contains(strings.Split(caddy.DescribePlugins(), "\n"), "steer") {
		t.Errorf("steer is not among the plugins -plugins lists:\n%s", caddy.DescribePlugins())
	}
}

// TestEmbeddedExample serves the embedded example as the binary does when there is no
// Corefile, on a free port instead of 1053, and asks it questions.
func TestEmbeddedExample(t *testing.T) {
	t.Chdir(t.TempDir()) // no ./Corefile there
	in, err := defaultLoader("dns")
	if err != nil {
		t.Fatal(err)
	}
	body := string(in.Body())
	if !strings.Contains(body, "example.test:1053") || !strings.Contains(body, "steer /") {
		t.Fatalf("not the embedded example:\n%s", body)
	}
	// A free port, and no fixed metrics or ready ports, so that the test runs beside anything.
	body = strings.NewReplacer("example.test:1053", "example.test:0", "prometheus 127.0.0.1:9153", "", "ready 127.0.0.1:8181", "", "    log\n", "").Replace(body)
	caddy.Quiet, dnsserver.Quiet = true, true
	inst, err := caddy.Start(caddy.CaddyfileInput{Contents: []byte(body), ServerTypeName: "dns"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inst.Stop(); inst.ShutdownCallbacks() })
	addr := inst.Servers()[0].LocalAddr().String()
	c := &dns.Client{Timeout: 2 * time.Second}
	ask := func(name string, qtype uint16) *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		r, _, err := c.Exchange(m, addr)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := ask("example.test.", dns.TypeMX); len(r.Answer) != 1 || !r.Authoritative {
		t.Errorf("MX: %v", r)
	}
	r := ask("www.example.test.", dns.TypeA)
	if len(r.Answer) != 1 {
		t.Fatalf("www: %v", r)
	}
	// The primary while its check has not failed (or when something listens on port 8000),
	// else the backup.
	if a := r.Answer[0].(*dns.A).A.String(); a != "127.0.0.1" && a != "127.0.0.2" {
		t.Errorf("www answered %s", a)
	}
	if r := ask("nope.example.test.", dns.TypeA); r.Rcode != dns.RcodeNameError {
		t.Errorf("nope: %s", dns.RcodeToString[r.Rcode])
	}
}
