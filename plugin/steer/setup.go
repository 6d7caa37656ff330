package steer

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/metadata"
	"github.com/coredns/coredns/plugin/pkg/fall"
	"github.com/steerdns/steerdns/healthcheck"
)

// Name is the name of the plugin and of its Corefile directive.
const Name = "steer"

func init() { plugin.Register(Name, setup) }

func setup(c *caddy.Controller) error {
	cfg, err := parse(c)
	if err != nil {
		return plugin.Error(Name, err)
	}
	s := New(cfg)
	if err := s.Provision(sharedHealth); err != nil {
		return plugin.Error(Name, err)
	}
	c.OnStartup(s.OnStartup)
	c.OnStartup(func() error {
		// The metadata providers of the server block (geoip), for explain.
		var ps []metadata.Provider
		for _, h := range dnsserver.GetConfig(c).Handlers() {
			if p, ok := h.(metadata.Provider); ok {
				ps = append(ps, p)
			}
		}
		s.mu.Lock()
		s.providers = ps
		s.mu.Unlock()
		return nil
	})
	c.OnShutdown(s.OnShutdown)
	dnsserver.GetConfig(c).AddPlugin(func(next plugin.Handler) plugin.Handler {
		s.Next = next
		return s
	})
	return nil
}

// Config is the parsed steer directive.
type Config struct {
	// Paths are policy files or folders of them (*.yaml, *.yml), absolute.
	Paths []string
	// Fall lists the zones whose unknown names pass to the next plugin; empty = none.
	Fall fall.F
	// IgnoreECS ignores the EDNS Client Subnet option ("ecs off"): the client is located by
	// its source address. Default false: ECS is honoured.
	IgnoreECS bool
	// Admin is the address (host:port) of the admin API and status page; empty: off.
	Admin string
	// AdminToken is the bearer token every write call of the admin API needs, read from
	// admin_token_file at setup; empty: none (allowed on a loopback address only).
	AdminToken string
	// StateDir keeps overrides, the last known state of each target and the history across
	// restarts; empty: nothing is kept.
	StateDir string
	// ProbeSource is the source address of this node's health probes; zero: the kernel's
	// choice. The probe engine is the process's, so it is the process's too.
	ProbeSource netip.Addr
	// Cluster shares health with other steerdns nodes; nil: this node runs alone.
	Cluster *ClusterConfig
}

func parse(c *caddy.Controller) (Config, error) {
	var cfg Config
	i := 0
	for c.Next() {
		if i > 0 {
			return cfg, plugin.ErrOnce
		}
		i++
		args := c.RemainingArgs()
		if len(args) == 0 {
			return cfg, c.ArgErr()
		}
		root := dnsserver.GetConfig(c).Root
		absolute := func(a string) (string, error) {
			if !filepath.IsAbs(a) && root != "" {
				a = filepath.Join(root, a)
			}
			return filepath.Abs(a)
		}
		for _, a := range args {
			abs, err := absolute(a)
			if err != nil {
				return cfg, c.Errf("policy path %q: %v", a, err)
			}
			cfg.Paths = append(cfg.Paths, abs)
		}
		tokenFile := ""
		for c.NextBlock() {
			switch v := c.Val(); v {
			case "fallthrough":
				cfg.Fall.SetZonesFromArgs(c.RemainingArgs())
			case "ecs":
				args := c.RemainingArgs()
				if len(args) != 1 || (args[0] != "on" && args[0] != "off") {
					return cfg, c.Errf("ecs takes on or off")
				}
				cfg.IgnoreECS = args[0] == "off"
			case "admin":
				args := c.RemainingArgs()
				if len(args) != 1 {
					return cfg, c.Errf("admin takes one address, such as admin 127.0.0.1:9480")
				}
				if _, port, err := net.SplitHostPort(args[0]); err != nil || port == "" {
					return cfg, c.Errf("admin %q is not host:port, such as 127.0.0.1:9480", args[0])
				}
				cfg.Admin = args[0]
			case "admin_token_file":
				args := c.RemainingArgs()
				if len(args) != 1 {
					return cfg, c.Errf("admin_token_file takes one file")
				}
				tokenFile = args[0]
				data, err := os.ReadFile(tokenFile)
				if err != nil {
					return cfg, c.Errf("admin_token_file: %v", err)
				}
				if cfg.AdminToken = strings.TrimSpace(string(data)); cfg.AdminToken == "" {
					return cfg, c.Errf("admin_token_file %s is empty: put the token in it", tokenFile)
				}
			case "state_dir":
				args := c.RemainingArgs()
				if len(args) != 1 {
					return cfg, c.Errf("state_dir takes one folder")
				}
				abs, err := absolute(args[0])
				if err != nil {
					return cfg, c.Errf("state_dir %q: %v", args[0], err)
				}
				cfg.StateDir = abs
			case "probe_source":
				args := c.RemainingArgs()
				if len(args) != 1 {
					return cfg, c.Errf("probe_source takes one IP address")
				}
				ip, err := netip.ParseAddr(args[0])
				if err != nil || ip.Zone() != "" {
					return cfg, c.Errf("probe_source %q is not an IP address", args[0])
				}
				cfg.ProbeSource = ip
			case "cluster":
				cc, err := parseCluster(c, absolute)
				if err != nil {
					return cfg, err
				}
				cfg.Cluster = cc
			default:
				return cfg, c.Errf("unknown option %q (known: admin, admin_token_file, cluster, ecs, fallthrough, probe_source, state_dir)", v)
			}
		}
		if tokenFile != "" && cfg.Admin == "" {
			return cfg, c.Errf("admin_token_file without admin: set admin ADDRESS too")
		}
		if cfg.Admin != "" && cfg.AdminToken == "" && !loopback(cfg.Admin) {
			return cfg, c.Errf("admin %s is not a loopback address: set admin_token_file, so that writes need a token", cfg.Admin)
		}
	}
	if len(cfg.Paths) == 0 {
		return cfg, fmt.Errorf("no policy files or folders given")
	}
	return cfg, nil
}

// parseCluster reads the cluster block; the cursor is on "cluster".
func parseCluster(c *caddy.Controller, absolute func(string) (string, error)) (*ClusterConfig, error) {
	cc := &ClusterConfig{Name: nodeName(), Bind: "127.0.0.1:7946"}
	if args := c.RemainingArgs(); len(args) != 0 || !c.NextArg() || c.Val() != "{" {
		return nil, c.Errf("cluster takes a block: cluster { name NODE; bind ADDR:PORT; join HOST:PORT... }")
	}
	hostPort := func(what, a string, ipOnly bool) error {
		host, port, err := net.SplitHostPort(a)
		if err == nil {
			if p, perr := strconv.Atoi(port); perr != nil || p < 0 || p > 65535 {
				err = fmt.Errorf("bad port")
			}
		}
		if err == nil && ipOnly && net.ParseIP(host) == nil {
			err = fmt.Errorf("%q is not an IP address", host)
		}
		if err != nil {
			return c.Errf("cluster: %s %q is not %s:PORT (%v)", what, a, map[bool]string{true: "IP", false: "HOST"}[ipOnly], err)
		}
		return nil
	}
	for {
		if !c.Next() {
			return nil, c.Errf("cluster block is not closed with }")
		}
		key := c.Val()
		if key == "}" {
			break
		}
		args := c.RemainingArgs()
		one := func() (string, error) {
			if len(args) != 1 {
				return "", c.Errf("cluster: %s takes one value", key)
			}
			return args[0], nil
		}
		var err error
		switch key {
		case "name":
			cc.Name, err = one()
		case "bind":
			if cc.Bind, err = one(); err == nil {
				err = hostPort("bind", cc.Bind, true)
			}
		case "advertise":
			if cc.Advertise, err = one(); err == nil {
				err = hostPort("advertise", cc.Advertise, true)
			}
		case "join":
			if len(args) == 0 {
				return nil, c.Errf("cluster: join takes one or more HOST:PORT")
			}
			for _, a := range args {
				if err := hostPort("join", a, false); err != nil {
					return nil, err
				}
			}
			cc.Join = append(cc.Join, args...)
		case "secret_file":
			var f string
			if f, err = one(); err == nil {
				if cc.SecretFile, err = absolute(f); err == nil {
					cc.Secret, err = readSecret(cc.SecretFile)
					if err != nil {
						err = c.Errf("cluster: secret_file: %v", err)
					}
				}
			}
		case "quorum":
			var q string
			if q, err = one(); err == nil {
				if cc.Quorum, err = healthcheck.ParseQuorum(q); err != nil {
					err = c.Errf("cluster: quorum: %v", err)
				}
			}
		default:
			return nil, c.Errf("cluster: unknown option %q (known: advertise, bind, join, name, quorum, secret_file)", key)
		}
		if err != nil {
			return nil, err
		}
	}
	if cc.Name == "" {
		return nil, c.Errf("cluster: name is empty")
	}
	if cc.Secret == nil && !loopback(cc.Bind) {
		return nil, c.Errf("cluster: bind %s is not a loopback address: set secret_file, so that gossip is encrypted", cc.Bind)
	}
	return cc, nil
}

// readSecret reads a gossip key: base64 of 16, 24 or 32 bytes (AES-128, -192, -256).
func readSecret(file string) ([]byte, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data)))
	if err != nil {
		return nil, fmt.Errorf("%s is not base64 (make one with: head -c 32 /dev/urandom | base64): %v", file, err)
	}
	switch len(key) {
	case 16, 24, 32:
		return key, nil
	}
	return nil, fmt.Errorf("%s holds %d bytes; a key is 16, 24 or 32 (make one with: head -c 32 /dev/urandom | base64)", file, len(key))
}

// Directives returns CoreDNS's directive list with steer inserted before file, the order
// steerdns runs its plugins in: steer answers the zones of its policy files, and the plugins
// before it (dnssec, cache, rewrite, acl...) see its answers.
func Directives() []string {
	var out []string
	for _, d := range dnsserver.Directives {
		if d == Name {
			continue
		}
		if d == "file" {
			out = append(out, Name)
		}
		out = append(out, d)
	}
	return out
}

// loopback reports whether the host of addr (host:port) is a loopback address or localhost.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
