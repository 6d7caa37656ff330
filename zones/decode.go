package zones

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/steerdns/steerdns/healthcheck"
	"go.yaml.in/yaml/v3"
)

// Decode reads one policy file strictly and validates it. Every problem found is returned, each
// naming the file, the line and the key path; nothing is returned with a non-nil error.
func Decode(path string, data []byte) (*PolicyFile, error) {
	if len(data) >= parallelMin {
		if pf := decodeParallel(path, data, chunkBytes); pf != nil {
			return pf, nil
		}
	}
	return decodeSequential(path, data)
}

// decodeSequential is Decode on one core: the reference that decodeParallel must match, and
// the only one that reports problems.
func decodeSequential(path string, data []byte) (*PolicyFile, error) {
	d := &decoder{file: path}
	pf := d.decode(data)
	if len(d.errs) > 0 {
		sort.SliceStable(d.errs, func(i, j int) bool { return d.errs[i].Line < d.errs[j].Line })
		return nil, d.errs
	}
	return pf, nil
}

type decoder struct {
	file string
	errs Errors
	root *yaml.Node // the document's top node, where validate's errors find their lines
	// recLiteral: records is a literal block (|), so its lines are lines of the file.
	recLiteral bool
}

// line returns the line of a key path, or of its nearest parent that has one. It walks the
// document only when an error needs it, so a valid file pays nothing for it.
func (d *decoder) line(path string) int {
	n, line := d.root, 0
	for path != "" && n != nil {
		n = resolve(n)
		switch {
		case strings.HasPrefix(path, "["):
			end := strings.IndexByte(path, ']')
			i, err := strconv.Atoi(path[1:max(end, 1)])
			if end < 0 || err != nil || n.Kind != yaml.SequenceNode || i >= len(n.Content) {
				return line
			}
			n, line, path = n.Content[i], n.Content[i].Line, path[end+1:]
		case n.Kind == yaml.MappingNode:
			path = strings.TrimPrefix(path, ".")
			// Keys may hold dots (www.eu, 192.0.2.0/24): take the longest key that the path
			// continues from.
			var next *yaml.Node
			best := -1
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i].Value
				if len(k) > best && strings.HasPrefix(path, k) && (len(path) == len(k) || path[len(k)] == '.' || path[len(k)] == '[') {
					best, next, line = len(k), n.Content[i+1], n.Content[i].Line
				}
			}
			if next == nil {
				return line
			}
			n, path = next, path[best:]
		default:
			return line
		}
	}
	return line
}

// fail records a problem found after decoding, at the line of path.
func (d *decoder) fail(path, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: d.line(path), Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (d *decoder) errf(n *yaml.Node, path, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// isParserProblem reports whether a yaml.v3 error message is one of its parser's, whose line
// yaml.v3 reports 0-based (its scanner's are 1-based).
func isParserProblem(msg string) bool {
	for _, p := range []string{"did not find expected <", "did not find expected node content",
		"did not find expected '-' indicator", "did not find expected key", "did not find expected ',' or",
		"found undefined tag handle", "found duplicate %", "found incompatible YAML document"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// yamlLines returns the number of lines of data as YAML counts them: CR LF, CR, LF, NEL, LS
// and PS each end a line.
func yamlLines(data []byte) int {
	n := 1
	for i := 0; i < len(data); i++ {
		switch {
		case data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n':
			i++
			n++
		case data[i] == '\r' || data[i] == '\n':
			n++
		case bytes.HasPrefix(data[i:], []byte("\u0085")), bytes.HasPrefix(data[i:], []byte("\u2028")),
			bytes.HasPrefix(data[i:], []byte("\u2029")):
			n++
		}
	}
	return n
}

func (d *decoder) decode(data []byte) *PolicyFile {
	root := d.parse(data)
	if root == nil {
		return nil
	}
	pf := d.walk(root)
	if pf == nil {
		return nil
	}
	d.validate(pf)
	return pf
}

// parse parses data as one YAML document and returns its top node, or nil with the problem
// recorded.
func (d *decoder) parse(data []byte) *yaml.Node {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.errf(nil, "", "the file is empty; it needs at least zone and ns")
			return nil
		}
		msg := err.Error()
		line := 0
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = m[2]
		}
		msg = strings.TrimPrefix(msg, "yaml: ")
		if isParserProblem(msg) {
			line++ // yaml.v3 gives parser (not scanner) errors a 0-based line
		}
		// A problem at the end of the file is reported past its last line.
		line = min(line, yamlLines(data))
		d.errs = append(d.errs, &Error{File: d.file, Line: line, Msg: "not valid YAML: " + msg})
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		d.errf(&extra, "", "a policy file holds one YAML document; remove the second one")
		return nil
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if isNull(resolve(root)) {
		d.errf(nil, "", "the file is empty; it needs at least zone and ns")
		return nil
	}
	return root
}

// walk decodes the document under root into a policy file with its defaults filled in, or
// returns nil with the problems recorded.
func (d *decoder) walk(root *yaml.Node) *PolicyFile {
	d.root = root
	pf := &PolicyFile{Path: d.file, TTL: 3600, SOA: SOA{Refresh: 14400, Retry: 3600, Expire: 1209600, MinTTL: 300}}
	var zoneNode, nsNode, recNode *yaml.Node
	d.mapping(root, "", map[string]func(*yaml.Node, string){
		"zone": func(n *yaml.Node, p string) { zoneNode = n; pf.Zone = d.fqdn(n, p) },
		"ttl":  func(n *yaml.Node, p string) { pf.TTL = d.ttl(n, p) },
		"ns": func(n *yaml.Node, p string) {
			nsNode = n
			for i, item := range d.seq(n, p) {
				pf.NS = append(pf.NS, d.fqdn(item, fmt.Sprintf("%s[%d]", p, i)))
			}
		},
		"soa":     func(n *yaml.Node, p string) { d.soa(n, p, &pf.SOA) },
		"records": func(n *yaml.Node, p string) { recNode = n; pf.Records = d.str(n, p) },
		"checks": func(n *yaml.Node, p string) {
			pf.Checks = map[string]healthcheck.Config{}
			d.checks(n, p, func(name string, c healthcheck.Config) { pf.Checks[name] = c })
		},
		"regions": func(n *yaml.Node, p string) {
			pf.Regions = map[string]*Region{}
			d.entries(n, p, func(k string, _, v *yaml.Node, p string) { pf.Regions[k] = d.region(k, v, p) })
		},
		"networks": func(n *yaml.Node, p string) {
			d.entries(n, p, func(k string, kn, v *yaml.Node, p string) {
				pfx, err := netip.ParsePrefix(k)
				if err != nil {
					d.errf(kn, p, "%q is not a CIDR prefix such as 192.0.2.0/24", k)
					return
				}
				if pfx.Masked() != pfx {
					d.errf(kn, p, "%s has host bits set; write %s", k, pfx.Masked())
					return
				}
				pf.Networks = append(pf.Networks, Network{Prefix: pfx, Region: d.name(v, p)})
			})
		},
		"services": func(n *yaml.Node, p string) {
			d.entries(n, p, func(k string, _, v *yaml.Node, p string) {
				pf.Services = append(pf.Services, d.service(k, v, p))
			})
		},
	})
	if root.Kind == yaml.MappingNode {
		if zoneNode == nil {
			d.errf(root, "zone", "required: the zone's origin, such as example.com.")
		}
		if nsNode == nil {
			d.errf(root, "ns", "required: the apex NS set, such as [ns1.example.com., ns2.example.com.]")
		} else if len(pf.NS) == 0 && resolve(nsNode).Kind == yaml.SequenceNode {
			d.errf(nsNode, "ns", "needs at least one name server")
		}
	}
	if len(d.errs) > 0 {
		return nil
	}
	if pf.SOA.Mbox == "" {
		pf.SOA.Mbox = "hostmaster." + pf.Zone
	}
	if recNode != nil {
		pf.RecLine = recNode.Line
		d.recLiteral = recNode.Style&yaml.LiteralStyle != 0
		if recNode.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
			pf.RecLine++
		}
	}
	return pf
}

// mapping walks a mapping node, calling the handler of each key; unknown and duplicate keys
// are errors.
func (d *decoder) mapping(n *yaml.Node, path string, fields map[string]func(*yaml.Node, string)) {
	d.entries(n, path, func(k string, kn, v *yaml.Node, p string) {
		f, ok := fields[k]
		if !ok {
			known := make([]string, 0, len(fields))
			for name := range fields {
				known = append(known, name)
			}
			sort.Strings(known)
			d.errf(kn, p, "unknown key %q (known: %s)", k, strings.Join(known, ", "))
			return
		}
		f(v, p)
	})
}

// entries walks a mapping node whose keys are names chosen by the operator.
func (d *decoder) entries(n *yaml.Node, path string, f func(key string, kn, v *yaml.Node, p string)) {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		if isNull(n) {
			return
		}
		d.errf(n, path, "must be a mapping of keys to values, not %s", describe(n))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, v := n.Content[i], n.Content[i+1]
		p := kn.Value
		if path != "" {
			p = path + "." + kn.Value
		}
		if kn.Kind != yaml.ScalarNode {
			d.errf(kn, path, "keys must be plain names")
			continue
		}
		if first, dup := seen[kn.Value]; dup {
			d.errf(kn, p, "duplicate key (first at line %d)", first)
			continue
		}
		seen[kn.Value] = kn.Line
		f(kn.Value, kn, v, p)
	}
}

func hasKey(n *yaml.Node, key string) bool {
	n = resolve(n)
	for i := 0; n.Kind == yaml.MappingNode && i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return true
		}
	}
	return false
}

func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "empty"
		case "!!int", "!!float":
			return "the number " + n.Value
		case "!!bool":
			return "the boolean " + n.Value
		}
		return strconv.Quote(n.Value)
	}
	return "this"
}

func (d *decoder) seq(n *yaml.Node, path string) []*yaml.Node {
	n = resolve(n)
	if n.Kind != yaml.SequenceNode {
		d.errf(n, path, "must be a list, not %s", describe(n))
		return nil
	}
	return n.Content
}

func (d *decoder) str(n *yaml.Node, path string) string {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		d.errf(n, path, "must be a string, not %s", describe(n))
		return ""
	}
	return n.Value
}

// name is a non-empty string.
func (d *decoder) name(n *yaml.Node, path string) string {
	s := d.str(n, path)
	if s == "" && n.ShortTag() == "!!str" {
		d.errf(n, path, "must not be empty")
	}
	return s
}

func (d *decoder) strs(n *yaml.Node, path string) []string {
	var out []string
	for i, item := range d.seq(n, path) {
		out = append(out, d.name(item, fmt.Sprintf("%s[%d]", path, i)))
	}
	return out
}

func (d *decoder) integer(n *yaml.Node, path string, lo, hi int64) int64 {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		d.errf(n, path, "must be a whole number, not %s", describe(n))
		return 0
	}
	v, err := strconv.ParseInt(n.Value, 0, 64)
	if err != nil || v < lo || v > hi {
		d.errf(n, path, "must be a whole number from %d to %d, not %s", lo, hi, n.Value)
		return 0
	}
	return v
}

func (d *decoder) ttl(n *yaml.Node, path string) uint32 {
	return uint32(d.integer(n, path, 0, math.MaxInt32))
}

func (d *decoder) boolean(n *yaml.Node, path string) bool {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
		d.errf(n, path, "must be true or false, not %s", describe(n))
		return false
	}
	return n.Value == "true" || n.Value == "True" || n.Value == "TRUE"
}

func (d *decoder) duration(n *yaml.Node, path string) time.Duration {
	if r := resolve(n); r.Kind == yaml.ScalarNode && (r.ShortTag() == "!!int" || r.ShortTag() == "!!float") {
		d.errf(r, path, "must be a duration with a unit, such as 5s or 250ms, not %s", describe(r))
		return 0
	}
	s := d.str(n, path)
	if s == "" {
		return 0
	}
	v, err := time.ParseDuration(s)
	if err != nil || v <= 0 {
		d.errf(n, path, "%q is not a positive duration such as 5s or 250ms", s)
		return 0
	}
	return v
}

func (d *decoder) fqdn(n *yaml.Node, path string) string {
	s := d.name(n, path)
	if s == "" {
		return ""
	}
	if !strings.HasSuffix(s, ".") {
		d.errf(n, path, "%q must be fully qualified, ending in a dot: %q", s, s+".")
		return ""
	}
	if _, ok := dns.IsDomainName(s); !ok {
		d.errf(n, path, "%q is not a valid domain name", s)
		return ""
	}
	return strings.ToLower(s)
}

func (d *decoder) soa(n *yaml.Node, path string, s *SOA) {
	u32 := func(dst *uint32) func(*yaml.Node, string) {
		return func(n *yaml.Node, p string) { *dst = uint32(d.integer(n, p, 0, math.MaxUint32)) }
	}
	d.mapping(n, path, map[string]func(*yaml.Node, string){
		"mbox":    func(n *yaml.Node, p string) { s.Mbox = d.fqdn(n, p) },
		"serial":  u32(&s.Serial),
		"refresh": u32(&s.Refresh),
		"retry":   u32(&s.Retry),
		"expire":  u32(&s.Expire),
		"minttl":  func(n *yaml.Node, p string) { s.MinTTL = d.ttl(n, p) },
	})
}

// checks walks the checks mapping n, giving add each check.
func (d *decoder) checks(n *yaml.Node, path string, add func(name string, c healthcheck.Config)) {
	d.entries(n, path, func(k string, kn, v *yaml.Node, p string) {
		if k == CheckNone {
			d.errf(kn, p, "%q is reserved (it means always up); choose another name", k)
			return
		}
		add(k, d.check(v, p))
	})
}

func (d *decoder) check(n *yaml.Node, path string) healthcheck.Config {
	var c healthcheck.Config
	d.fields(n, path, checkKeys, func(key string, n *yaml.Node, p string) {
		switch key {
		case "type":
			c.Type = d.name(n, p)
		case "port":
			c.Port = int(d.integer(n, p, 1, 65535))
		case "path":
			c.Path = d.path(n, p)
		case "host":
			c.Host = d.name(n, p)
		case "method":
			c.Method = d.name(n, p)
		case "headers":
			c.Headers = map[string]string{}
			d.entries(n, p, func(k string, _, v *yaml.Node, p string) { c.Headers[k] = d.str(v, p) })
		case "expect_status":
			for i, item := range d.seq(n, p) {
				ip := fmt.Sprintf("%s[%d]", p, i)
				item = resolve(item)
				if item.Kind != yaml.ScalarNode || (item.ShortTag() != "!!str" && item.ShortTag() != "!!int") {
					d.errf(item, ip, "must be a status code or a range like \"200-399\", not %s", describe(item))
					continue
				}
				r, err := healthcheck.ParseStatusRange(item.Value)
				if err != nil {
					d.errf(item, ip, "%v", err)
					continue
				}
				c.ExpectStatus = append(c.ExpectStatus, r)
			}
		case "expect_body":
			c.ExpectBody = d.str(n, p)
		case "insecure_tls":
			c.InsecureTLS = d.boolean(n, p)
		case "tls":
			c.TLS = d.boolean(n, p)
		case "query":
			c.Query = d.fqdn(n, p)
		case "service":
			c.Service = d.str(n, p)
		case "interval":
			c.Interval = d.duration(n, p)
		case "timeout":
			c.Timeout = d.duration(n, p)
		case "fast_interval":
			c.FastInterval = d.duration(n, p)
		case "rise":
			c.Rise = int(d.integer(n, p, 1, 100))
		case "fall":
			c.Fall = int(d.integer(n, p, 1, 100))
		case "quorum":
			c.Quorum = d.quorum(n, p)
		}
	})
	if c.Type == "" {
		written := hasKey(n, "type") // an empty type is reported already
		if r := resolve(n); !written && (r.Kind == yaml.MappingNode || isNull(r)) {
			d.errf(n, path+".type", "required: one of %s", strings.Join(healthcheck.Types, ", "))
		}
		return c
	}
	nc := c.Normalize()
	if field, err := nc.Validate(); err != nil {
		d.fail(path+"."+field, "%v", err) // at the field's line, else the check's
	}
	return nc
}

// quorum is any, majority, all, or a number of nodes: a string, or a whole number.
func (d *decoder) quorum(n *yaml.Node, path string) int {
	n = resolve(n)
	if n.Kind == yaml.ScalarNode && (n.ShortTag() == "!!str" || n.ShortTag() == "!!int") {
		if q, err := healthcheck.ParseQuorum(n.Value); err == nil {
			return q
		}
	}
	d.errf(n, path, "must be any, majority, all or a number of nodes from 1 to %d, not %s", healthcheck.MaxQuorum, describe(n))
	return 0
}

func (d *decoder) path(n *yaml.Node, p string) string {
	s := d.name(n, p)
	if s != "" && !strings.HasPrefix(s, "/") {
		d.errf(n, p, "%q must start with /", s)
	}
	return s
}

func (d *decoder) region(name string, n *yaml.Node, path string) *Region {
	r := &Region{Name: name}
	d.mapping(n, path, map[string]func(*yaml.Node, string){
		"continent": func(n *yaml.Node, p string) {
			r.Continent = strings.ToUpper(d.name(n, p))
			if r.Continent != "" && !continents[r.Continent] {
				d.errf(n, p, "%q is not a continent code (AF, AN, AS, EU, NA, OC, SA)", r.Continent)
			}
		},
		"countries": func(n *yaml.Node, p string) {
			for i, c := range d.strs(n, p) {
				if c != "" && len(c) != 2 {
					d.errf(n, fmt.Sprintf("%s[%d]", p, i), "%q is not an ISO 3166 two-letter country code", c)
				}
				r.Countries = append(r.Countries, strings.ToUpper(c))
			}
		},
		"location": func(n *yaml.Node, p string) {
			items := d.seq(n, p)
			if items == nil {
				return
			}
			if len(items) != 2 {
				d.errf(n, p, "must be [latitude, longitude]")
				return
			}
			var loc [2]float64
			for i, item := range items {
				item = resolve(item)
				v, err := strconv.ParseFloat(item.Value, 64)
				if item.Kind != yaml.ScalarNode || (item.ShortTag() != "!!float" && item.ShortTag() != "!!int") || err != nil {
					d.errf(item, p, "must be [latitude, longitude] in degrees, not %s", describe(item))
					return
				}
				loc[i] = v
			}
			if loc[0] < -90 || loc[0] > 90 || loc[1] < -180 || loc[1] > 180 {
				d.errf(n, p, "latitude must lie in [-90, 90] and longitude in [-180, 180]")
				return
			}
			r.Location = &loc
		},
		"fallback": func(n *yaml.Node, p string) { r.Fallback = d.strs(n, p) },
	})
	return r
}

var continents = map[string]bool{"AF": true, "AN": true, "AS": true, "EU": true, "NA": true, "OC": true, "SA": true}

// Keys of the mappings decoded with fields, sorted for the unknown-key message.
var (
	serviceKeys  = []string{"check", "degraded_ttl", "fallback", "max_answers", "min_healthy", "policy", "pools", "sticky", "ttl", "when_all_down"}
	poolKeys     = []string{"endpoints", "region", "weight"}
	endpointKeys = []string{"address", "check", "weight"}
	checkKeys    = []string{"expect_body", "expect_status", "fall", "fast_interval", "headers", "host", "insecure_tls", "interval",
		"method", "path", "port", "query", "quorum", "rise", "service", "timeout", "tls", "type"}
)

// fields walks a mapping of the given keys, as mapping does, with one handler for all of them:
// services, pools, endpoints and checks are many, and a map of closures per mapping was a good
// part of decoding 100,000 services (and of their 100,000 checks).
func (d *decoder) fields(n *yaml.Node, path string, known []string, f func(key string, v *yaml.Node, p string)) {
	d.entries(n, path, func(k string, kn, v *yaml.Node, p string) {
		if !slices.Contains(known, k) {
			d.errf(kn, p, "unknown key %q (known: %s)", k, strings.Join(known, ", "))
			return
		}
		f(k, v, p)
	})
}

func (d *decoder) service(key string, n *yaml.Node, path string) *ServiceSpec {
	s := &ServiceSpec{Key: key, Policy: Failover, TTL: 30, DegradedTTL: 10, Check: CheckNone, MinHealthy: 1, WhenAllDown: AllDownAll}
	maxSet := false
	d.fields(n, path, serviceKeys, func(key string, n *yaml.Node, p string) {
		switch key {
		case "policy":
			s.Policy = Policy(d.name(n, p))
			switch s.Policy {
			case Failover, Weighted, Geo, Nearest, Multivalue:
			default:
				d.errf(n, p, "%q is not a policy (failover, weighted, geo, nearest, multivalue)", s.Policy)
			}
		case "ttl":
			s.TTL = d.ttl(n, p)
		case "degraded_ttl":
			s.DegradedTTL = d.ttl(n, p)
		case "check":
			s.Check = d.name(n, p)
		case "min_healthy":
			d.minHealthy(s, n, p)
		case "max_answers":
			s.MaxAnswers = int(d.integer(n, p, 0, 1<<16))
			maxSet = true
		case "sticky":
			s.Sticky = d.boolean(n, p)
		case "when_all_down":
			s.WhenAllDown = AllDown(d.name(n, p))
			switch s.WhenAllDown {
			case AllDownAll, AllDownNodata, AllDownServfail, AllDownFallback:
			default:
				d.errf(n, p, "%q is not one of all, nodata, servfail, fallback", s.WhenAllDown)
			}
		case "fallback":
			for i, item := range d.seq(n, p) {
				ip := fmt.Sprintf("%s[%d]", p, i)
				text := d.name(item, ip)
				if text == "" {
					continue // reported by name
				}
				a, err := netip.ParseAddr(text)
				if err != nil {
					d.errf(item, ip, "%q is not an IP address", item.Value)
					continue
				}
				s.Fallback = append(s.Fallback, a.Unmap())
			}
		case "pools":
			for i, item := range d.seq(n, p) {
				s.Pools = append(s.Pools, d.pool(item, p+"["+strconv.Itoa(i)+"]"))
			}
		}
	})
	if s.Policy == Multivalue && !maxSet {
		s.MaxAnswers = 8
	}
	return s
}

func (d *decoder) minHealthy(s *ServiceSpec, n *yaml.Node, p string) {
	n = resolve(n)
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" && strings.HasSuffix(n.Value, "%") {
		v, err := strconv.ParseFloat(strings.TrimSuffix(n.Value, "%"), 64)
		if err != nil || v <= 0 || v > 100 {
			d.errf(n, p, "%q must be a percentage above 0%% and at most 100%%", n.Value)
			return
		}
		s.MinHealthy, s.MinPercent = 0, v
		return
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		d.errf(n, p, "must be a number of endpoints or a percentage such as \"50%%\", not %s", describe(n))
		return
	}
	s.MinHealthy = int(d.integer(n, p, 1, 1<<20))
}

func (d *decoder) pool(n *yaml.Node, path string) *PoolSpec {
	p := &PoolSpec{Weight: 1}
	d.fields(n, path, poolKeys, func(key string, n *yaml.Node, path string) {
		switch key {
		case "region":
			p.Region = d.name(n, path)
		case "weight":
			p.Weight = int(d.integer(n, path, 1, 1<<20))
		case "endpoints":
			items := d.seq(n, path)
			p.Endpoints = make([]*EndpointSpec, 0, len(items))
			for i, item := range items {
				if ep := d.endpoint(item, path+"["+strconv.Itoa(i)+"]"); ep != nil {
					p.Endpoints = append(p.Endpoints, ep)
				}
			}
		}
	})
	return p
}

func (d *decoder) endpoint(n *yaml.Node, path string) *EndpointSpec {
	ep := &EndpointSpec{Weight: 1}
	an, ap := n, path
	if resolve(n).Kind == yaml.MappingNode {
		an = nil
		d.fields(n, path, endpointKeys, func(key string, n *yaml.Node, p string) {
			switch key {
			case "address":
				an, ap = n, p
			case "check":
				ep.Check = d.name(n, p)
			case "weight":
				ep.Weight = int(d.integer(n, p, 1, 1<<20))
			}
		})
		if an == nil {
			d.errf(n, path+".address", "required: an IP address or a fully qualified name")
			return nil
		}
	}
	ep.Address = d.name(an, ap)
	if ep.Address == "" {
		return nil
	}
	if a, err := netip.ParseAddr(ep.Address); err == nil {
		if a.Zone() != "" {
			d.errf(an, ap, "%q: an address with a zone index cannot be answered", ep.Address)
			return nil
		}
		ep.IP = a.Unmap()
		return ep
	}
	if !strings.HasSuffix(ep.Address, ".") || strings.Trim(ep.Address, "0123456789.:") == "" {
		d.errf(an, ap, "%q is neither an IP address nor a fully qualified name (a name ends in a dot)", ep.Address)
		return nil
	}
	if _, ok := dns.IsDomainName(ep.Address); !ok {
		d.errf(an, ap, "%q is not a valid domain name", ep.Address)
		return nil
	}
	ep.Name = strings.ToLower(ep.Address)
	return ep
}
