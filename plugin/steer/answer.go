package steer

import (
	"context"
	"slices"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/file"
	"github.com/miekg/dns"
	"github.com/steerdns/steerdns/zones"
)

// maxChain bounds CNAME chains followed inside a zone.
const maxChain = 8

// serveStatic answers from the static records with the file plugin's lookup, then applies the
// two deliberate differences (the negative-answer SOA TTL of RFC 2308 and ANY per RFC 8482) and
// continues a CNAME chain that ends at a service.
func (s *Steer) serveStatic(ctx context.Context, w dns.ResponseWriter, r *dns.Msg, q *query) (int, error) {
	state, z := q.state, q.zone
	qname, qtype := state.Name(), state.QType()
	answer, ns, extra, result := z.Static.Lookup(ctx, state, qname)
	if len(answer) == 0 && (result == file.NameError || result == file.Success) && s.Next != nil && s.Fall.Through(qname) {
		return plugin.NextOrFailure(s.Name(), s.Next, ctx, w, r)
	}
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	// The file plugin's lookup returns slices of the zone itself; clip them so that a plugin
	// that appends to the reply (dnssec does) copies instead of writing into the zone.
	m.Answer, m.Ns, m.Extra = slices.Clip(answer), slices.Clip(ns), slices.Clip(extra)

	switch result {
	case file.Success:
		if qtype != dns.TypeCNAME && len(answer) > 0 {
			if c, ok := answer[len(answer)-1].(*dns.CNAME); ok {
				if svc := z.Services[c.Target]; svc != nil {
					rcode, _ := s.answerService(ctx, q, svc, q.served.answers[svc], qtype, 1, m)
					if rcode == dns.RcodeServerFailure {
						return rcode, nil
					}
				}
			}
		}
	case file.NoData:
		if qtype == dns.TypeANY {
			m.Answer, m.Ns = []dns.RR{hinfo(qname, z)}, nil
		}
	case file.NameError:
		m.Rcode = dns.RcodeNameError
	case file.Delegation:
		if len(m.Answer) == 0 {
			m.Authoritative = false
		}
	case file.ServerFailure:
		if len(m.Answer) == 0 {
			return dns.RcodeServerFailure, nil
		}
		m.Rcode = dns.RcodeServerFailure
	}
	negativeSOA(m, z)
	q.echoECS(m)
	w.WriteMsg(m)
	return dns.RcodeSuccess, nil
}

// negativeSOA gives the SOA of a negative answer the TTL min(SOA TTL, minttl) (RFC 2308 §3).
func negativeSOA(m *dns.Msg, z *zones.Zone) {
	if len(m.Ns) == 0 || m.Ns[0].Header().Rrtype != dns.TypeSOA {
		return
	}
	if len(m.Ns) == 1 {
		m.Ns = z.NegSOA
		return
	}
	ns := make([]dns.RR, len(m.Ns))
	copy(ns, m.Ns)
	ns[0] = z.NegSOA[0]
	m.Ns = ns
}

// hinfo is the RFC 8482 §4.2 answer to ANY at a name that exists.
func hinfo(name string, z *zones.Zone) dns.RR {
	return &dns.HINFO{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeHINFO, Class: dns.ClassINET, Ttl: z.TTL}, Cpu: "RFC8482"}
}

// serveService answers a query at a service name.
func (s *Steer) serveService(ctx context.Context, w dns.ResponseWriter, r *dns.Msg, q *query, svc *zones.Service) (int, error) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	qtype := q.state.QType()
	rcode, out := s.answerService(ctx, q, svc, q.served.answers[svc], qtype, 0, m)
	if rcode == dns.RcodeServerFailure {
		return rcode, nil
	}
	if qtype == dns.TypeANY && len(m.Answer) == 0 && m.Rcode == dns.RcodeSuccess && out != outNodata {
		m.Answer, m.Ns = []dns.RR{hinfo(svc.Name, q.zone)}, nil
	}
	q.echoECS(m)
	w.WriteMsg(m)
	return dns.RcodeSuccess, nil
}

// answerService appends the answer of svc for qtype to m: the policy's choice, or the
// when_all_down answer. A CNAME endpoint inside the zone is followed. depth counts the CNAMEs
// followed so far.
func (s *Steer) answerService(ctx context.Context, q *query, svc *zones.Service, ctr *serviceCounters, qtype uint16, depth int, m *dns.Msg) (int, outcome) {
	z := q.zone
	c := choose(svc, q)
	if ctr != nil {
		ctr.count(c.outcome)
	}
	switch c.outcome {
	case outServfail:
		return dns.RcodeServerFailure, c.outcome
	case outNodata:
		m.Ns = z.NodataSOA(svc)
		return dns.RcodeSuccess, c.outcome
	case outFallback:
		appendFamilies(m, qtype, svc.Fallback[zones.V4], svc.Fallback[zones.V6])
		if len(m.Answer) == 0 {
			m.Ns = z.NegSOA
		}
		return dns.RcodeSuccess, c.outcome
	}

	// A chosen pool of names answers with one CNAME, whatever the type (RFC 1034 §3.6.2).
	if c.pool >= 0 && svc.Pools[c.pool].CNAME {
		p := svc.Pools[c.pool]
		chosen := 0
		for i, e := range p.Endpoints {
			if c.failOpen || q.health.up(p, e) {
				chosen = i
				break
			}
		}
		cname := p.Record(chosen, c.kind)
		m.Answer = append(m.Answer, cname)
		if qtype != dns.TypeCNAME {
			s.follow(ctx, q, cname.(*dns.CNAME).Target, qtype, depth+1, m)
		}
		return dns.RcodeSuccess, c.outcome
	}

	before := len(m.Answer)
	switch qtype {
	case dns.TypeA:
		appendPools(m, q, svc, c, zones.V4)
	case dns.TypeAAAA:
		appendPools(m, q, svc, c, zones.V6)
	case dns.TypeANY:
		appendPools(m, q, svc, c, zones.V4)
		appendPools(m, q, svc, c, zones.V6)
	}
	if len(m.Answer) == before && before == 0 {
		m.Ns = z.NegSOA
	}
	return dns.RcodeSuccess, c.outcome
}

func appendFamilies(m *dns.Msg, qtype uint16, v4, v6 []dns.RR) {
	switch qtype {
	case dns.TypeA:
		m.Answer = append(m.Answer, v4...)
	case dns.TypeAAAA:
		m.Answer = append(m.Answer, v6...)
	case dns.TypeANY:
		m.Answer = append(m.Answer, v4...)
		m.Answer = append(m.Answer, v6...)
	}
}

// appendPools appends the endpoints of family fam that c chose, up to max_answers.
func appendPools(m *dns.Msg, q *query, svc *zones.Service, c choice, fam int) {
	start := len(m.Answer)
	if c.pool >= 0 {
		appendPool(m, q.health, svc.Pools[c.pool], c, fam)
	} else {
		for _, p := range svc.Pools {
			if !p.CNAME && (c.failOpen || q.health.healthy(p)) {
				appendPool(m, q.health, p, c, fam)
			}
		}
	}
	if n := len(m.Answer) - start; svc.MaxAnswers > 0 && n > svc.MaxAnswers {
		// Keep max_answers of them at random, on a private copy, since the slice may be shared
		// with the compiled zone.
		picked := make([]dns.RR, n)
		copy(picked, m.Answer[start:])
		var w []int
		if !svc.UniformWeights {
			w = answerWeights(q, svc, c, fam, n)
		}
		if len(w) == n {
			drawWeighted(picked, w, svc.MaxAnswers, q.randN)
		} else {
			// Equal weights: a partial Fisher-Yates shuffle.
			for i := range svc.MaxAnswers {
				j := i + q.randN(n-i)
				picked[i], picked[j] = picked[j], picked[i]
			}
		}
		// Cap the slice at start: m.Answer may be the zone's own prepared slice.
		m.Answer = append(m.Answer[:start:start], picked[:svc.MaxAnswers]...)
	}
}

// answerWeights returns the weights of the n records appendPools appended, in their order:
// appendPool lists a pool's endpoints of a family in file order, those up (or all, failing
// open).
func answerWeights(q *query, svc *zones.Service, c choice, fam, n int) []int {
	w := make([]int, 0, n)
	visit := func(p *zones.Pool) {
		for _, ep := range p.Endpoints {
			if ep.Family == fam && (c.failOpen || q.health.up(p, ep)) {
				w = append(w, ep.Weight)
			}
		}
	}
	if c.pool >= 0 {
		visit(svc.Pools[c.pool])
	} else {
		for _, p := range svc.Pools {
			if !p.CNAME && (c.failOpen || q.health.healthy(p)) {
				visit(p)
			}
		}
	}
	return w
}

// drawWeighted moves k records of rrs to its front, drawn without replacement, each in
// proportion to its weight among those left.
func drawWeighted(rrs []dns.RR, w []int, k int, randN func(int) int) {
	total := 0
	for _, x := range w {
		total += x
	}
	for i := range k {
		r := randN(total)
		j := i
		for ; j < len(w)-1 && r >= w[j]; j++ {
			r -= w[j]
		}
		total -= w[j]
		rrs[i], rrs[j] = rrs[j], rrs[i]
		w[i], w[j] = w[j], w[i]
	}
}

func appendPool(m *dns.Msg, h zoneHealth, p *zones.Pool, c choice, fam int) {
	all := p.Answer(c.kind, fam)
	if c.failOpen {
		m.Answer = appendShared(m.Answer, all)
		return
	}
	for _, ep := range p.Endpoints {
		if ep.Family == fam && !h.up(p, ep) {
			// Some are down: copy those that are up.
			for i, e := range p.Endpoints {
				if e.Family == fam && h.up(p, e) {
					m.Answer = append(m.Answer, p.Record(i, c.kind))
				}
			}
			return
		}
	}
	m.Answer = appendShared(m.Answer, all)
}

// appendShared appends rrs to answer, reusing rrs itself when answer is empty. The result must
// not be appended to in place afterwards, so its capacity is clipped.
func appendShared(answer, rrs []dns.RR) []dns.RR {
	if len(answer) == 0 {
		return rrs[:len(rrs):len(rrs)]
	}
	return append(answer, rrs...)
}

// follow continues a CNAME whose target lies in the zone: a service's answer or the static
// records'. Targets outside the zone are left to the resolver.
func (s *Steer) follow(ctx context.Context, q *query, target string, qtype uint16, depth int, m *dns.Msg) {
	z := q.zone
	if depth > maxChain || !dns.IsSubDomain(z.Origin, target) {
		return
	}
	if svc := z.Services[target]; svc != nil {
		s.answerService(ctx, q, svc, nil, qtype, depth, m)
		return
	}
	sub := q.state.NewWithQuestion(target, qtype)
	answer, ns, _, result := z.Static.Lookup(ctx, sub, target)
	m.Answer = append(m.Answer, answer...)
	switch result {
	case file.NameError:
		m.Rcode = dns.RcodeNameError
		m.Ns = slices.Clip(ns)
		negativeSOA(m, z)
	case file.NoData:
		m.Ns = slices.Clip(ns)
		negativeSOA(m, z)
	}
}
