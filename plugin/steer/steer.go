// Package steer is the CoreDNS plugin of steerdns: it serves zones from policy files, answers
// each steered name from the endpoints that are healthy now, by the service's routing policy,
// and serves static records exactly as the file plugin does.
package steer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/pkg/fall"
	clog "github.com/coredns/coredns/plugin/pkg/log"
	"github.com/coredns/coredns/request"
	"github.com/miekg/dns"
	"github.com/steerdns/steerdns/healthcheck"
	"github.com/steerdns/steerdns/zones"
)

var log = clog.NewWithPlugin(Name)

// Health is the plugin's source of endpoint health: the targets to watch, their live status and
// whether each has been checked once. The probe engine implements it; tests drive their own.
type Health interface {
	// Sync declares every target the plugin serves now and returns their status cells, in
	// order. Targets left out stop being probed.
	Sync(targets []healthcheck.Target) []*healthcheck.Status
	// Ready reports whether every target has been checked once.
	Ready() bool
	// Close releases every target.
	Close()
}

// Transition is a change of an endpoint's state, as the health source reports it.
type Transition struct {
	Target   healthcheck.Target
	From, To healthcheck.State
	Reason   string
}

// HealthSource makes the Health of one plugin instance; onChange receives every transition.
type HealthSource func(onChange func(Transition)) Health

// Steer is the plugin.
type Steer struct {
	Next plugin.Handler
	Fall fall.F

	cfg     Config
	source  HealthSource
	initial zones.Result    // the load of Provision, served from OnStartup
	health  Health          // set by OnStartup
	randN   func(n int) int // random numbers for the weighted policy; rand.IntN unless a test sets it

	mu      sync.Mutex // serializes loads
	loader  *zones.Loader
	watcher *zones.Watcher
	served  atomic.Pointer[served]
}

// Reload timing: events are gathered for debounce before a load; a content hash is compared
// every poll in case the file system's events got lost.
const (
	debounce = 100 * time.Millisecond
	poll     = 5 * time.Second
)

// served is what the query path reads: the zones and their per-service metrics, swapped whole.
type served struct {
	set     *zones.Set
	answers map[*zones.Service]*serviceCounters
	holders map[string][]zoneRegion // target key -> the (zone, pool label) pairs that hold it
}

// zoneRegion labels a transition: the zone and the pool's region that hold the endpoint.
type zoneRegion struct{ zone, region string }

// New returns a plugin for cfg; Provision loads its policy files.
func New(cfg Config) *Steer {
	s := &Steer{cfg: cfg, Fall: cfg.Fall, loader: zones.NewLoader(cfg.Paths), randN: rand.IntN}
	s.served.Store(&served{set: nil})
	return s
}

// ErrInvalid is returned by Provision when a policy file fails at start-up.
var ErrInvalid = errors.New("invalid policy files")

// Provision loads the policy files. At start-up every file must be valid: there is no last
// good version to fall back on. Probing starts with OnStartup, so that an instance whose
// Corefile fails later in setup leaves nothing running.
func (s *Steer) Provision(src HealthSource) error {
	s.source = src
	res := s.loader.Load(time.Now())
	for _, err := range res.Errors {
		if !errors.Is(err, zones.ErrNoPath) {
			return fmt.Errorf("%w:\n%v", ErrInvalid, err)
		}
	}
	for _, err := range res.Errors {
		log.Warningf("%v (the folder may be filled later)", err)
	}
	s.initial = res
	return nil
}

// Reload reads the policy files again and serves what changed. A file that fails keeps its
// last good version serving; its error is logged and counted.
func (s *Steer) Reload() {
	s.mu.Lock()
	defer s.mu.Unlock()
	res := s.loader.Load(time.Now())
	for _, err := range res.Errors {
		if errors.Is(err, zones.ErrNoPath) {
			log.Warningf("%v: nothing is served from it until it exists", err)
			continue
		}
		log.Errorf("policy file rejected, the last good version (if any) keeps serving: %v", err)
	}
	// The files' states are part of the set (metrics read them), so a change of those alone is
	// published too; a load that changed nothing is not.
	if res.Changed || res.Reloads > 0 || !sameFiles(s.served.Load().set, res.Set) {
		s.publish(res.Set)
	}
	recordLoad(res)
}

// sameFiles reports whether two sets list the same policy files in the same states.
func sameFiles(a, b *zones.Set) bool {
	if a == nil || len(a.Files) != len(b.Files) {
		return false
	}
	for i, f := range a.Files {
		g := b.Files[i]
		if f.Path != g.Path || f.Zone != g.Zone || f.Serial != g.Serial || (f.Err == nil) != (g.Err == nil) ||
			(f.Err != nil && f.Err.Error() != g.Err.Error()) {
			return false
		}
	}
	return true
}

// publish binds health to the zones of set and swaps them in.
func (s *Steer) publish(set *zones.Set) {
	old := s.served.Load()
	var targets []healthcheck.Target
	seen := map[string]bool{}
	for _, z := range set.Zones() {
		for _, t := range z.Targets {
			if !seen[t.Key] {
				seen[t.Key] = true
				targets = append(targets, t)
			}
		}
	}
	statuses := s.health.Sync(targets)
	byKey := make(map[string]*healthcheck.Status, len(targets))
	for i, t := range targets {
		byKey[t.Key] = statuses[i]
	}
	next := &served{set: set, answers: map[*zones.Service]*serviceCounters{}, holders: map[string][]zoneRegion{}}
	for _, z := range set.Zones() {
		fresh := old.set == nil || old.set.Zone(z.Origin) != z
		if fresh {
			z.Bind(func(t healthcheck.Target) *healthcheck.Status { return byKey[t.Key] })
		}
		for _, svc := range z.Services {
			for _, p := range svc.Pools {
				for _, ep := range p.Endpoints {
					if ep.Target != nil {
						zr := zoneRegion{z.Origin, p.Label}
						if hs := next.holders[ep.Target.Key]; !slices.Contains(hs, zr) {
							next.holders[ep.Target.Key] = append(hs, zr)
						}
					}
				}
			}
			if c := old.answers[svc]; c != nil && !fresh {
				next.answers[svc] = c
				continue
			}
			next.answers[svc] = newServiceCounters(z, svc)
		}
	}
	s.served.Store(next)
}

// Set returns the zones served now.
func (s *Steer) Set() *zones.Set { return s.served.Load().set }

// OnStartup subscribes to health, serves the zones loaded by Provision and starts watching
// the policy files. It runs before the servers listen.
func (s *Steer) OnStartup() error {
	s.mu.Lock()
	s.health = s.source(s.transition)
	s.publish(s.initial.Set)
	recordLoad(s.initial)
	s.mu.Unlock()
	w, err := zones.NewWatcher(s.cfg.Paths, debounce, poll, s.Reload)
	if err != nil {
		return fmt.Errorf("watching policy files: %w", err)
	}
	s.watcher = w
	instances.add(s)
	// A file may have changed between Provision and now.
	s.Reload()
	return nil
}

// OnShutdown stops the watcher and the instance's probes. On a Corefile reload the new
// instance has already taken over the targets it shares with this one, so their state
// carries over.
func (s *Steer) OnShutdown() error {
	instances.remove(s)
	if s.watcher != nil {
		s.watcher.Close()
	}
	if s.health != nil {
		s.health.Close()
	}
	return nil
}

// Ready implements ready.Readiness: ready once every check has run once.
func (s *Steer) Ready() bool {
	s.mu.Lock()
	h := s.health
	s.mu.Unlock()
	return h != nil && h.Ready()
}

// Name implements plugin.Handler.
func (s *Steer) Name() string { return Name }

// ServeDNS implements plugin.Handler.
func (s *Steer) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	state := request.Request{W: w, Req: r}
	qname := state.Name()
	sv := s.served.Load()
	z := sv.set.Match(qname)
	if z == nil {
		if s.Next != nil && s.Fall.Through(qname) {
			return plugin.NextOrFailure(s.Name(), s.Next, ctx, w, r)
		}
		return dns.RcodeRefused, nil
	}
	if r.Opcode != dns.OpcodeQuery {
		return dns.RcodeNotImplemented, nil
	}
	qtype := state.QType()
	if qtype == dns.TypeAXFR || qtype == dns.TypeIXFR {
		return dns.RcodeRefused, nil
	}
	if svc := z.Services[qname]; svc != nil {
		return s.serveService(ctx, w, r, state, z, svc, sv.answers[svc])
	}
	return s.serveStatic(ctx, w, r, state, z, sv)
}

var _ plugin.Handler = (*Steer)(nil)
