package steer

import (
	"math/bits"

	"github.com/steerdns/steerdns/zones"
)

// place is where the client is for the geo and nearest policies, and from what.
type place struct {
	region string // the region a networks rule names; "" when none matched
	rule   zones.NetRule
	// pools are the pools of the client's own region (bit i: pool i), from the networks rule,
	// else the country, else the continent; 0 when unknown.
	pools uint64
	from  string // "networks", "country", "continent" or "" (unknown)
}

// locate finds the client's place for svc: a networks rule of the zone, else the geoip
// country, else the continent. It records the ECS scope the answer then depends on.
func locate(svc *zones.Service, q *query) place {
	var pl place
	cp := q.clientPrefix()
	if !cp.IsValid() {
		return pl // not locatable: ECS source prefix 0, or no address
	}
	if rule, ok := q.zone.Networks.Lookup(cp); ok {
		q.useScope(int(rule.Bits))
		pl.region, pl.rule, pl.from = rule.Region, rule, "networks"
		pl.pools = svc.Geo.Regions[rule.Region]
		return pl
	}
	if q.zone.Networks != nil {
		q.useScope(q.sourceBits()) // no rule covers this subnet: another might cover another's
	}
	g := q.geoip()
	if svc.Policy == zones.Nearest {
		g = q.geoipLocation()
	}
	if g.country == "" && g.continent == "" && !g.hasLocation {
		return pl
	}
	q.useScope(q.sourceBits())
	if m := svc.Geo.Countries[g.country]; g.country != "" && m != 0 {
		pl.pools, pl.from = m, "country"
	} else if m := svc.Geo.Continents[g.continent]; g.continent != "" && m != 0 {
		pl.pools, pl.from = m, "continent"
	}
	return pl
}

// poolOrder lists pool indexes; a service has at most 64 pools.
type poolOrder struct {
	idx  [zones.MaxPools]int8
	n    int
	used uint64
}

func (o *poolOrder) add(mask uint64) {
	for m := mask &^ o.used; m != 0; m &= m - 1 {
		i := bits.TrailingZeros64(m)
		o.idx[o.n] = int8(i)
		o.n++
	}
	o.used |= mask
}

// geoOrder is the order in which geo tries the pools for a client at pl: its own region's,
// then its region's fallback regions' in order, then the rest in file order.
func geoOrder(svc *zones.Service, q *query, pl *place, o *poolOrder) {
	o.add(pl.pools)
	region := pl.region
	if region == "" && pl.pools != 0 {
		region = svc.Pools[bits.TrailingZeros64(pl.pools)].Region
	}
	if r := q.zone.Regions[region]; r != nil {
		for _, fb := range r.Fallback {
			o.add(svc.Geo.Regions[fb])
		}
	}
	o.add(1<<len(svc.Pools) - 1)
}

// geo answers from the first healthy pool in geoOrder. The first in that order is the
// primary choice; any other is degraded (the client is served from outside its region).
//
// The query path runs on the fresh goroutine miekg/dns starts for each query: its frames are
// kept small (orders and places by pointer), so that a geo answer does not grow the stack when
// a failover answer does not (a stack copy cost a quarter of the CPU).
func geo(svc *zones.Service, q *query) choice {
	var o poolOrder
	pl := locate(svc, q)
	geoOrder(svc, q, &pl, &o)
	if q.trace != nil {
		q.trace.located(&pl, &o)
	}
	return fromOrder(svc, q, &o)
}

// fromOrder chooses the first healthy pool of o; when none is, when_all_down applies to the
// first of o.
func fromOrder(svc *zones.Service, q *query, o *poolOrder) choice {
	for k := range o.n {
		i := int(o.idx[k])
		if q.health.healthy(svc.Pools[i]) {
			if k == 0 {
				return choice{pool: i, kind: zones.Primary, outcome: outPrimary}
			}
			return choice{pool: i, kind: zones.Degraded, outcome: outFailover}
		}
	}
	return allDown(svc, int(o.idx[0]))
}

// nearest answers from the healthy pool nearest the client by great-circle distance (ties in
// file order); the nearest of all is the primary choice. The client's coordinates come from a
// networks rule (its region's location) or from geoip; unknown, the pools go in file order.
func nearest(svc *zones.Service, q *query) choice {
	var at [3]float64
	known := false
	pl := locate(svc, q)
	if pl.region != "" {
		at, known = q.zone.RegionAt[pl.region]
	}
	if !known && pl.from != "networks" {
		if g := q.geoipLocation(); g.hasLocation {
			at, known = g.location, true
		}
	}
	var o poolOrder
	if known {
		// Selection by dot product, the larger the nearer: at most 64 pools.
		for o.n < len(svc.Pools) {
			best, bestDot := -1, -2.0
			for i, p := range svc.Pools {
				if o.used&(1<<i) != 0 {
					continue
				}
				if d := p.Location[0]*at[0] + p.Location[1]*at[1] + p.Location[2]*at[2]; d > bestDot {
					best, bestDot = i, d
				}
			}
			o.add(1 << best)
		}
	} else {
		o.add(1<<len(svc.Pools) - 1)
	}
	if q.trace != nil {
		q.trace.located(&pl, &o)
		if known {
			q.trace.at, q.trace.hasAt = at, true
		}
	}
	return fromOrder(svc, q, &o)
}
