package test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// unboundConf puts Unbound's subnetcache in front of steerdns: it forwards the clients' ECS
// (cut to /24 and /56) to the stub zone and caches each answer for the scope it returns. It
// sends only from 127.0.0.1, so that it can reach nothing but loopback.
const unboundConf = `server:
  interface: 127.0.0.1@%d
  port: %d
  do-ip6: no
  do-daemonize: no
  chroot: ""
  username: ""
  directory: "%s"
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: 1
  access-control: 127.0.0.0/8 allow
  do-not-query-localhost: no
  outgoing-interface: 127.0.0.1
  module-config: "subnetcache iterator"
  send-client-subnet: %s
  max-client-subnet-ipv4: 24
  max-client-subnet-ipv6: 56
  qname-minimisation: no
  prefetch: no
  serve-expired: no
stub-zone:
  name: "example.com."
  stub-addr: %s@%s
`

// syncBuffer is an io.Writer that the test can read while the process writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startUnbound runs Unbound in front of the server at upstream (host:port) and returns the
// address it listens on.
func startUnbound(t *testing.T, upstream string) string {
	t.Helper()
	bin, err := exec.LookPath("unbound")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("unbound is not installed; .ci/run installs it (apt-get install unbound)")
		}
		t.Skip("unbound is not installed (apt-get install unbound): the resolver test needs it")
	}
	host, port, _ := net.SplitHostPort(upstream)
	// A free port for Unbound, UDP and TCP.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	conf := filepath.Join(dir, "unbound.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, unboundConf, p, p, dir, host, host, port), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-d", "-c", conf)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("unbound:\n%s", out.String())
		}
	})
	addr := net.JoinHostPort("127.0.0.1", fmt.Sprint(p))
	c := &dns.Client{Net: "udp", Timeout: 500 * time.Millisecond}
	eventuallyDump(t, 10*time.Second, "unbound to answer", func() bool {
		select {
		case <-done:
			t.Fatalf("unbound exited:\n%s", out.String())
		default:
		}
		m := new(dns.Msg)
		m.SetQuestion("ns1.example.com.", dns.TypeA)
		r, _, err := c.Exchange(m, addr)
		return err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) == 1
	}, out.String)
	return addr
}

// steerAnswers returns how many answers steer gave for service (all outcomes): the queries
// that reached it.
func steerAnswers(t testing.TB, service string) float64 {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0.0
	for _, mf := range mfs {
		if mf.GetName() != "coredns_steer_answers_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "service" && l.GetValue() == service {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}

// TestUnboundSubnetCache puts a real resolver in front: clients of two countries get their own
// region's answers through it, and its cache keeps each answer for the scope steer returned
// (per /24 for geo, for everyone for a failover name).
func TestUnboundSubnetCache(t *testing.T) {
	s, _ := geoServer(t, "")
	eventually(t, 5*time.Second, "every region checked up", func() bool {
		return slices.Equal(answers(askECS(t, "udp", s.UDP, "geo.example.com.", dns.TypeA, "203.0.113.0/24")), []string{"127.0.0.13"})
	})
	resolver := startUnbound(t, s.UDP)

	through := func(name, ecs string) []string {
		t.Helper()
		return answers(askECS(t, "udp", resolver, name, dns.TypeA, ecs))
	}
	steps := []struct {
		what, name, ecs string
		want            []string
		reached         bool // the query reached steer (not served from Unbound's cache)
	}{
		{"a GB client", "geo.example.com.", "203.0.113.0/24", []string{"127.0.0.13"}, true},
		{"a US client: not GB's cached answer", "geo.example.com.", "198.51.100.0/24", []string{"127.0.0.11"}, true},
		{"GB again: from the cache", "geo.example.com.", "203.0.113.0/24", []string{"127.0.0.13"}, false},
		{"another GB client of the same /24: from the cache", "geo.example.com.", "203.0.113.77/32", []string{"127.0.0.13"}, false},
		{"US again: from the cache", "geo.example.com.", "198.51.100.0/24", []string{"127.0.0.11"}, false},
		{"a failover name for GB", "static-fo.example.com.", "203.0.113.0/24", []string{"127.0.0.21"}, true},
		{"the failover name for US: scope 0, from the cache", "static-fo.example.com.", "198.51.100.0/24", []string{"127.0.0.21"}, false},
	}
	for _, st := range steps {
		svc := strings.SplitN(st.name, ".", 2)[0]
		before := steerAnswers(t, svc)
		if got := through(st.name, st.ecs); !slices.Equal(got, st.want) {
			t.Errorf("%s: %v, want %v", st.what, got, st.want)
		}
		if reached := steerAnswers(t, svc) > before; reached != st.reached {
			t.Errorf("%s: reached steer %t, want %t", st.what, reached, st.reached)
		}
	}
}
