package steer

import (
	"fmt"
	"path/filepath"

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
}

// notYet names the options of SPEC.md that are parsed but not built yet.
var notYet = map[string]string{
	"admin":            "admin ADDRESS",
	"admin_token_file": "admin_token_file FILE",
	"state_dir":        "state_dir DIR",
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
		for _, a := range args {
			if !filepath.IsAbs(a) && root != "" {
				a = filepath.Join(root, a)
			}
			abs, err := filepath.Abs(a)
			if err != nil {
				return cfg, c.Errf("policy path %q: %v", a, err)
			}
			cfg.Paths = append(cfg.Paths, abs)
		}
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
			default:
				if syntax, ok := notYet[v]; ok {
					return cfg, c.Errf("option %q (%s) is not supported yet by this build; remove it", v, syntax)
				}
				return cfg, c.Errf("unknown option %q (known: ecs, fallthrough)", v)
			}
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
