package healthcheck

import (
	"context"
	"fmt"
	"time"

	"github.com/miekg/dns"
)

// probeDNS asks the target for Config.Query, type A, over UDP, and again over TCP when the answer
// is truncated. It passes on NOERROR, with or without records.
func probeDNS(ctx context.Context, c Config, addr string, src *source) error {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(c.Query), dns.TypeA)

	r, err := exchange(ctx, src, "udp", m, addr, c.Port)
	if err == nil && r.Truncated {
		r, err = exchange(ctx, src, "tcp", m, addr, c.Port)
	}
	if err != nil {
		return err
	}
	if r.Rcode != dns.RcodeSuccess {
		return &verdict{ReasonDNS, fmt.Errorf("%s A: rcode %s", m.Question[0].Name, dns.RcodeToString[r.Rcode])}
	}
	return nil
}

// exchange sends m to addr:port over network from src and returns the reply, bounded by ctx.
func exchange(ctx context.Context, src *source, network string, m *dns.Msg, addr string, port int) (*dns.Msg, error) {
	deadline, _ := ctx.Deadline()
	cl := &dns.Client{Net: network, Timeout: time.Until(deadline)}
	raw, err := src.dial(ctx, network, addr, port)
	if err != nil {
		return nil, err
	}
	conn := &dns.Conn{Conn: raw} // as cl.DialContext makes it (UDPSize 0: the default)
	defer conn.Close()
	// ExchangeWithConnContext sets the conn's deadlines from ctx's deadline, but does not watch
	// for ctx's cancellation: closing the conn does.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	r, _, err := cl.ExchangeWithConnContext(ctx, m, conn)
	return r, err
}
