package healthcheck

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Linux routes all of 127.0.0.0/8 to lo: 127.0.0.2 is an address of every host, and the
// backends listen on 127.0.0.1.
var (
	src2     = netip.MustParseAddr("127.0.0.2")
	notLocal = netip.MustParseAddr("203.0.113.77") // TEST-NET-3: no host's
)

// peers records the hosts that backends saw probes come from, in order.
type peers struct {
	mu    sync.Mutex
	hosts []string
}

func (p *peers) add(addr net.Addr) { p.addString(addr.String()) }

func (p *peers) addString(hp string) {
	host, _, _ := net.SplitHostPort(hp)
	p.mu.Lock()
	p.hosts = append(p.hosts, host)
	p.mu.Unlock()
}

func (p *peers) get() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.hosts)
}

func (p *peers) reset() {
	p.mu.Lock()
	p.hosts = nil
	p.mu.Unlock()
}

// peerListener records the peer of every connection it accepts.
type peerListener struct {
	net.Listener
	p *peers
}

func (l *peerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.p.add(c.RemoteAddr())
	}
	return c, err
}

func orKernel(a netip.Addr) string {
	if !a.IsValid() {
		return "the kernel's choice"
	}
	return a.String()
}

// sourceBackends serves, on 127.0.0.1, every probe type and records where each request, query
// or connection came from: it returns a target of each type ("dns-tcp" is a dns check answered
// truncated over UDP, so asked again over TCP).
func sourceBackends(t *testing.T, p *peers) map[string]Target {
	out := map[string]Target{}
	mod := func(typ string, port int, f func(*Config)) Target {
		return testTarget(typ, port, func(c *Config) {
			c.InsecureTLS = true
			if f != nil {
				f(c)
			}
		})
	}

	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { p.addString(r.RemoteAddr); w.Write([]byte("ok")) })
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	out[TypeHTTP] = mod(TypeHTTP, portOf(t, s.Listener.Addr().String()), nil)
	s = httptest.NewUnstartedServer(h)
	s.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.StartTLS()
	t.Cleanup(s.Close)
	out[TypeHTTPS] = mod(TypeHTTPS, portOf(t, s.Listener.Addr().String()), nil)

	port, _ := serveConns(t, func(c net.Conn) { p.add(c.RemoteAddr()); c.Close() })
	out[TypeTCP] = mod(TypeTCP, port, nil)

	dh := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		p.add(w.RemoteAddr())
		m := new(dns.Msg)
		m.SetReply(r)
		_, overTCP := w.RemoteAddr().(*net.TCPAddr)
		m.Truncated = r.Question[0].Name == "big.test." && !overTCP
		w.WriteMsg(m)
	})
	var pc net.PacketConn
	var l net.Listener
	for {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if l, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
	}
	udp, tcp := &dns.Server{PacketConn: pc, Handler: dh}, &dns.Server{Listener: l, Handler: dh}
	go udp.ActivateAndServe()
	go tcp.ActivateAndServe()
	t.Cleanup(func() { udp.Shutdown(); tcp.Shutdown() })
	port = portOf(t, pc.LocalAddr().String())
	out[TypeDNS] = mod(TypeDNS, port, func(c *Config) { c.Query = "ok.test." })
	out["dns-tcp"] = mod(TypeDNS, port, func(c *Config) { c.Query = "big.test." })

	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, health.NewServer())
	gl := &peerListener{Listener: listen(t), p: p}
	go gs.Serve(gl)
	t.Cleanup(gs.Stop)
	out[TypeGRPC] = mod(TypeGRPC, portOf(t, gl.Addr().String()), nil)
	return out
}

// Every probe type comes from the source: from Probe's kernel choice (127.0.0.1 on loopback)
// to 127.0.0.2 with ProbeFrom, and back with the zero Addr.
func TestProbeFromEveryType(t *testing.T) {
	p := new(peers)
	targets := sourceBackends(t, p)
	for _, name := range []string{TypeHTTP, TypeHTTPS, TypeTCP, TypeDNS, "dns-tcp", TypeGRPC} {
		t.Run(name, func(t *testing.T) {
			tg := targets[name]
			for _, c := range []struct {
				from netip.Addr
				want string
			}{{netip.Addr{}, "127.0.0.1"}, {src2, "127.0.0.2"}, {netip.Addr{}, "127.0.0.1"}} {
				p.reset()
				if r := ProbeFrom(context.Background(), tg, c.from); !r.OK {
					t.Fatalf("probe from %v: %v", c.from, r.Err)
				}
				wantN := 1
				if name == "dns-tcp" {
					wantN = 2 // the UDP query and the TCP one
				}
				// A tcp probe passes on connect, maybe before the backend's accept.
				eventually(t, time.Second, "the backend saw the probe", func() bool { return len(p.get()) >= wantN })
				if got := p.get(); len(got) != wantN || slices.ContainsFunc(got, func(h string) bool { return h != c.want }) {
					t.Errorf("probe from %s came from %v, want %d× %s", orKernel(c.from), got, wantN, c.want)
				}
			}
		})
	}
}

// The engine's probes come from its source; a connection kept from the old source is closed,
// not reused, once the source changes; the zero Addr gives the choice back to the kernel.
func TestEngineSetSource(t *testing.T) {
	for _, typ := range []string{TypeHTTP, TypeGRPC} {
		t.Run(typ, func(t *testing.T) {
			p := new(peers)
			var port int
			opened := map[string]*counter{"127.0.0.1": new(counter), "127.0.0.2": new(counter)}
			closed := map[string]*counter{"127.0.0.1": new(counter), "127.0.0.2": new(counter)}
			if typ == TypeHTTP {
				s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					p.addString(r.RemoteAddr)
					w.Write([]byte("ok"))
				}))
				s.Config.ConnState = func(c net.Conn, st http.ConnState) {
					host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
					switch st {
					case http.StateNew:
						opened[host].add(1)
					case http.StateClosed:
						closed[host].add(1)
					}
				}
				s.Start()
				t.Cleanup(s.Close)
				port = portOf(t, s.Listener.Addr().String())
			} else {
				gs := grpc.NewServer()
				healthpb.RegisterHealthServer(gs, health.NewServer())
				gl := &peerListener{Listener: listen(t), p: p}
				go gs.Serve(gl)
				t.Cleanup(gs.Stop)
				port = portOf(t, gl.Addr().String())
			}
			e := NewEngine(Options{})
			t.Cleanup(e.Close)
			if e.Source().IsValid() {
				t.Errorf("a new engine's source is %v, want the kernel's choice", e.Source())
			}
			e.Subscribe(nil).Sync([]Target{quick(typ, port, nil)})
			seen := func(host string, n int) func() bool {
				return func() bool {
					c := 0
					for _, h := range p.get() {
						if h == host {
							c++
						}
					}
					return c >= n
				}
			}
			// gRPC records connections, HTTP requests: 3 requests on one connection, or one
			// connection.
			first := 3
			if typ == TypeGRPC {
				first = 1
			}
			eventually(t, 5*time.Second, "probes from 127.0.0.1", seen("127.0.0.1", first))

			if err := e.SetSource(src2); err != nil {
				t.Fatal(err)
			}
			if e.Source() != src2 {
				t.Errorf("Source() = %v, want %v", e.Source(), src2)
			}
			eventually(t, 5*time.Second, "a probe from 127.0.0.2", seen("127.0.0.2", 1))
			old := p.get()
			at := slices.Index(old, "127.0.0.2")
			time.Sleep(5 * MinInterval) // more probes
			after := p.get()[at:]
			if i := slices.Index(after, "127.0.0.1"); i >= 0 {
				t.Errorf("a probe came from the old source after one came from the new: %v", after)
			}
			if typ == TypeHTTP {
				if n := len(after); n < 3 {
					t.Errorf("only %d probes from 127.0.0.2", n)
				}
				eventually(t, 2*time.Second, "the old source's connections closed", func() bool {
					return closed["127.0.0.1"].get() == opened["127.0.0.1"].get()
				})
				if n := opened["127.0.0.2"].get(); n != 1 {
					t.Errorf("%d connections from 127.0.0.2, want 1 (reused)", n)
				}
				// The same source again keeps the kept connection.
				if err := e.SetSource(src2); err != nil {
					t.Fatal(err)
				}
				time.Sleep(3 * MinInterval)
				if n := opened["127.0.0.2"].get(); n != 1 {
					t.Errorf("%d connections from 127.0.0.2 after setting the same source again, want 1", n)
				}
			} else if n := len(after); n != 1 {
				t.Errorf("%d gRPC connections from 127.0.0.2, want 1 (reused)", n)
			}

			if err := e.SetSource(netip.Addr{}); err != nil {
				t.Fatal(err)
			}
			n := len(p.get())
			eventually(t, 5*time.Second, "a probe from 127.0.0.1 again", func() bool {
				return slices.Contains(p.get()[n:], "127.0.0.1")
			})
		})
	}
}

// A source that is not an address of this host is refused, and changes nothing.
func TestSetSourceNotLocal(t *testing.T) {
	e := NewEngine(Options{})
	defer e.Close()
	if err := e.SetSource(src2); err != nil {
		t.Fatal(err)
	}
	err := e.SetSource(notLocal)
	if err == nil {
		t.Fatalf("SetSource(%v) succeeded", notLocal)
	}
	want := "probe_source 203.0.113.77: listen tcp 203.0.113.77:0: bind: "
	if !strings.HasPrefix(err.Error(), want) || !errors.Is(err, syscall.EADDRNOTAVAIL) {
		t.Errorf("error %q, want %q... (EADDRNOTAVAIL)", err, want)
	}
	if e.Source() != src2 {
		t.Errorf("after a failed SetSource, Source() = %v, want %v", e.Source(), src2)
	}
	for _, bad := range []string{"0.0.0.0", "::", "224.0.0.1"} {
		if err := e.SetSource(netip.MustParseAddr(bad)); err == nil {
			t.Errorf("SetSource(%s) succeeded", bad)
		}
	}
	if e.Source() != src2 {
		t.Errorf("after failed SetSource calls, Source() = %v, want %v", e.Source(), src2)
	}
	if err := CheckSource(netip.Addr{}); err != nil {
		t.Errorf("CheckSource(zero): %v", err)
	}
	if err := CheckSource(netip.MustParseAddr("::ffff:127.0.0.2")); err != nil {
		t.Errorf("CheckSource(::ffff:127.0.0.2): %v", err)
	}
	// A probe from an address that cannot be bound fails, with the bind's error.
	_, port := httpBackend(t, func(w http.ResponseWriter, r *http.Request) {})
	r := ProbeFrom(context.Background(), testTarget(TypeHTTP, port, nil), notLocal)
	if r.OK || !errors.Is(r.Err, syscall.EADDRNOTAVAIL) {
		t.Errorf("probe from %v: %+v, want EADDRNOTAVAIL", notLocal, r)
	}
}

// A source of one IP family does not probe a target of the other: the probe fails with
// ErrSourceFamily, at once.
func TestSourceFamily(t *testing.T) {
	l, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skip("no IPv6 loopback:", err)
	}
	l.Close()
	six := netip.MustParseAddr("::1")
	for _, c := range []struct {
		from netip.Addr
		addr string
	}{{src2, "::1"}, {six, "127.0.0.1"}, {six, "::ffff:127.0.0.1"}} {
		for _, typ := range []string{TypeHTTP, TypeTCP, TypeDNS, TypeGRPC} {
			tg := testTarget(typ, 1, func(c *Config) { c.Query = "ok.test." })
			tg = NewTarget(tg.Name, *tg.Config, c.addr)
			r := ProbeFrom(context.Background(), tg, c.from)
			if r.OK || !errors.Is(r.Err, ErrSourceFamily) || r.Reason != ReasonOther {
				t.Errorf("%s probe of %s from %s: %+v, want %v", typ, c.addr, c.from, r, ErrSourceFamily)
			}
		}
	}
	// A name without an address of the source's family.
	if ips, _ := net.DefaultResolver.LookupNetIP(context.Background(), "ip6", "localhost"); len(ips) == 0 {
		tg := testTarget(TypeTCP, 1, nil)
		tg = NewTarget(tg.Name, *tg.Config, "localhost")
		r := ProbeFrom(context.Background(), tg, six)
		if r.OK || !errors.Is(r.Err, ErrSourceFamily) || !strings.Contains(r.Err.Error(), "localhost has no IPv6 address") {
			t.Errorf("probe of localhost (IPv4 only) from ::1: %+v, want %v", r, ErrSourceFamily)
		}
	}
}

// A kept connection from another source is not reused: take closes it.
func TestKeeperSource(t *testing.T) {
	now := time.Now()
	a, b := net.Pipe()
	defer b.Close()
	s1, s2 := newSource(src2), newSource(src2)
	var k keeper
	k.put(&probeConn{raw: a, conn: a, born: now, src: s1}, 1<<20)
	if got := k.take(now, s2); got != nil {
		t.Errorf("a connection from another source was reused")
	}
	if err := a.SetDeadline(time.Time{}); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("a connection from another source was not closed")
	}
}

// On Linux, a probe's TCP socket bound to a source leaves the choice of its port to connect
// (IP_BIND_ADDRESS_NO_PORT), so that the ephemeral ports are shared among destinations.
func TestSourceBindNoPort(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Linux only")
	}
	l := listen(t)
	conn, err := newSource(src2).dial(context.Background(), "tcp", "127.0.0.1", portOf(t, l.Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rc, _ := conn.(*net.TCPConn).SyscallConn()
	var v int
	rc.Control(func(fd uintptr) { v, err = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort) })
	if err != nil || v != 1 {
		t.Errorf("IP_BIND_ADDRESS_NO_PORT = %d, %v; want 1", v, err)
	}
	if got := conn.LocalAddr().(*net.TCPAddr).IP.String(); got != "127.0.0.2" {
		t.Errorf("local address %s, want 127.0.0.2", got)
	}
}
