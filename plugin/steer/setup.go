package steer

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/metadata"
	"github.com/coredns/coredns/plugin/pkg/fall"
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
}

// notYet names the options of SPEC.md that are parsed but not built yet.
var notYet = map[string]string{
	"cluster":      "cluster { ... }",
	"probe_source": "probe_source ADDRESS",
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
			default:
				if syntax, ok := notYet[v]; ok {
					return cfg, c.Errf("option %q (%s) is not supported yet by this build; remove it", v, syntax)
				}
				return cfg, c.Errf("unknown option %q (known: admin, admin_token_file, ecs, fallthrough, state_dir)", v)
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
