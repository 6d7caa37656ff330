package test

import (
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// healthPolicy: www fails over from the backend's pool (127.0.0.1, checked) to 127.0.0.2.
const healthPolicy = `zone: example.com.
ns: [ns1.example.com.]
records: |
  ns1 A 192.0.2.53
checks:
  web:
    type: %s
    port: %d
    interval: 200ms
    timeout: 100ms
    fast_interval: 50ms
    rise: 2
    fall: 2
%s
services:
  www:
    policy: failover
    ttl: 30
    degraded_ttl: 10
    when_all_down: %s
    %s
    pools:
      - region: primary
        endpoints: [{address: 127.0.0.1, check: web}]
      - region: backup
        endpoints: [{address: 127.0.0.2, check: %s}]
`

func startHealth(t *testing.T, checkType string, port int, extra, allDown, backupCheck string) *server {
	t.Helper()
	fallback := ""
	if allDown == "fallback" {
		fallback = "fallback: [192.0.2.250]"
	}
	dir := t.TempDir()
	writeFile(t, dir, "example.com.yaml", fmt.Sprintf(healthPolicy, checkType, port, extra, allDown, fallback, backupCheck))
	return start(t, fmt.Sprintf("example.com:0 {\n bind 127.0.0.1\n steer %s\n}", dir))
}

// waitAnswer polls www.example.com A until the answer is want.
func waitAnswer(t *testing.T, s *server, want ...string) *dns.Msg {
	t.Helper()
	var r *dns.Msg
	eventually(t, 5*time.Second, fmt.Sprintf("www.example.com. A to answer %v", want), func() bool {
		r = ask(t, "udp", s.UDP, "www.example.com.", dns.TypeA)
		return slices.Equal(answers(r), want)
	})
	return r
}

func TestHTTPCheckSteersAway(t *testing.T) {
	b := newBackend(t)
	s := startHealth(t, "http", b.Port, "", "all", "none")
	r := waitAnswer(t, s, "127.0.0.1")
	if r.Answer[0].Header().Ttl != 30 {
		t.Errorf("primary TTL %d, want 30", r.Answer[0].Header().Ttl)
	}
	for round := range 2 {
		b.Stop()
		r = waitAnswer(t, s, "127.0.0.2")
		if r.Answer[0].Header().Ttl != 10 {
			t.Errorf("round %d: failover TTL %d, want degraded 10", round, r.Answer[0].Header().Ttl)
		}
		b.Start()
		waitAnswer(t, s, "127.0.0.1")
	}
	// A wrong status is a failure too.
	b.mu.Lock()
	b.Status = 503
	b.mu.Unlock()
	waitAnswer(t, s, "127.0.0.2")
}

func TestTCPCheck(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	s := startHealth(t, "tcp", port, "", "all", "none")
	waitAnswer(t, s, "127.0.0.1")
	l.Close()
	waitAnswer(t, s, "127.0.0.2")
}

func TestDNSCheck(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	rcode := dns.RcodeSuccess
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		mu.Lock()
		m.SetRcode(r, rcode)
		mu.Unlock()
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	s := startHealth(t, "dns", pc.LocalAddr().(*net.UDPAddr).Port, "    query: health.example.net.", "all", "none")
	waitAnswer(t, s, "127.0.0.1")
	mu.Lock()
	rcode = dns.RcodeServerFailure
	mu.Unlock()
	waitAnswer(t, s, "127.0.0.2")
	mu.Lock()
	rcode = dns.RcodeSuccess
	mu.Unlock()
	waitAnswer(t, s, "127.0.0.1")
}

func TestFlappingBackendDoesNotFlapAnswers(t *testing.T) {
	b := newBackend(t)
	s := startHealth(t, "http", b.Port, "", "all", "none")
	// Unknown counts as up: wait for the first probes so that the state is really up.
	eventually(t, 5*time.Second, "two probes", func() bool { return b.Hits() >= 2 })
	waitAnswer(t, s, "127.0.0.1")
	// Fail every other probe: one failure never reaches fall 2, so the answer must hold.
	b.mu.Lock()
	b.Alternate = true
	start := b.hits
	b.mu.Unlock()
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		r := ask(t, "udp", s.UDP, "www.example.com.", dns.TypeA)
		if got := answers(r); !slices.Equal(got, []string{"127.0.0.1"}) {
			t.Fatalf("a backend failing every other probe flapped the answer to %v", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if probes := b.Hits() - start; probes < 6 {
		t.Fatalf("only %d probes in 2s; the test proves nothing", probes)
	}
}

func TestAllDownModes(t *testing.T) {
	for _, c := range []struct {
		mode  string
		rcode int
		want  []string
	}{
		{"all", dns.RcodeSuccess, []string{"127.0.0.1"}},
		{"nodata", dns.RcodeSuccess, nil},
		{"servfail", dns.RcodeServerFailure, nil},
		{"fallback", dns.RcodeSuccess, []string{"192.0.2.250"}},
	} {
		t.Run(c.mode, func(t *testing.T) {
			b := newBackend(t)
			// Both pools checked against the same backend port: stopping it takes both down.
			s := startHealth(t, "http", b.Port, "", c.mode, "web")
			eventually(t, 5*time.Second, "two probes", func() bool { return b.Hits() >= 2 })
			waitAnswer(t, s, "127.0.0.1")
			b.Stop()
			// Every all-down answer carries the degraded TTL, or the SOA's for nodata.
			eventually(t, 5*time.Second, "the all-down answer", func() bool {
				r := ask(t, "udp", s.UDP, "www.example.com.", dns.TypeA)
				ttl := uint32(0)
				if len(r.Answer) > 0 {
					ttl = r.Answer[0].Header().Ttl
				} else if len(r.Ns) > 0 {
					ttl = r.Ns[0].Header().Ttl
				}
				return r.Rcode == c.rcode && slices.Equal(answers(r), c.want) && (c.rcode != dns.RcodeSuccess || ttl == 10)
			})
			b.Start()
			waitAnswer(t, s, "127.0.0.1")
		})
	}
}
