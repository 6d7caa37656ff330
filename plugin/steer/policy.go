package steer

import (
	"context"
	"encoding/binary"
	"math"
	"net/netip"

	"github.com/coredns/coredns/request"
	"github.com/steerdns/steerdns/zones"
)

// outcome is how an answer came about; the values are the outcome label of
// coredns_steer_answers_total.
type outcome int

const (
	outPrimary  outcome = iota // the healthy first choice
	outFailover                // a healthy pool, not the first choice
	outFailOpen                // no pool healthy: answered as if every endpoint were up
	outFallback                // no pool healthy: the fallback addresses
	outNodata                  // no pool healthy: NODATA
	outServfail                // no pool healthy: SERVFAIL
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"primary", "failover", "fail_open", "fallback", "nodata", "servfail"}

func (o outcome) String() string { return outcomeNames[o] }

// choice is what a policy decided for one query.
type choice struct {
	pool     int  // the chosen pool; -1 = every pool (multivalue)
	failOpen bool // treat every endpoint as up
	kind     int  // zones.Primary or zones.Degraded: which TTL
	outcome  outcome
}

// query is what one answer needs, made once per query: the request, the zone and the health
// view it is answered from, the client, the random source, and the ECS scope the answer
// depended on. Policies are functions of (service, query) alone, so that explain runs the
// very code an answer runs.
type query struct {
	ctx    context.Context
	state  request.Request
	zone   *zones.Zone
	served *zoneServed
	health zoneHealth
	randN  func(n int) int
	client client
	scope  uint8  // ECS scope prefix of the answer: the most bits of the client it depended on
	trace  *trace // explain's record of the decisions; nil when answering
}

// choose runs the service's policy.
func choose(svc *zones.Service, q *query) choice {
	var c choice
	switch svc.Policy {
	case zones.Weighted:
		c = weighted(svc, q)
	case zones.Multivalue:
		c = multivalue(svc, q)
	case zones.Geo:
		c = geo(svc, q)
	case zones.Nearest:
		c = nearest(svc, q)
	default:
		c = failover(svc, q)
	}
	if q.trace != nil {
		q.trace.chose(svc, q, c)
	}
	return c
}

func failover(svc *zones.Service, q *query) choice {
	for i, p := range svc.Pools {
		if q.health.healthy(p) {
			if i == 0 {
				return choice{pool: 0, kind: zones.Primary, outcome: outPrimary}
			}
			return choice{pool: i, kind: zones.Degraded, outcome: outFailover}
		}
	}
	return allDown(svc, 0)
}

func multivalue(svc *zones.Service, q *query) choice {
	any, all := false, true
	for _, p := range svc.Pools {
		if q.health.healthy(p) {
			any = true
		}
		for _, ep := range p.Endpoints {
			if !q.health.up(p, ep) {
				all = false
			}
		}
	}
	switch {
	case !any:
		return allDown(svc, -1)
	case all:
		return choice{pool: -1, kind: zones.Primary, outcome: outPrimary}
	}
	return choice{pool: -1, kind: zones.Degraded, outcome: outFailover}
}

// weighted picks one healthy pool at random in proportion to the weights or, when sticky, by
// weighted rendezvous hashing of the client's subnet, so that only the clients of a failed
// pool move.
func weighted(svc *zones.Service, q *query) choice {
	var up uint64 // bit i: pool i is healthy; validation allows at most 64 pools
	total, n := 0, 0
	for i, p := range svc.Pools {
		if q.health.healthy(p) {
			total += p.Weight
			n++
			up |= 1 << i
		}
	}
	isUp := func(i int) bool { return up&(1<<i) != 0 }
	all := func(int) bool { return true }
	if n == 0 {
		c := allDown(svc, 0)
		if c.failOpen {
			c.pool = pickWeighted(svc, q, all, svc.TotalWeight)
		}
		return c
	}
	c := choice{kind: zones.Primary, outcome: outPrimary}
	if svc.Sticky {
		// The client's first choice among all pools; only when it is down, among the healthy.
		client := stickyKey(q)
		if c.pool = rendezvous(svc, client, all); !isUp(c.pool) {
			c.pool = rendezvous(svc, client, isUp)
			c.kind, c.outcome = zones.Degraded, outFailover
		}
		return c
	}
	c.pool = pickWeighted(svc, q, isUp, total)
	if n < len(svc.Pools) {
		c.kind, c.outcome = zones.Degraded, outFailover
	}
	return c
}

func pickWeighted(svc *zones.Service, q *query, ok func(int) bool, total int) int {
	if svc.Sticky {
		return rendezvous(svc, stickyKey(q), ok)
	}
	r := q.randN(total)
	for i, p := range svc.Pools {
		if !ok(i) {
			continue
		}
		if r < p.Weight {
			return i
		}
		r -= p.Weight
	}
	return len(svc.Pools) - 1
}

// rendezvous returns the pool with the highest weighted score for the client's subnet among
// the pools ok accepts.
func rendezvous(svc *zones.Service, subnet netip.Prefix, ok func(int) bool) int {
	best, bestScore := -1, math.Inf(-1)
	b := subnet.Addr().As16()
	key := binary.BigEndian.Uint64(b[:8]) ^ mix(binary.BigEndian.Uint64(b[8:])^uint64(subnet.Bits()))
	for i, p := range svc.Pools {
		if !ok(i) {
			continue
		}
		h := mix(key ^ mix(uint64(i)+0x9e3779b97f4a7c15))
		// Map the hash to (0,1) and score -w/ln(u): weighted rendezvous hashing; the largest wins.
		u := (float64(h>>11) + 0.5) / (1 << 53)
		score := -float64(p.Weight) / math.Log(u)
		if score > bestScore {
			best, bestScore = i, score
		}
	}
	return best
}

// stickyKey is the subnet a sticky choice hashes: the client's prefix cut to /24 (IPv4) or
// /56 (IPv6), or shorter when the client gave fewer bits. The answer's ECS scope is that
// length: every client of the subnet gets the same pool.
func stickyKey(q *query) netip.Prefix {
	p := q.clientPrefix()
	if !p.IsValid() {
		return netip.Prefix{}
	}
	bits := 56
	if p.Addr().Is4() {
		bits = 24
	}
	bits = min(bits, p.Bits())
	k, _ := p.Addr().Prefix(bits)
	q.useScope(bits)
	return k
}

// mix is the splitmix64 finalizer: a cheap hash with good avalanche.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// allDown applies when_all_down; pool is the pool that fail-open answers from.
func allDown(svc *zones.Service, pool int) choice {
	switch svc.WhenAllDown {
	case zones.AllDownNodata:
		return choice{pool: pool, kind: zones.Degraded, outcome: outNodata}
	case zones.AllDownServfail:
		return choice{pool: pool, kind: zones.Degraded, outcome: outServfail}
	case zones.AllDownFallback:
		return choice{pool: pool, kind: zones.Degraded, outcome: outFallback}
	}
	return choice{pool: pool, failOpen: true, kind: zones.Degraded, outcome: outFailOpen}
}
