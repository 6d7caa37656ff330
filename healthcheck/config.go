// Package healthcheck probes backends (HTTP, HTTPS, TCP, DNS, gRPC) on a schedule and keeps the
// state of each (check, target) pair with rise/fall hysteresis. It knows nothing about DNS
// answers or policy files: callers describe what to probe with Config and Target, and read the
// result through a Status, lock-free.
package healthcheck

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Check types.
const (
	TypeHTTP  = "http"
	TypeHTTPS = "https"
	TypeTCP   = "tcp"
	TypeDNS   = "dns"
	TypeGRPC  = "grpc"
)

// Types lists the check types, in the order the documentation gives them.
var Types = []string{TypeHTTP, TypeHTTPS, TypeTCP, TypeDNS, TypeGRPC}

// MinInterval is the shortest probe interval allowed.
const MinInterval = 100 * time.Millisecond

// Config describes one named health check of a policy file. The zero value of every field
// means "the default"; Normalize fills the defaults in.
type Config struct {
	// Type is http, https, tcp, dns or grpc. Required.
	Type string
	// Port to probe. Default: http 80, https 443, dns 53, grpc 443; tcp requires it.
	Port int
	// Path of the HTTP request. Default "/".
	Path string
	// Host is the HTTP Host header and the TLS server name. Default: the target address.
	Host string
	// Method is GET or HEAD. Default GET.
	Method string
	// Headers are added to every HTTP request.
	Headers map[string]string
	// ExpectStatus lists the accepted HTTP status codes. Default 200-399.
	ExpectStatus []StatusRange
	// ExpectBody, when set, must occur within the first 64 KiB of the HTTP body.
	ExpectBody string
	// InsecureTLS skips certificate verification (https, grpc over TLS). Default false.
	InsecureTLS bool
	// Query is the name asked (type A) by a dns check. Required for dns.
	Query string
	// Service is the grpc.health.v1 service name. Default "" (the whole server).
	Service string
	// TLS makes a grpc check use TLS. Default false (plaintext).
	TLS bool
	// Interval between probes while the state is stable. Default 5s, at least 100ms.
	Interval time.Duration
	// Timeout of one probe. Default 2s, and less than Interval.
	Timeout time.Duration
	// FastInterval between probes while a state is in transition. Default min(Interval/4, 1s).
	FastInterval time.Duration
	// Rise is the number of consecutive successes that make a target up. Default 2.
	Rise int
	// Fall is the number of consecutive failures that make a target down. Default 2.
	Fall int
	// Quorum is how many nodes of a cluster must see the target down for it to be down: N >= 1
	// (any = 1), QuorumMajority, QuorumAll, or 0 = the cluster's default. It does not change what
	// a probe does, so it is not part of Key.
	Quorum int
}

// Quorums other than a number of nodes (Config.Quorum).
const (
	QuorumMajority = -1 // more than half of the nodes with a fresh observation
	QuorumAll      = -2 // every node with a fresh observation
)

// MaxQuorum is the largest number of nodes a quorum may name.
const MaxQuorum = 1000

// ParseQuorum parses a quorum as the policy file and the Corefile write it: "any" (1),
// "majority", "all", or a number of nodes from 1 to MaxQuorum.
func ParseQuorum(s string) (int, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "any":
		return 1, nil
	case "majority":
		return QuorumMajority, nil
	case "all":
		return QuorumAll, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 1 || n > MaxQuorum {
		return 0, fmt.Errorf("quorum %q is not any, majority, all or a number of nodes from 1 to %d", s, MaxQuorum)
	}
	return n, nil
}

// QuorumString is the text of quorum q, as ParseQuorum reads it back: "any" for 1, "majority",
// "all", the number otherwise, and "default" for 0 (the cluster's).
func QuorumString(q int) string {
	switch q {
	case 0:
		return "default"
	case 1:
		return "any"
	case QuorumMajority:
		return "majority"
	case QuorumAll:
		return "all"
	}
	return strconv.Itoa(q)
}

// StatusRange is an inclusive range of HTTP status codes.
type StatusRange struct{ Lo, Hi int }

// Contains reports whether code lies in r.
func (r StatusRange) Contains(code int) bool { return code >= r.Lo && code <= r.Hi }

func (r StatusRange) String() string {
	if r.Lo == r.Hi {
		return strconv.Itoa(r.Lo)
	}
	return strconv.Itoa(r.Lo) + "-" + strconv.Itoa(r.Hi)
}

// ParseStatusRange parses "200" or "200-399".
func ParseStatusRange(s string) (StatusRange, error) {
	lo, hi, found := strings.Cut(strings.TrimSpace(s), "-")
	a, err := strconv.Atoi(strings.TrimSpace(lo))
	if err != nil {
		return StatusRange{}, fmt.Errorf("status %q is not a number or a range like 200-399", s)
	}
	b := a
	if found {
		if b, err = strconv.Atoi(strings.TrimSpace(hi)); err != nil {
			return StatusRange{}, fmt.Errorf("status %q is not a number or a range like 200-399", s)
		}
	}
	if a < 100 || b > 599 || a > b {
		return StatusRange{}, fmt.Errorf("status range %q must lie within 100-599, low end first", s)
	}
	return StatusRange{a, b}, nil
}

// Errors returned by Validate.
var (
	ErrType     = errors.New("type must be one of http, https, tcp, dns, grpc")
	ErrInterval = errors.New("interval must be at least 100ms")
	ErrTimeout  = errors.New("timeout must be positive and less than interval")
)

// Normalize returns c with every default filled in. Quorum 0 stays 0: its default is the
// cluster's, which the cluster applies.
func (c Config) Normalize() Config {
	if c.Port == 0 {
		switch c.Type {
		case TypeHTTP:
			c.Port = 80
		case TypeHTTPS, TypeGRPC:
			c.Port = 443
		case TypeDNS:
			c.Port = 53
		}
	}
	if c.Type == TypeHTTP || c.Type == TypeHTTPS {
		if c.Path == "" {
			c.Path = "/"
		}
		if c.Method == "" {
			c.Method = "GET"
		}
		if len(c.ExpectStatus) == 0 {
			c.ExpectStatus = []StatusRange{{200, 399}}
		}
	}
	if c.Interval == 0 {
		c.Interval = 5 * time.Second
	}
	if c.Timeout == 0 {
		c.Timeout = 2 * time.Second
		if c.Timeout >= c.Interval {
			c.Timeout = c.Interval / 2
		}
	}
	if c.FastInterval == 0 {
		c.FastInterval = min(c.Interval/4, time.Second)
	}
	if c.Rise == 0 {
		c.Rise = 2
	}
	if c.Fall == 0 {
		c.Fall = 2
	}
	return c
}

// Validate reports the first problem of a normalized config, naming the field.
func (c Config) Validate() (field string, err error) {
	switch c.Type {
	case TypeHTTP, TypeHTTPS, TypeTCP, TypeDNS, TypeGRPC:
	default:
		return "type", ErrType
	}
	if c.Port < 1 || c.Port > 65535 {
		if c.Type == TypeTCP && c.Port == 0 {
			return "port", errors.New("a tcp check needs a port")
		}
		return "port", errors.New("port must be 1-65535")
	}
	if c.Method != "" && c.Method != "GET" && c.Method != "HEAD" {
		return "method", errors.New("method must be GET or HEAD")
	}
	if c.Type == TypeDNS && c.Query == "" {
		return "query", errors.New("a dns check needs a query name")
	}
	if c.Interval < MinInterval {
		return "interval", ErrInterval
	}
	if c.Timeout <= 0 || c.Timeout >= c.Interval {
		return "timeout", ErrTimeout
	}
	if c.FastInterval < MinInterval/2 || c.FastInterval > c.Interval {
		return "fast_interval", errors.New("fast_interval must be at least 50ms and at most interval")
	}
	if c.Rise < 1 || c.Rise > 100 {
		return "rise", errors.New("rise must be 1-100")
	}
	if c.Fall < 1 || c.Fall > 100 {
		return "fall", errors.New("fall must be 1-100")
	}
	if c.Quorum < QuorumAll || c.Quorum > MaxQuorum {
		return "quorum", fmt.Errorf("quorum must be any, majority, all or a number of nodes from 1 to %d", MaxQuorum)
	}
	return "", nil
}

// Key is a canonical text of every field that changes what a probe does. Two configs with the
// same key probe a target identically, so their (check, target) pairs are probed once. Quorum
// is not in it: it says how a cluster judges the probes, and nodes (and files) that set
// different quorums for one check still observe, and gossip about, one target.
func (c Config) Key() string {
	// The text of fmt's "%s|%d|%s|%s|%s|", "%q=%q," per header, "|%s" per status range, then
	// "|%q|%t|%s|%s|%t|%s|%s|%s|%d|%d", written without fmt: 100,000 checks are keyed at a load.
	b := make([]byte, 0, 96+len(c.Path)+len(c.Host)+len(c.ExpectBody))
	b = append(b, c.Type...)
	b = append(b, '|')
	b = strconv.AppendInt(b, int64(c.Port), 10)
	for _, s := range [...]string{c.Path, c.Host, c.Method} {
		b = append(b, '|')
		b = appendField(b, s)
	}
	b = append(b, '|')
	if len(c.Headers) > 0 {
		keys := make([]string, 0, len(c.Headers))
		for k := range c.Headers {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			b = strconv.AppendQuote(b, k)
			b = append(b, '=')
			b = strconv.AppendQuote(b, c.Headers[k])
			b = append(b, ',')
		}
	}
	for _, r := range c.ExpectStatus {
		b = append(b, '|')
		b = strconv.AppendInt(b, int64(r.Lo), 10)
		if r.Lo != r.Hi {
			b = append(b, '-')
			b = strconv.AppendInt(b, int64(r.Hi), 10)
		}
	}
	b = append(b, '|')
	b = strconv.AppendQuote(b, c.ExpectBody)
	b = append(b, '|')
	b = strconv.AppendBool(b, c.InsecureTLS)
	b = append(b, '|')
	b = appendField(b, c.Query)
	b = append(b, '|')
	b = appendField(b, c.Service)
	b = append(b, '|')
	b = strconv.AppendBool(b, c.TLS)
	for _, d := range [...]time.Duration{c.Interval, c.Timeout, c.FastInterval} {
		b = append(b, '|')
		b = append(b, d.String()...)
	}
	b = append(b, '|')
	b = strconv.AppendInt(b, int64(c.Rise), 10)
	b = append(b, '|')
	b = strconv.AppendInt(b, int64(c.Fall), 10)
	return string(b)
}

// appendField appends a text field of a Key: as it is, or quoted (Go syntax) when it holds a
// "|" or starts with a quote, so that two configs never have one Key ("/a|b" with no host, and
// "/a" with host "b", read alike unquoted). Fields without either, all the usual ones, keep the
// Key they always had: state files and the nodes of a cluster name targets by it.
func appendField(b []byte, s string) []byte {
	if strings.Contains(s, "|") || strings.HasPrefix(s, `"`) {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}

// Target is one (check, address) pair: what the engine probes and keeps a state for.
type Target struct {
	// Name of the check in the policy file; used in logs only, not in the key.
	Name string
	// Config is the normalized check. Targets of one check share it (at 500,000 targets, a
	// copy each was 115 MB), so it is read-only: nobody may change a Config a Target points at.
	Config *Config
	// Address is an IP address or a host name (without the trailing dot).
	Address string
	// Key identifies the pair: Config.Key() and Address. Set by NewTarget.
	Key string
}

// NewTarget returns the target for config c at address addr, with a copy of c of its own.
func NewTarget(name string, c Config, addr string) Target {
	return NewTargetKeyed(name, &c, c.Key(), addr)
}

// NewTargetKeyed is NewTarget for a caller that gives many targets one config: c is shared,
// not copied, and must not change afterwards; configKey must be c.Key(). Compiling many
// endpoints of one check computes the config's key once and keeps one copy of it.
func NewTargetKeyed(name string, c *Config, configKey, addr string) Target {
	addr = strings.TrimSuffix(addr, ".")
	return Target{Name: name, Config: c, Address: addr, Key: configKey + "@" + addr}
}

// AppendTargetKey appends to dst the Key that NewTargetKeyed gives the target of a config of
// key configKey at addr, so that a caller can look a target up by its key without making it.
func AppendTargetKey(dst []byte, configKey, addr string) []byte {
	dst = append(dst, configKey...)
	dst = append(dst, '@')
	return append(dst, strings.TrimSuffix(addr, ".")...)
}

// engineConfig returns the config that the engine probes c with: normalized, and with its intervals
// within the bounds that keep a bad config from spinning the scheduler. It returns c itself
// when c is that already (a validated config of a policy file), so that targets that share a
// config still share it in the engine, and a new config otherwise.
func engineConfig(c *Config) *Config {
	n := c.Normalize()
	n.Interval = max(n.Interval, MinInterval)
	n.FastInterval = max(n.FastInterval, MinInterval/2)
	// The fields that Normalize and the bounds set; ExpectStatus only when it is empty.
	if n.Port == c.Port && n.Path == c.Path && n.Method == c.Method && len(n.ExpectStatus) == len(c.ExpectStatus) &&
		n.Interval == c.Interval && n.Timeout == c.Timeout && n.FastInterval == c.FastInterval &&
		n.Rise == c.Rise && n.Fall == c.Fall {
		return c
	}
	return &n
}

func (t Target) String() string { return t.Name + "@" + t.Address }
