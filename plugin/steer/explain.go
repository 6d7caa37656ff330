package steer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/coredns/coredns/plugin/metadata"
	"github.com/coredns/coredns/request"
	"github.com/miekg/dns"
	"github.com/steerdns/steerdns/zones"
)

// trace records the decisions of one query for explain: ServeDNS passes none, explain passes
// one, and both run the same code.
type trace struct {
	decisions []decision
	// what the policy running now found, before it chose
	place place
	order []int8
	at    [3]float64
	hasAt bool
	set   bool // place was recorded
}

// decision is one policy run: the answer of a service, or of a service a CNAME led to.
type decision struct {
	svc   *zones.Service
	c     choice
	place place
	set   bool
	order []int
	at    [3]float64
	hasAt bool
	h     zoneHealth
}

// located records where the policy found the client and the order it tries the pools in.
func (t *trace) located(pl *place, o *poolOrder) {
	t.place, t.set = *pl, true
	t.order = make([]int8, o.n)
	copy(t.order, o.idx[:o.n])
}

// chose records the choice. Not inlined: its locals would grow the frame of choose, on the
// query path, though only explain calls it.
//
//go:noinline
func (t *trace) chose(svc *zones.Service, q *query, c choice) {
	d := decision{svc: svc, c: c, place: t.place, set: t.set, at: t.at, hasAt: t.hasAt, h: q.health}
	for _, i := range t.order {
		d.order = append(d.order, int(i))
	}
	t.decisions = append(t.decisions, d)
	t.place, t.order, t.hasAt, t.set = place{}, nil, false, false
}

// Explanation is the decision for one query, step by step, as the answer made it.
type Explanation struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Zone  string `json:"zone,omitempty"`
	Rcode string `json:"rcode"`
	// Client is where the query was taken to come from.
	Client ExplainClient `json:"client"`
	// Services lists each service decided, the asked name's first, then those CNAMEs led to.
	Services []ExplainService `json:"services,omitempty"`
	// Scope is the ECS scope prefix of the answer (present when the client was an ECS prefix).
	Scope  *int     `json:"scope,omitempty"`
	Answer []string `json:"answer"`
	TTL    *uint32  `json:"ttl,omitempty"`
	Steps  []string `json:"steps"`
}

// ExplainClient says where the client is and from what.
type ExplainClient struct {
	Address   string   `json:"address,omitempty"`
	Prefix    string   `json:"prefix,omitempty"`
	From      string   `json:"from"` // ecs, source or none
	Country   string   `json:"country,omitempty"`
	Continent string   `json:"continent,omitempty"`
	Latitude  *float64 `json:"latitude,omitempty"`
	Longitude *float64 `json:"longitude,omitempty"`
}

// ExplainService is one service's decision.
type ExplainService struct {
	Name    string `json:"name"`
	Policy  string `json:"policy"`
	Located string `json:"located,omitempty"` // how the client's region was found
	Region  string `json:"region,omitempty"`
	// Pools are in the order the policy considered them.
	Pools   []ExplainPool `json:"pools"`
	Chosen  string        `json:"chosen"`
	Outcome string        `json:"outcome"`
}

// ExplainPool is one pool as the policy saw it.
type ExplainPool struct {
	Index      int               `json:"index"`
	Region     string            `json:"region"`
	Healthy    bool              `json:"healthy"`
	Up         int               `json:"up"`
	MinHealthy int               `json:"min_healthy"`
	DistanceKm *float64          `json:"distance_km,omitempty"`
	Endpoints  []ExplainEndpoint `json:"endpoints"`
}

// ExplainEndpoint is one endpoint's effective state.
type ExplainEndpoint struct {
	Address string `json:"address"`
	State   string `json:"state"`
	Weight  int    `json:"weight"`
}

// ErrExplainClient is returned for a client that is neither an address nor a prefix.
var ErrExplainClient = errors.New("client must be an IP address (taken as the query's source) or a prefix such as 192.0.2.0/24 (sent as ECS)")

// Explain answers name and qtype as a query from client would be answered now, and says why:
// it runs the query path itself on the view served now. client is "" (no location), an
// address (the query's source) or a prefix (an ECS option with that source prefix).
func (s *Steer) Explain(ctx context.Context, name string, qtype uint16, clientSpec string) (*Explanation, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(strings.ToLower(name)), qtype)
	m.SetEdns0(4096, false)
	w := &explainWriter{}
	ex := &Explanation{Name: m.Question[0].Name, Type: dns.TypeToString[qtype], Client: ExplainClient{From: "none"}}
	if clientSpec != "" {
		if p, err := netip.ParsePrefix(clientSpec); err == nil {
			if p.Masked() != p {
				return nil, fmt.Errorf("%w: %s has bits set beyond /%d", ErrExplainClient, clientSpec, p.Bits())
			}
			fam := uint16(1)
			if p.Addr().Is6() {
				fam = 2
			}
			opt := m.IsEdns0()
			opt.Option = append(opt.Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: fam, SourceNetmask: uint8(p.Bits()), Address: p.Addr().AsSlice()})
			ex.Client.Prefix, ex.Client.From = p.String(), "ecs"
		} else if a, err := netip.ParseAddr(clientSpec); err == nil {
			w.remote = &net.UDPAddr{IP: a.AsSlice(), Port: 53}
			ex.Client.Address, ex.Client.From = a.String(), "source"
		} else {
			return nil, fmt.Errorf("%w, not %q", ErrExplainClient, clientSpec)
		}
	}
	if s.cfg.IgnoreECS && ex.Client.From == "ecs" {
		ex.Steps = append(ex.Steps, "ecs is off: the ECS option is ignored and the client is not located")
	}
	ctx = metadata.ContextWithMetadata(ctx)
	state := request.Request{W: w, Req: m}
	for _, p := range s.metadataProviders() {
		ctx = p.Metadata(ctx, state)
	}
	tr := &trace{}
	q := &query{trace: tr}
	rcode, _ := s.serve(ctx, w, m, q)
	if q.zone == nil {
		q = nil
	} else {
		ex.Zone = q.zone.Origin
		g := q.geoipLocation()
		ex.Client.Country, ex.Client.Continent = g.country, g.continent
		if g.hasLocation {
			ex.Client.Latitude, ex.Client.Longitude = &g.lat, &g.lon
		}
		if q.client.ecs != nil {
			sc := int(q.scope)
			ex.Scope = &sc
		}
	}
	reply := w.msg
	if reply == nil {
		ex.Rcode = dns.RcodeToString[rcode]
	} else {
		ex.Rcode = dns.RcodeToString[reply.Rcode]
		for _, rr := range reply.Answer {
			ex.Answer = append(ex.Answer, rr.String())
		}
		if len(reply.Answer) > 0 {
			ttl := reply.Answer[0].Header().Ttl
			ex.TTL = &ttl
		}
	}
	if ex.Answer == nil {
		ex.Answer = []string{}
	}
	if q == nil {
		ex.Steps = append(ex.Steps, fmt.Sprintf("%s is in no zone served here: %s", ex.Name, ex.Rcode))
		return ex, nil
	}
	if len(tr.decisions) == 0 {
		ex.Steps = append(ex.Steps, fmt.Sprintf("%s is not a steered name: answered from the static records of %s", ex.Name, ex.Zone))
	}
	for _, d := range tr.decisions {
		ex.Services = append(ex.Services, explainDecision(q, d, &ex.Steps))
	}
	switch {
	case ex.Scope != nil && *ex.Scope == 0:
		ex.Steps = append(ex.Steps, "ECS scope 0: the answer did not depend on where the client is")
	case ex.Scope != nil:
		ex.Steps = append(ex.Steps, fmt.Sprintf("ECS scope /%d: the answer holds for every client in that prefix", *ex.Scope))
	}
	return ex, nil
}

func explainDecision(q *query, d decision, steps *[]string) ExplainService {
	svc := d.svc
	es := ExplainService{Name: svc.Name, Policy: string(svc.Policy), Outcome: d.c.outcome.String()}
	if d.set {
		switch d.place.from {
		case "networks":
			es.Located = fmt.Sprintf("networks rule /%d -> region %s", d.place.rule.Bits, d.place.region)
			es.Region = d.place.region
		case "country":
			es.Located = "geoip country " + q.client.geo.country
		case "continent":
			es.Located = "geoip continent " + q.client.geo.continent
		default:
			es.Located = "unknown"
		}
	}
	switch {
	case !d.set:
		*steps = append(*steps, fmt.Sprintf("%s (%s): where the client is plays no part", svc.Name, svc.Policy))
	case es.Located == "unknown":
		*steps = append(*steps, fmt.Sprintf("%s (%s): client not located (no networks rule, no geoip data): pools in file order", svc.Name, svc.Policy))
	default:
		*steps = append(*steps, fmt.Sprintf("%s (%s): client located by %s", svc.Name, svc.Policy, es.Located))
	}
	order := d.order
	if order == nil {
		for i := range svc.Pools {
			order = append(order, i)
		}
	}
	for _, i := range order {
		p := svc.Pools[i]
		ep := ExplainPool{Index: i, Region: p.Label, MinHealthy: p.MinHealthy, Healthy: d.h.healthy(p)}
		for _, e := range p.Endpoints {
			st := d.h.state(p, e)
			if st.Up() {
				ep.Up++
			}
			ep.Endpoints = append(ep.Endpoints, ExplainEndpoint{Address: e.Address, State: st.String(), Weight: e.Weight})
		}
		if d.hasAt && p.HasLocation {
			km := zones.Kilometres(d.at, p.Location)
			ep.DistanceKm = &km
		}
		es.Pools = append(es.Pools, ep)
		health := "down"
		if ep.Healthy {
			health = "healthy"
		}
		dist := ""
		if ep.DistanceKm != nil {
			dist = fmt.Sprintf(", %.0f km away", *ep.DistanceKm)
		}
		*steps = append(*steps, fmt.Sprintf("  pool %d (%s): %s, %d of %d endpoints up, needs %d%s", i, p.Label, health, ep.Up, len(p.Endpoints), p.MinHealthy, dist))
	}
	switch {
	case d.c.outcome == outServfail || d.c.outcome == outNodata || d.c.outcome == outFallback:
		es.Chosen = "none"
		*steps = append(*steps, fmt.Sprintf("  no pool is healthy: when_all_down %s", svc.WhenAllDown))
	case d.c.pool < 0:
		es.Chosen = "every healthy pool"
		*steps = append(*steps, fmt.Sprintf("  answer: the up endpoints of every healthy pool (%s)", d.c.outcome))
	case d.c.failOpen:
		es.Chosen = svc.Pools[d.c.pool].Label
		*steps = append(*steps, fmt.Sprintf("  no pool is healthy: fail open, every endpoint of pool %d (%s)", d.c.pool, es.Chosen))
	default:
		es.Chosen = svc.Pools[d.c.pool].Label
		*steps = append(*steps, fmt.Sprintf("  chosen: pool %d (%s), %s", d.c.pool, es.Chosen, d.c.outcome))
	}
	ttl := svc.TTL
	if d.c.kind == zones.Degraded {
		ttl = svc.DegradedTTL
	}
	kind := "ttl"
	if d.c.kind == zones.Degraded {
		kind = "degraded_ttl"
	}
	*steps = append(*steps, fmt.Sprintf("  TTL %d (%s)", ttl, kind))
	return es
}

// explainWriter is the ResponseWriter of an explained query: it keeps the reply.
type explainWriter struct {
	remote net.Addr
	msg    *dns.Msg
}

// noAddr is the source of an explained query without a client: not locatable.
type noAddr struct{}

func (noAddr) Network() string { return "explain" }
func (noAddr) String() string  { return "none" }

func (w *explainWriter) LocalAddr() net.Addr {
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
}
func (w *explainWriter) RemoteAddr() net.Addr {
	if w.remote == nil {
		return noAddr{}
	}
	return w.remote
}
func (w *explainWriter) WriteMsg(m *dns.Msg) error { w.msg = m; return nil }
func (w *explainWriter) Write(b []byte) (int, error) {
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		return 0, err
	}
	w.msg = m
	return len(b), nil
}
func (w *explainWriter) Close() error        { return nil }
func (w *explainWriter) TsigStatus() error   { return nil }
func (w *explainWriter) TsigTimersOnly(bool) {}
func (w *explainWriter) Hijack()             {}
