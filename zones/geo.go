package zones

import (
	"math"
	"net/netip"

	"github.com/gaissmai/bart"
)

// NetRule is what a networks entry maps a client prefix to.
type NetRule struct {
	Region string
	Bits   uint8 // the rule's prefix length: the ECS scope of an answer that used it
}

// Networks maps client prefixes to regions by longest prefix, built at compile time.
// github.com/gaissmai/bart answers a look-up without allocating, in a few dozen nanoseconds
// for any table size.
type Networks struct{ t bart.Table[NetRule] }

func compileNetworks(nws []Network) *Networks {
	if len(nws) == 0 {
		return nil
	}
	n := &Networks{}
	for _, nw := range nws {
		n.t.Insert(nw.Prefix, NetRule{Region: nw.Region, Bits: uint8(nw.Prefix.Bits())})
	}
	return n
}

// Lookup returns the most specific rule that covers all of client: a rule longer than the
// client's prefix (a /25 for a client /24) does not cover it, since the client may lie in
// either half.
func (n *Networks) Lookup(client netip.Prefix) (NetRule, bool) {
	if n == nil || !client.IsValid() {
		return NetRule{}, false
	}
	return n.t.LookupPrefix(client)
}

// GeoPools is what the geo and nearest policies know of a service's pools, built at compile time.
// Pool sets are bitmasks: bit i is pool i.
type GeoPools struct {
	Regions    map[string]uint64 // region name -> its pools
	Countries  map[string]uint64 // country code -> the pools of the regions that list it
	Continents map[string]uint64 // continent code -> the pools of the regions on it
}

func compileGeo(s *ServiceSpec, regions map[string]*Region) *GeoPools {
	g := &GeoPools{Regions: map[string]uint64{}, Countries: map[string]uint64{}, Continents: map[string]uint64{}}
	for i, p := range s.Pools {
		bit := uint64(1) << i
		g.Regions[p.Region] |= bit
		r := regions[p.Region]
		if r == nil {
			continue
		}
		for _, c := range r.Countries {
			g.Countries[c] |= bit
		}
		if r.Continent != "" {
			g.Continents[r.Continent] |= bit
		}
	}
	return g
}

// regionLocations returns the location of every region that has one, as a unit vector.
func regionLocations(regions map[string]*Region) map[string][3]float64 {
	out := map[string][3]float64{}
	for name, r := range regions {
		if r.Location != nil {
			out[name] = UnitVector(r.Location[0], r.Location[1])
		}
	}
	return out
}

// UnitVector returns the point at latitude lat and longitude lon (degrees) on the unit
// sphere. The dot product of two of them orders distances as the great circle does: the
// larger, the nearer.
func UnitVector(lat, lon float64) [3]float64 {
	φ, λ := lat*math.Pi/180, lon*math.Pi/180
	return [3]float64{math.Cos(φ) * math.Cos(λ), math.Cos(φ) * math.Sin(λ), math.Sin(φ)}
}

// EarthRadiusKm is the mean radius of the Earth.
const EarthRadiusKm = 6371.0

// Kilometres returns the great-circle distance between two unit vectors.
func Kilometres(a, b [3]float64) float64 {
	dot := a[0]*b[0] + a[1]*b[1] + a[2]*b[2]
	return EarthRadiusKm * math.Acos(max(-1, min(1, dot)))
}
