package healthcheck

import (
	"net"
	"testing"

	"github.com/miekg/dns"
)

// dnsBackend serves, over UDP and TCP on one port of 127.0.0.1:
// ok.test. NOERROR with an A record; nx.test. NXDOMAIN; big.test. truncated over UDP and NOERROR
// over TCP; bigfail.test. truncated over UDP and SERVFAIL over TCP. It returns the port and a
// count of TCP queries.
func dnsBackend(t *testing.T) (int, *counter) {
	tcpQueries := new(counter)
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		_, overTCP := w.RemoteAddr().(*net.TCPAddr)
		if overTCP {
			tcpQueries.add(1)
		}
		switch name := r.Question[0].Name; {
		case name == "ok.test.":
			rr, _ := dns.NewRR("ok.test. 60 IN A 192.0.2.1")
			m.Answer = append(m.Answer, rr)
		case name == "nx.test.":
			m.Rcode = dns.RcodeNameError
		case !overTCP:
			m.Truncated = true
		case name == "bigfail.test.":
			m.Rcode = dns.RcodeServerFailure
		}
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
		pc.Close() // the TCP port is taken: try another
	}
	udp := &dns.Server{PacketConn: pc, Handler: h}
	tcp := &dns.Server{Listener: l, Handler: h}
	go udp.ActivateAndServe()
	go tcp.ActivateAndServe()
	t.Cleanup(func() {
		udp.Shutdown()
		tcp.Shutdown()
	})
	return portOf(t, pc.LocalAddr().String()), tcpQueries
}

func TestProbeDNS(t *testing.T) {
	t.Parallel()
	port, tcpQueries := dnsBackend(t)
	query := func(q string) func(*Config) { return func(c *Config) { c.Query = q } }

	wantReason(t, probe(t, testTarget(TypeDNS, port, query("ok.test"))), "")
	wantReason(t, probe(t, testTarget(TypeDNS, port, query("nx.test."))), ReasonDNS)
	if n := tcpQueries.get(); n != 0 {
		t.Errorf("%d queries over TCP before any truncation", n)
	}
	wantReason(t, probe(t, testTarget(TypeDNS, port, query("big.test."))), "")
	if n := tcpQueries.get(); n != 1 {
		t.Errorf("%d queries over TCP after a truncated answer, want 1", n)
	}
	wantReason(t, probe(t, testTarget(TypeDNS, port, query("bigfail.test."))), ReasonDNS)
}

func TestProbeDNSFailures(t *testing.T) {
	t.Parallel()
	// A UDP socket that reads queries and never answers.
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	closed, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()

	query := func(c *Config) { c.Query = "ok.test." }
	wantReason(t, probe(t, testTarget(TypeDNS, portOf(t, silent.LocalAddr().String()), query)), ReasonTimeout)
	wantReason(t, probe(t, testTarget(TypeDNS, portOf(t, closed.LocalAddr().String()), query)), ReasonRefused)
}
