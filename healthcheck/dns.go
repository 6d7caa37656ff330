package healthcheck

import (
	"context"
	"fmt"
	"time"

	"github.com/miekg/dns"
)

// probeDNS asks the target for Config.Query, type A, over UDP, and again over TCP when the answer
// is truncated. It passes on NOERROR, with or without records.
func probeDNS(ctx context.Context, c Config, addr string) error {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(c.Query), dns.TypeA)
	hp := hostPort(addr, c.Port)

	r, err := exchange(ctx, "udp", m, hp)
	if err == nil && r.Truncated {
		r, err = exchange(ctx, "tcp", m, hp)
	}
	if err != nil {
		return err
	}
	if r.Rcode != dns.RcodeSuccess {
		return &verdict{ReasonDNS, fmt.Errorf("%s A: rcode %s", m.Question[0].Name, dns.RcodeToString[r.Rcode])}
	}
	return nil
}

// exchange sends m to hp over network and returns the reply, bounded by ctx.
func exchange(ctx context.Context, network string, m *dns.Msg, hp string) (*dns.Msg, error) {
	deadline, _ := ctx.Deadline()
	cl := &dns.Client{Net: network, Dialer: dialer, Timeout: time.Until(deadline)}
	conn, err := cl.DialContext(ctx, hp)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	// ExchangeWithConnContext sets the conn's deadlines from ctx's deadline, but does not watch
	// for ctx's cancellation: closing the conn does.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	r, _, err := cl.ExchangeWithConnContext(ctx, m, conn)
	return r, err
}
