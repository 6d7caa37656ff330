package zones

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/coredns/coredns/plugin/file"
	"github.com/coredns/coredns/plugin/pkg/upstream"
	"github.com/miekg/dns"
	"github.com/steerdns/steerdns/healthcheck"
)

// Zone is a compiled policy file: immutable once published, safe for any number of readers.
type Zone struct {
	Origin string // fully qualified, lower case
	Path   string // the policy file
	Hash   string // hash of the file's content
	Serial uint32 // SOA serial in use
	// FileSerial is the SOA serial the file gives; 0 when the serial is derived at load time
	// (see Reserial).
	FileSerial uint32
	TTL        uint32              // the file's ttl: the default TTL of static records
	Regions    map[string]*Region  // the file's regions, by name
	Static     *file.Zone          // SOA, NS and static records, served by the file plugin's lookup
	NegSOA     []dns.RR            // the SOA for negative answers, TTL min(SOA TTL, minttl)
	Services   map[string]*Service // by fully qualified, lower-case name
	Targets    []healthcheck.Target
	// Networks maps client prefixes to regions; nil when the file has no networks.
	Networks *Networks
	// RegionAt holds each region's location (UnitVector), for regions that have one.
	RegionAt map[string][3]float64
	// nodata holds the authority of the when_all_down: nodata answers, one per degraded_ttl
	// in use, indexed by Service.nodata: the negative SOA with a TTL of at most that.
	nodata [][]dns.RR
}

// Service is a compiled steered name. Its ServiceSpec is a copy without the Pools, which the
// compiled Pools replace: the compiled zone keeps nothing of the decoded file but what it
// serves (at 100,000 services the decoded file was ~100 MB).
type Service struct {
	*ServiceSpec
	Pools []*Pool
	// Fallback holds the when_all_down: fallback answers by family (0 = A, 1 = AAAA).
	Fallback [2][]dns.RR
	// TotalWeight is the sum of the pools' weights.
	TotalWeight int
	// Geo places the pools of a geo or nearest service; nil for the other policies.
	Geo *GeoPools
	// UniformWeights is true when every endpoint of the service has the same weight, so that
	// max_answers draws without weighing.
	UniformWeights bool
	nodata         int32 // index of its nodata authority in the zone's (see Zone.NodataSOA)
}

// NodataSOA returns the authority of svc's when_all_down: nodata answer: the negative SOA with
// a TTL of at most its degraded_ttl, so that resolvers ask again soon.
func (z *Zone) NodataSOA(svc *Service) []dns.RR { return z.nodata[svc.nodata] }

// Family indexes of the prepared answers.
const (
	V4 = 0
	V6 = 1
)

// TTL kinds of the prepared answers.
const (
	Primary  = 0 // the service's ttl
	Degraded = 1 // the service's degraded_ttl
)

// Pool is a compiled pool.
type Pool struct {
	Region     string
	Label      string // Region, or "pools[N]" when the pool names none: for metrics and logs
	Weight     int
	MinHealthy int  // endpoints that must be up for the pool to be healthy
	CNAME      bool // endpoints are names, answered as CNAME
	// Location is the region's location as a unit vector (UnitVector); HasLocation says
	// whether the region has one.
	Location    [3]float64
	HasLocation bool
	Endpoints   []*Endpoint
	// all holds, per family, the answer with the service's ttl when every endpoint of that
	// family is up.
	all [2][]dns.RR
	// degraded holds the records with degraded_ttl, made the first time the pool answers
	// with them (see Record): most pools never do, and at 100,000 services they were 50 MB.
	degraded    atomic.Pointer[degradedRRs]
	degradedTTL uint32
}

// degradedRRs are a pool's records with the service's degraded_ttl.
type degradedRRs struct {
	rr  []dns.RR    // per endpoint, in the order of Pool.Endpoints
	all [2][]dns.RR // per family, as Pool.all
}

// Record returns the answer record of the pool's endpoint i with the TTL of kind (Primary or
// Degraded): an A, AAAA or CNAME. Records are shared and must not be changed.
func (p *Pool) Record(i, kind int) dns.RR {
	if kind == Primary {
		return p.Endpoints[i].RR
	}
	return p.withDegradedTTL().rr[i]
}

// Answer returns the records of every endpoint of family fam with the TTL of kind, in the
// order of Endpoints: the answer when all are up. It is shared and must not be changed.
func (p *Pool) Answer(kind, fam int) []dns.RR {
	if kind == Primary {
		return p.all[fam]
	}
	return p.withDegradedTTL().all[fam]
}

// withDegradedTTL returns the pool's records with degraded_ttl, made on first use. Two
// queries that race to make them each make a set, and the first stored serves from then on.
func (p *Pool) withDegradedTTL() *degradedRRs {
	if d := p.degraded.Load(); d != nil {
		return d
	}
	d := &degradedRRs{rr: make([]dns.RR, len(p.Endpoints))}
	for i, ep := range p.Endpoints {
		rr := dns.Copy(ep.RR)
		rr.Header().Ttl = p.degradedTTL
		d.rr[i] = rr
		if !p.CNAME {
			d.all[ep.Family] = append(d.all[ep.Family], rr)
		}
	}
	if !p.degraded.CompareAndSwap(nil, d) {
		return p.degraded.Load()
	}
	return d
}

// Endpoint is a compiled endpoint. It holds no live health: the plugin's health view keeps the
// state of its target, found by Target.
type Endpoint struct {
	Address string
	Family  int // V4 or V6; unused for CNAME endpoints
	Weight  int
	Check   string // check name, CheckNone for always up
	// Target indexes the zone's Targets: the (check, address) pair probed for this endpoint;
	// NoTarget for check none.
	Target int32
	// RR is the answer record with the service's ttl: an A, AAAA or CNAME. Pool.Record gives
	// it with degraded_ttl too.
	RR dns.RR
}

// NoTarget is the Target of an endpoint with check none: always up.
const NoTarget = -1

// placeholderType marks service names in the static tree, so that empty non-terminals,
// wildcards and NXDOMAIN are decided with the service names present. It is never served:
// queries at a service name are answered by the service.
const placeholderType = dns.TypeNULL

// Compile turns a validated policy file into a zone with serial as its SOA serial.
func Compile(pf *PolicyFile, hash string, serial uint32) *Zone {
	z := &Zone{Origin: pf.Zone, Path: pf.Path, Hash: hash, Serial: serial, FileSerial: pf.SOA.Serial, TTL: pf.TTL, Regions: pf.Regions}
	st := file.NewZone(pf.Zone, pf.Path)
	st.Upstream = upstream.New()
	soa := &dns.SOA{
		Hdr:     dns.RR_Header{Name: pf.Zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: pf.TTL},
		Ns:      pf.NS[0],
		Mbox:    pf.SOA.Mbox,
		Serial:  serial,
		Refresh: pf.SOA.Refresh,
		Retry:   pf.SOA.Retry,
		Expire:  pf.SOA.Expire,
		Minttl:  pf.SOA.MinTTL,
	}
	st.Insert(soa)
	neg := dns.Copy(soa).(*dns.SOA)
	neg.Hdr.Ttl = min(pf.TTL, pf.SOA.MinTTL)
	z.NegSOA = []dns.RR{neg}
	for _, ns := range pf.NS {
		st.Insert(&dns.NS{Hdr: dns.RR_Header{Name: pf.Zone, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: pf.TTL}, Ns: ns})
	}
	for _, rr := range pf.Static {
		st.Insert(dns.Copy(rr))
	}
	z.Static = st
	z.Networks = compileNetworks(pf.Networks)
	z.RegionAt = regionLocations(pf.Regions)

	// Services are built on every core, each on its own: at 100,000 services (500,000
	// endpoints and a million answer records) building them was most of Compile. Meanwhile one
	// goroutine puts their names in the static tree, which takes one writer.
	services := make([]*Service, len(pf.Services))
	placed := make(chan struct{})
	go func() {
		defer close(placed)
		for _, s := range pf.Services {
			st.Insert(&dns.NULL{Hdr: dns.RR_Header{Name: s.Name, Rrtype: placeholderType, Class: dns.ClassINET}})
		}
	}()
	inParallel(len(pf.Services), 512, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			services[i] = compileService(pf.Services[i], pf.Regions)
		}
	})
	<-placed

	// Targets are made once per Key and shared by the endpoints that name them; z.Targets
	// holds each distinct Key once, in file order, and endpoints index it. A check's Key is
	// computed once (at 100,000 services, per-endpoint NewTarget calls were a third of
	// Compile), and an endpoint's target key is looked up from a buffer, so an endpoint whose
	// target exists already makes nothing. This pass stays on one core, so that z.Targets
	// keeps its order.
	//
	// The targets of a check share one config, and so do checks with the same settings under
	// other names (same Key and quorum): a Target is a pointer to it, not a copy, which at
	// 500,000 targets was 115 MB.
	ofCheck := map[string]checkConfig{}         // check name -> its config and Key
	configs := map[string]*healthcheck.Config{} // Key and quorum -> the config shared
	// z.Targets and the index of their keys get their final size at once: growing them by
	// doubling was a good part of this pass at 500,000 targets.
	checked := 0
	for _, cs := range services {
		for _, p := range cs.Pools {
			for _, ep := range p.Endpoints {
				if ep.Check != CheckNone {
					checked++
				}
			}
		}
	}
	z.Targets = make([]healthcheck.Target, 0, checked)
	index := make(map[string]int32, checked) // target key -> index in z.Targets
	var key []byte                           // a key to look up, without making its target
	z.Services = make(map[string]*Service, len(services))
	nodata := map[uint32]int32{} // degraded_ttl -> index in z.nodata
	for _, cs := range services {
		i, ok := nodata[cs.DegradedTTL]
		if !ok {
			i = int32(len(z.nodata))
			nodata[cs.DegradedTTL] = i
			z.nodata = append(z.nodata, nodataSOA(neg, cs.DegradedTTL))
		}
		cs.nodata = i
		for _, p := range cs.Pools {
			for _, ep := range p.Endpoints {
				if ep.Check == CheckNone {
					continue
				}
				cc, known := ofCheck[ep.Check]
				if !known {
					cc = internConfig(configs, pf.Checks[ep.Check])
					ofCheck[ep.Check] = cc
				}
				key = healthcheck.AppendTargetKey(key[:0], cc.key, ep.Address)
				i, ok := index[string(key)]
				if !ok {
					t := healthcheck.NewTargetKeyed(ep.Check, cc.config, cc.key, ep.Address)
					i = int32(len(z.Targets))
					index[t.Key] = i
					z.Targets = append(z.Targets, t)
				}
				ep.Target = i
			}
		}
		z.Services[cs.Name] = cs
	}
	if len(z.Targets) < cap(z.Targets)/2 { // many endpoints share targets: give the rest back
		z.Targets = slices.Clone(z.Targets)
	}
	if len(z.Targets) == 0 {
		z.Targets = nil
	}
	return z
}

// checkConfig is a check's config as its targets share it, and its Key.
type checkConfig struct {
	config *healthcheck.Config
	key    string
}

// internConfig returns c as the targets of its check share it: the config of configs with the
// same Key and quorum, else a copy of c, which it adds. Two checks whose Keys are equal but
// whose settings are not (a Key is text, and a path or a host may hold its separator) keep a
// config each.
func internConfig(configs map[string]*healthcheck.Config, c healthcheck.Config) checkConfig {
	cc := checkConfig{key: c.Key()}
	k := cc.key + "|" + strconv.Itoa(c.Quorum)
	if cc.config = configs[k]; cc.config != nil && reflect.DeepEqual(*cc.config, c) {
		return cc
	}
	cc.config = &c
	if configs[k] == nil {
		configs[k] = cc.config
	}
	return cc
}

// nodataSOA returns the authority of a nodata answer for a service of degraded_ttl ttl.
func nodataSOA(neg *dns.SOA, ttl uint32) []dns.RR {
	nd := dns.Copy(neg).(*dns.SOA)
	nd.Hdr.Ttl = min(nd.Hdr.Ttl, ttl)
	return []dns.RR{nd}
}

// Reserial returns a zone that serves what z serves with serial as its SOA serial. It shares
// z's services, targets and static records, which are immutable; only the SOA records differ.
func (z *Zone) Reserial(serial uint32) *Zone {
	nz := *z
	nz.Serial = serial
	st := file.NewZone(z.Origin, z.Path)
	st.Upstream = z.Static.Upstream
	st.Tree = z.Static.Tree
	st.Apex = z.Static.Apex
	soa := dns.Copy(st.Apex.SOA).(*dns.SOA)
	soa.Serial = serial
	st.Apex.SOA = soa
	nz.Static = st
	neg := dns.Copy(z.NegSOA[0]).(*dns.SOA)
	neg.Serial = serial
	nz.NegSOA = []dns.RR{neg}
	nz.nodata = make([][]dns.RR, len(z.nodata))
	for i, nd := range z.nodata {
		nz.nodata[i] = nodataSOA(neg, nd[0].Header().Ttl)
	}
	return &nz
}

// compileService builds one service, all but the targets of its endpoints and its nodata
// authority. It reads only s and regions, so that services compile in parallel.
func compileService(s *ServiceSpec, regions map[string]*Region) *Service {
	spec := *s
	spec.Pools = nil
	cs := &Service{ServiceSpec: &spec, Pools: make([]*Pool, 0, len(s.Pools)), UniformWeights: true}
	if s.Policy == Geo || s.Policy == Nearest {
		cs.Geo = compileGeo(s, regions)
	}
	weight := 0
	for i, ps := range s.Pools {
		p := &Pool{Region: ps.Region, Label: ps.Region, Weight: ps.Weight, MinHealthy: s.HealthMinimum(len(ps.Endpoints)),
			Endpoints: make([]*Endpoint, 0, len(ps.Endpoints)), degradedTTL: s.DegradedTTL}
		if p.Label == "" {
			p.Label = fmt.Sprintf("pools[%d]", i)
		}
		if r := regions[ps.Region]; r != nil && r.Location != nil {
			p.Location, p.HasLocation = UnitVector(r.Location[0], r.Location[1]), true
		}
		cs.TotalWeight += ps.Weight
		for _, es := range ps.Endpoints {
			ep := &Endpoint{Address: es.Address, Weight: es.Weight, Check: es.Check, Target: NoTarget}
			if weight == 0 {
				weight = es.Weight
			} else if es.Weight != weight {
				cs.UniformWeights = false
			}
			ep.RR = addressRR(dns.RR_Header{Name: s.Name, Class: dns.ClassINET, Ttl: s.TTL}, es)
			if es.Name != "" {
				p.CNAME = true
			} else {
				ep.Family = family(es.IP)
				p.all[ep.Family] = append(p.all[ep.Family], ep.RR)
			}
			p.Endpoints = append(p.Endpoints, ep)
		}
		cs.Pools = append(cs.Pools, p)
	}
	for _, ip := range s.Fallback {
		hdr := dns.RR_Header{Name: s.Name, Class: dns.ClassINET, Ttl: s.DegradedTTL}
		cs.Fallback[family(ip)] = append(cs.Fallback[family(ip)], addressRR(hdr, &EndpointSpec{IP: ip}))
	}
	return cs
}

func family(ip netip.Addr) int {
	if ip.Is4() {
		return V4
	}
	return V6
}

func addressRR(hdr dns.RR_Header, es *EndpointSpec) dns.RR {
	switch {
	case es.Name != "":
		hdr.Rrtype = dns.TypeCNAME
		return &dns.CNAME{Hdr: hdr, Target: es.Name}
	case es.IP.Is4():
		hdr.Rrtype = dns.TypeA
		return &dns.A{Hdr: hdr, A: es.IP.AsSlice()}
	default:
		hdr.Rrtype = dns.TypeAAAA
		return &dns.AAAA{Hdr: hdr, AAAA: es.IP.AsSlice()}
	}
}

// Service returns the service at name (fully qualified, lower case), or nil.
func (z *Zone) Service(name string) *Service { return z.Services[name] }

// Relative returns name relative to the zone, "@" for the apex; for labels in metrics and logs.
func (z *Zone) Relative(name string) string {
	if name == z.Origin {
		return "@"
	}
	return strings.TrimSuffix(name, "."+z.Origin)
}
