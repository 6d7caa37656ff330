package zones

import (
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

var parseLine = regexp.MustCompile(`at line: (\d+):\d+`)

// validate checks what the decoder cannot see key by key: names against the zone, references
// between checks, regions and services, and the static records.
func (d *decoder) validate(pf *PolicyFile) {
	sv := d.validateContext(pf)
	serviceAt := map[string]string{}
	for _, s := range pf.Services {
		if !d.serviceName(pf, s) {
			continue
		}
		if other, dup := serviceAt[s.Name]; dup {
			d.fail("services."+s.Key, "names the same name %s as service %q", s.Name, other)
			continue
		}
		serviceAt[s.Name] = s.Key
		d.validateService(sv, s)
	}
}

// validateContext checks all but the services, and returns what the check of each service
// reads.
func (d *decoder) validateContext(pf *PolicyFile) *serviceCtx {
	zone := pf.Zone
	nsSeen := map[string]bool{}
	for i, ns := range pf.NS {
		if ns == "" {
			d.fail(fmt.Sprintf("ns[%d]", i), "must not be empty")
		} else if nsSeen[ns] {
			d.fail(fmt.Sprintf("ns[%d]", i), "%s is listed twice", ns)
		}
		nsSeen[ns] = true
	}

	// Static records.
	owners := map[string]bool{}
	cuts := map[string]bool{} // delegation points below the apex
	if strings.TrimSpace(pf.Records) != "" {
		// $TTL makes ttl the default of every record without one; SetDefaultTTL would let each
		// explicit TTL become the default of the records after it (RFC 1035's old rule).
		zp := dns.NewZoneParser(strings.NewReader(fmt.Sprintf("$TTL %d\n%s", pf.TTL, pf.Records)), zone, "") // "": the error names the file itself
		for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
			h := rr.Header()
			name := strings.ToLower(h.Name)
			switch {
			case !dns.IsSubDomain(zone, name):
				d.recordErr(pf, rr, "%s is outside the zone %s", h.Name, zone)
				continue
			case h.Rrtype == dns.TypeSOA:
				d.recordErr(pf, rr, "an SOA record is not allowed here; set its fields under soa:")
				continue
			case h.Rrtype == dns.TypeNS && name == zone:
				d.recordErr(pf, rr, "the apex NS set comes from ns:, not from records")
				continue
			case h.Rrtype == dns.TypeNS:
				cuts[name] = true
			case h.Rrtype == dns.TypeNSEC3 || h.Rrtype == dns.TypeNSEC3PARAM:
				d.recordErr(pf, rr, "NSEC3 records are not supported")
				continue
			}
			owners[name] = true
			pf.Static = append(pf.Static, rr)
		}
		if err := zp.Err(); err != nil {
			line := pf.RecLine
			if m := parseLine.FindStringSubmatch(err.Error()); m != nil && d.recLiteral {
				n, _ := strconv.Atoi(m[1])
				// Lines count from 1, and the $TTL line comes first; an error at the end is
				// on the last line.
				line += min(max(n-2, 0), strings.Count(strings.TrimSuffix(pf.Records, "\n"), "\n"))
			}
			msg := strings.TrimPrefix(err.Error(), "dns: ")
			if i := strings.Index(msg, " at line: "); i >= 0 {
				msg = msg[:i]
			}
			d.errs = append(d.errs, &Error{File: d.file, Line: line, Path: "records", Msg: msg})
		}
	}

	// Regions and networks.
	regionNames := sortedKeys(pf.Regions)
	for _, name := range regionNames {
		for i, fb := range pf.Regions[name].Fallback {
			if pf.Regions[fb] == nil {
				d.fail(fmt.Sprintf("regions.%s.fallback[%d]", name, i), "region %q is not defined (defined: %s)", fb, strings.Join(regionNames, ", "))
			}
		}
	}
	networked := map[string]bool{}
	for _, nw := range pf.Networks {
		networked[nw.Region] = true
		if pf.Regions[nw.Region] == nil {
			d.fail("networks."+nw.Prefix.String(), "region %q is not defined (defined: %s)", nw.Region, strings.Join(regionNames, ", "))
		}
	}

	return &serviceCtx{pf: pf, owners: owners, cuts: cuts, networked: networked, regionNames: regionNames,
		checkNames: append(sortedKeys(pf.Checks), CheckNone)}
}

// serviceCtx is what the check of one service reads: built once, read-only while services
// are checked, so that services can be checked in parallel.
type serviceCtx struct {
	pf           *PolicyFile
	owners, cuts map[string]bool // names of static records; delegation points below the apex
	networked    map[string]bool // regions named by networks
	regionNames  []string
	checkNames   []string
}

// checkDefined reports a check name that names no check.
func (d *decoder) checkDefined(sv *serviceCtx, path, name string) {
	if _, ok := sv.pf.Checks[name]; !ok && name != CheckNone {
		d.fail(path, "check %q is not defined (defined: %s)", name, strings.Join(sv.checkNames, ", "))
	}
}

// serviceName sets the service's fully qualified name and reports whether it is a valid name
// inside the zone.
func (d *decoder) serviceName(pf *PolicyFile, s *ServiceSpec) bool {
	zone := pf.Zone
	sp := "services." + s.Key
	switch {
	case s.Key == "@":
		s.Name = zone
	case strings.HasSuffix(s.Key, "."):
		s.Name = strings.ToLower(s.Key)
	default:
		s.Name = strings.ToLower(s.Key) + "." + zone
	}
	if _, ok := dns.IsDomainName(s.Name); !ok || strings.Contains(s.Key, "*") || strings.Contains(s.Key, " ") {
		d.fail(sp, "%q is not a valid name (wildcards are not supported for services)", s.Key)
		return false
	}
	if !dns.IsSubDomain(zone, s.Name) {
		d.fail(sp, "%s is outside the zone %s", s.Name, zone)
		return false
	}
	return true
}

// validateService checks one service whose name is valid and its own, and fills in the
// checks of its endpoints.
func (d *decoder) validateService(sv *serviceCtx, s *ServiceSpec) {
	sp := "services." + s.Key
	if sv.owners[s.Name] {
		d.fail(sp, "%s also has static records; a service owns its name alone", s.Name)
	}
	for cut := range sv.cuts {
		if dns.IsSubDomain(cut, s.Name) {
			d.fail(sp, "%s lies at or below the delegation to %s", s.Name, cut)
		}
	}
	d.checkDefined(sv, sp+".check", s.Check)
	if s.Sticky && s.Policy != Weighted {
		d.fail(sp+".sticky", "applies to policy weighted only")
	}
	if s.WhenAllDown == AllDownFallback && len(s.Fallback) == 0 {
		d.fail(sp+".when_all_down", "fallback needs addresses under fallback, such as fallback: [192.0.2.250]")
	}
	if len(s.Pools) > MaxPools {
		d.fail(sp+".pools", "has %d pools; a service has at most %d", len(s.Pools), MaxPools)
	}
	if len(s.Pools) == 0 {
		d.fail(sp, "needs at least one pool under pools")
	}
	for i, p := range s.Pools {
		pp := sp + ".pools[" + strconv.Itoa(i) + "]"
		d.validatePool(sv, s, p, pp)
	}
}

func (d *decoder) validatePool(sv *serviceCtx, s *ServiceSpec, p *PoolSpec, pp string) {
	pf, networked, regionNames := sv.pf, sv.networked, sv.regionNames
	if p.Region != "" {
		r := pf.Regions[p.Region]
		switch {
		case (s.Policy == Geo || s.Policy == Nearest) && r == nil:
			d.fail(pp+".region", "region %q is not defined (defined: %s)", p.Region, strings.Join(regionNames, ", "))
		case s.Policy == Geo && r.Continent == "" && len(r.Countries) == 0 && !networked[p.Region]:
			d.fail(pp+".region", "region %q has no continent, countries or networks for policy geo", p.Region)
		case s.Policy == Nearest && r.Location == nil:
			d.fail(pp+".region", "region %q has no location for policy nearest", p.Region)
		}
	} else if s.Policy == Geo || s.Policy == Nearest {
		d.fail(pp+".region", "required for policy %s", s.Policy)
	}
	if len(p.Endpoints) == 0 {
		d.fail(pp+".endpoints", "a pool needs at least one endpoint")
		return
	}
	// Endpoints are told apart by name or by address; keying the address as a netip.Addr
	// spares a string per endpoint (500,000 in the largest zones).
	type key struct {
		name string
		ip   netip.Addr
	}
	seen := make(map[key]bool, len(p.Endpoints))
	names, addrs := 0, 0
	for j, ep := range p.Endpoints {
		// The path is built only for a message: most endpoints never need it.
		ep2 := func() string { return pp + ".endpoints[" + strconv.Itoa(j) + "]" }
		k := key{name: ep.Name}
		if ep.Name != "" {
			names++
			if ep.Name == s.Name {
				d.fail(ep2(), "a service cannot be a CNAME to itself")
			}
		} else {
			addrs++
			k.ip = ep.IP
		}
		if seen[k] {
			d.fail(ep2(), "%s is listed twice in this pool", ep.Address)
		}
		seen[k] = true
		if ep.Check == "" {
			ep.Check = s.Check
		} else {
			d.checkDefined(sv, ep2()+".check", ep.Check)
		}
	}
	if names > 0 && addrs > 0 {
		d.fail(pp+".endpoints", "mixes names (answered as CNAME) and addresses; put them in separate pools")
	}
	if s.MinPercent == 0 && s.MinHealthy > len(p.Endpoints) {
		d.fail("services."+s.Key+".min_healthy", "is %d but pool %s has only %d endpoints, so it could never be healthy",
			s.MinHealthy, pp[len("services."+s.Key)+1:], len(p.Endpoints))
	}
}

// recordErr reports a problem with one static record, at the line that names its owner (the
// zone parser does not say which line a record came from).
func (d *decoder) recordErr(pf *PolicyFile, rr dns.RR, format string, args ...any) {
	owner := strings.ToLower(rr.Header().Name)
	rel := strings.TrimSuffix(strings.TrimSuffix(owner, pf.Zone), ".")
	if owner == pf.Zone {
		rel = "@"
	}
	line := pf.RecLine
	for i, text := range strings.Split(pf.Records, "\n") {
		f := strings.Fields(strings.ToLower(text))
		if d.recLiteral && len(f) > 0 && (f[0] == rel || f[0] == owner) {
			line = pf.RecLine + i
			break
		}
	}
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Path: "records", Msg: fmt.Sprintf(format, args...)})
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
