// Package test holds the end-to-end tests of steerdns: the real server started from a Corefile,
// real backends on 127.0.0.1, and assertions on what a DNS client sees.
package test

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/miekg/dns"

	// The plugins the tests' Corefiles use, as cmd/steerdns ships them.
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/dnssec"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/file"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/nsid"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"

	"github.com/steerdns/steerdns/plugin/steer"
)

func TestMain(m *testing.M) {
	if err := dnsserver.SetDirectives(steer.Directives()); err != nil {
		panic(err)
	}
	caddy.Quiet = true
	dnsserver.Quiet = true
	os.Exit(m.Run())
}

var startMu sync.Mutex

// loopback is the address the test servers of this process bind: "bind 127.0.0.1" in a test's
// Corefile is served here. CoreDNS listens with SO_REUSEPORT, and on Linux two such sockets
// bound to port 0 may be given the same port: two test processes (go test runs packages in
// parallel) would then answer each other's queries. A loopback address of its own per process
// rules that out.
var loopback = fmt.Sprintf("127.%d.%d.%d", 100+os.Getpid()%100, rand.IntN(250), 1+rand.IntN(250))

// server is a running steerdns server.
type server struct {
	inst     *caddy.Instance
	UDP, TCP string
	stopped  bool
}

type input string

func (i input) Body() []byte       { return []byte(i) }
func (i input) Path() string       { return "Corefile" }
func (i input) ServerType() string { return "dns" }

// start runs a server from corefile and stops it when the test ends. Use port 0 in the
// Corefile's server block ("example.com:0"); the addresses it listens on are returned.
func start(t testing.TB, corefile string) *server {
	t.Helper()
	startMu.Lock()
	corefile = strings.ReplaceAll(corefile, "bind 127.0.0.1", "bind "+loopback)
	inst, err := caddy.Start(input(corefile))
	startMu.Unlock()
	if err != nil {
		t.Fatalf("starting the server: %v\n%s", err, corefile)
	}
	s := &server{inst: inst}
	t.Cleanup(s.stop)
	srv := inst.Servers()[0]
	if a := srv.LocalAddr(); a != nil {
		s.UDP = a.String()
	}
	if a := srv.Addr(); a != nil {
		s.TCP = a.String()
	}
	return s
}

// stop stops the server as a process exit would: its listeners, then its plugins' shutdown
// (watchers, probes, state written). Once.
func (s *server) stop() {
	if s.stopped {
		return
	}
	s.stopped = true
	s.inst.Stop()
	// Stop closes the listeners only; the plugins' shutdown (watchers, probes) is here.
	s.inst.ShutdownCallbacks()
}

// restart reloads the Corefile as the reload plugin and SIGUSR1 do.
func (s *server) restart(t testing.TB, corefile string) {
	t.Helper()
	startMu.Lock()
	defer startMu.Unlock()
	corefile = strings.ReplaceAll(corefile, "bind 127.0.0.1", "bind "+loopback)
	inst, err := s.inst.Restart(input(corefile))
	if err != nil {
		t.Fatalf("Corefile reload: %v", err)
	}
	s.inst = inst
}

// writeFile writes content to name inside dir and returns the path.
func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// ask sends one question over net ("udp" or "tcp") and returns the reply.
func ask(t testing.TB, net, addr, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	return exchange(t, net, addr, m)
}

func exchange(t testing.TB, net, addr string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: net, Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s %s %s: %v", net, m.Question[0].Name, dns.TypeToString[m.Question[0].Qtype], err)
	}
	return r
}

// answers returns the answer section's data (A/AAAA addresses, CNAME targets), in order.
func answers(r *dns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		switch x := rr.(type) {
		case *dns.A:
			out = append(out, x.A.String())
		case *dns.AAAA:
			out = append(out, x.AAAA.String())
		case *dns.CNAME:
			out = append(out, "CNAME "+x.Target)
		default:
			out = append(out, strings.TrimPrefix(rr.String(), rr.Header().String()))
		}
	}
	return out
}

// eventually polls cond every 20ms until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// eventuallyDump is eventually with a description of the state when it fails.
func eventuallyDump(t testing.TB, within time.Duration, what string, cond func() bool, dump func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s\n%s", within, what, dump())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// backend is an HTTP server on 127.0.0.1 that can be stopped and started on the same port.
type backend struct {
	t      testing.TB
	Port   int
	mu     sync.Mutex
	srv    *http.Server
	Status int // status code to answer with; 200 by default
	hits   int // requests served
	// Alternate makes the backend answer 503 and Status in turn, starting with 503.
	Alternate bool
	// Hang makes the backend accept requests and never answer them.
	Hang bool
}

// Hits returns the number of requests served so far.
func (b *backend) Hits() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.hits
}

func newBackend(t testing.TB) *backend {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{t: t, Port: l.Addr().(*net.TCPAddr).Port, Status: 200}
	b.serve(l)
	t.Cleanup(b.Stop)
	return b
}

func (b *backend) serve(l net.Listener) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		st := b.Status
		b.hits++
		if b.Alternate && b.hits%2 == 1 {
			st = http.StatusServiceUnavailable
		}
		hang := b.Hang
		b.mu.Unlock()
		if hang {
			<-r.Context().Done()
			return
		}
		w.WriteHeader(st)
		fmt.Fprintln(w, "ok")
	})}
	go b.srv.Serve(l)
}

// Stop closes the listener and every connection: probes get "connection refused".
func (b *backend) Stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.srv != nil {
		b.srv.Close()
		b.srv = nil
	}
}

// Start listens again on the same port.
func (b *backend) Start() {
	b.t.Helper()
	var l net.Listener
	var err error
	eventually(b.t, 5*time.Second, "re-listening on the backend's port", func() bool {
		l, err = net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", b.Port))
		return err == nil
	})
	b.serve(l)
}
