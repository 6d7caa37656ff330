package zones

import (
	"net/netip"

	"github.com/miekg/dns"

	"github.com/steerdns/steerdns/healthcheck"
)

// Policy is the routing policy of a service.
type Policy string

// Routing policies.
const (
	Failover   Policy = "failover"
	Weighted   Policy = "weighted"
	Geo        Policy = "geo"
	Nearest    Policy = "nearest"
	Multivalue Policy = "multivalue"
)

// AllDown is what a service answers when no pool is healthy.
type AllDown string

// When-all-down modes.
const (
	AllDownAll      AllDown = "all"      // answer as if every endpoint were up (fail open)
	AllDownNodata   AllDown = "nodata"   // NOERROR with no answer
	AllDownServfail AllDown = "servfail" // SERVFAIL
	AllDownFallback AllDown = "fallback" // the service's fallback addresses
)

// MaxPools is the most pools a service may have (the policies keep pool sets as bitmasks).
const MaxPools = 64

// CheckNone is the check name that means "always up".
const CheckNone = "none"

// PolicyFile is a decoded, validated zone policy file: what the operator wrote, with every
// default filled in. Compile turns it into a Zone.
type PolicyFile struct {
	Path     string                        // where it was read from
	Zone     string                        // origin, fully qualified, lower case
	TTL      uint32                        // default TTL of static records
	NS       []string                      // apex NS set, fully qualified
	SOA      SOA                           // apex SOA fields
	Records  string                        // static records, master-file text
	RecLine  int                           // line of the first record line in the file
	Static   []dns.RR                      // the parsed static records
	Checks   map[string]healthcheck.Config // named checks, normalized
	Regions  map[string]*Region            // by name
	Networks []Network                     // client CIDR -> region, in file order
	Services []*ServiceSpec                // in file order
}

// SOA holds the apex SOA fields.
type SOA struct {
	Mbox    string // default hostmaster.<zone>
	Serial  uint32 // 0 = derived at load time, rising on each reload
	Refresh uint32 // default 14400 (Zonemaster flags less)
	Retry   uint32 // default 3600
	Expire  uint32 // default 1209600
	MinTTL  uint32 // negative-caching TTL, default 300 (Zonemaster flags less)
}

// Region is where pools live; geo and nearest use it.
type Region struct {
	Name      string
	Continent string      // two-letter continent code, upper case
	Countries []string    // ISO 3166 alpha-2 codes, upper case
	Location  *[2]float64 // latitude, longitude in degrees
	Fallback  []string    // regions to try next, in order
}

// Network maps a client prefix to a region.
type Network struct {
	Prefix netip.Prefix
	Region string
}

// ServiceSpec is one steered name, as the policy file describes it.
type ServiceSpec struct {
	Name        string // fully qualified, lower case
	Key         string // the key as written in the file, for messages
	Policy      Policy
	TTL         uint32
	DegradedTTL uint32
	Check       string  // default check of the endpoints; CheckNone = always up
	MinHealthy  int     // absolute count; 0 when MinPercent is used
	MinPercent  float64 // percentage (0-100] of a pool's endpoints; 0 when MinHealthy is used
	MaxAnswers  int     // 0 = all
	Sticky      bool
	WhenAllDown AllDown
	Fallback    []netip.Addr
	Pools       []*PoolSpec
}

// PoolSpec is a group of endpoints that live together, usually in one region.
type PoolSpec struct {
	Region    string
	Weight    int
	Endpoints []*EndpointSpec
}

// EndpointSpec is one address or name a service can answer with.
type EndpointSpec struct {
	Address string     // as written: an IP or a fully qualified name
	IP      netip.Addr // valid for address endpoints
	Name    string     // fully qualified target of a CNAME endpoint, lower case
	Check   string     // check name, CheckNone for always up
	Weight  int
}

// HealthMinimum returns how many endpoints of a pool of n must be up for it to be healthy.
func (s *ServiceSpec) HealthMinimum(n int) int {
	if s.MinPercent > 0 {
		m := int(float64(n)*s.MinPercent/100 + 0.999999)
		return max(m, 1)
	}
	return s.MinHealthy
}
