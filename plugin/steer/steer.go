// Package steer is the CoreDNS plugin of steerdns: it serves zones from policy files, answers
// each steered name from the endpoints that are healthy now, by the service's routing policy,
// and serves static records exactly as the file plugin does.
package steer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/metadata"
	"github.com/coredns/coredns/plugin/pkg/fall"
	clog "github.com/coredns/coredns/plugin/pkg/log"
	"github.com/coredns/coredns/request"
	"github.com/miekg/dns"
	"github.com/steerdns/steerdns/cluster"
	"github.com/steerdns/steerdns/healthcheck"
	"github.com/steerdns/steerdns/zones"
)

var log = clog.NewWithPlugin(Name)

// Health is the plugin's source of this node's observations: the targets to watch and what
// their probes say. Targets are declared incrementally, so that a reload costs what changed. The probe engine implements it; tests drive their own.
type Health interface {
	// Hold adds targets to those the plugin serves and returns their status cells, in order;
	// targets that start alike may share one cell. A target held already keeps its state.
	// Hold must not change targets (it may be a zone's own Targets) nor keep it.
	Hold(targets []healthcheck.Target) []*healthcheck.Status
	// Release drops the targets with these keys; they stop being probed unless another
	// instance holds them.
	Release(keys []string)
	// Live returns the observation of a held target now, with its last probe's latency and
	// counts: for the status, never for the query path.
	Live(key string) (healthcheck.Observation, bool)
	// Ready reports whether every target has been checked once.
	Ready() bool
	// Close releases every target.
	Close()
}

// HealthSource makes the Health of one plugin instance; onChange receives every state change
// of a target it holds, in order for each target.
type HealthSource func(onChange func(healthcheck.Change)) Health

// Steer is the plugin.
type Steer struct {
	Next plugin.Handler
	Fall fall.F

	cfg     Config
	source  HealthSource
	initial zones.Result    // the load of Provision, served from OnStartup
	health  Health          // set by OnStartup
	randN   func(n int) int // random numbers for the weighted policy; rand.IntN unless a test sets it

	mu        sync.Mutex // serializes loads
	loader    *zones.Loader
	watcher   *zones.Watcher
	providers []metadata.Provider // set by setup's OnStartup hook; guarded by mu

	// pub serializes what makes a new snapshot: a load, a transition, an override. Held only
	// while the next snapshot is built from the last, never during a load or a probe.
	pub       sync.Mutex
	slots     slotTable
	overrides []*Override // every override set, active or expired
	expiry    *time.Timer // republishes when the earliest override expires
	history   history
	restored  map[string]healthcheck.Observation // target key -> state saved before a restart
	snap      atomic.Pointer[snapshot]

	node       string      // this node's name, in status and history
	state      *stateDir   // nil without state_dir
	admin      *adminRef   // nil without admin
	cluster    *clusterRef // nil without a cluster block
	recordsSig string      // the cluster's overrides last taken; guarded by pub
}

// snapshot is what the query path reads, with one atomic load: the zones, their health view
// and their per-service metrics, swapped whole.
type snapshot struct {
	set   *zones.Set
	view  *View
	zones map[*zones.Zone]*zoneServed
}

// zoneServed is what the plugin keeps for one served zone.
type zoneServed struct {
	// slots maps the zone's Targets to view slots.
	slots   []int32
	answers map[*zones.Service]*serviceCounters
	// label indexes labels for each of the zone's Targets (-1: none): the pool label of its
	// transitions; more holds the other labels of targets in pools of several labels.
	label  []int32
	labels []string
	more   map[int32][]int32
}

// New returns a plugin for cfg; Provision loads its policy files.
func New(cfg Config) *Steer {
	s := &Steer{cfg: cfg, Fall: cfg.Fall, loader: zones.NewLoader(cfg.Paths), randN: rand.IntN, node: nodeName()}
	if cfg.Cluster != nil {
		s.node, s.slots.clustered = cfg.Cluster.Name, true
	}
	if cfg.StateDir != "" {
		s.state = &stateDir{path: cfg.StateDir, dirty: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	}
	s.snap.Store(&snapshot{view: &View{}, zones: map[*zones.Zone]*zoneServed{}})
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
	s.loadState()
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
	if res.Changed || res.Reloads > 0 || !sameFiles(s.snap.Load().set, res.Set) {
		s.publish(res.Set)
		if s.cluster != nil {
			s.cluster.announce()
		}
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

// Set returns the zones served now.
func (s *Steer) Set() *zones.Set { return s.snap.Load().set }

// View returns the health view served now.
func (s *Steer) View() *View { return s.snap.Load().view }

// OnStartup subscribes to health, serves the zones loaded by Provision and starts watching
// the policy files. It runs before the servers listen.
func (s *Steer) OnStartup() error {
	if err := sharedEngine().SetSource(s.cfg.ProbeSource); err != nil {
		return fmt.Errorf("probe_source: %w", err)
	}
	if s.cfg.Cluster != nil {
		if err := joinCluster(s); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.takeOver()
	s.health = s.source(s.observe)
	s.publish(s.initial.Set)
	recordLoad(s.initial)
	s.mu.Unlock()
	if s.cluster != nil {
		s.adoptOverrides()
		s.cluster.announce()
		s.clusterChanged(cluster.Change{All: true, Records: true, Files: true})
	}
	if s.state != nil {
		s.state.running = true
		go s.runSaver()
	}
	if s.cfg.Admin != "" {
		ref, err := startAdmin(s)
		if err != nil {
			return err
		}
		s.admin = ref
	}
	w, err := zones.NewWatcher(s.cfg.Paths, zones.DefaultDebounce, zones.DefaultPoll, s.Reload)
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
	if s.admin != nil {
		s.admin.release(s)
	}
	if s.cluster != nil {
		s.pub.Lock()
		keys := make([]string, 0, len(s.slots.byKey))
		for k := range s.slots.byKey {
			keys = append(keys, k)
		}
		s.pub.Unlock()
		s.cluster.release(keys)
		s.cluster.leave(s)
	}
	if s.watcher != nil {
		s.watcher.Close()
	}
	if s.health != nil {
		s.health.Close()
	}
	s.pub.Lock()
	if s.expiry != nil {
		s.expiry.Stop()
	}
	s.pub.Unlock()
	if s.state != nil && s.state.running {
		s.state.running = false
		close(s.state.stop)
		<-s.state.done
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
	var q query
	return s.serve(ctx, w, r, &q)
}

// serve answers r into q (which explain passes with a trace): q.zone is nil when the name is
// not in a zone served here.
func (s *Steer) serve(ctx context.Context, w dns.ResponseWriter, r *dns.Msg, q *query) (int, error) {
	state := request.Request{W: w, Req: r}
	qname := state.Name()
	sn := s.snap.Load()
	z := sn.set.Match(qname)
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
	zs := sn.zones[z]
	q.ctx, q.state, q.zone, q.served, q.health, q.randN = ctx, state, z, zs, zoneHealth{v: sn.view, slots: zs.slots}, s.randN
	if !s.cfg.IgnoreECS {
		ecs, p, err := readECS(r)
		if err != nil {
			return dns.RcodeFormatError, nil
		}
		if ecs != nil {
			q.client.ecs, q.client.prefix, q.client.found = ecs, p, true
		}
	}
	if svc := z.Services[qname]; svc != nil {
		return s.serveService(ctx, w, r, q, svc)
	}
	return s.serveStatic(ctx, w, r, q)
}

// metadataProviders returns the server block's metadata providers (the geoip plugin), which
// explain asks as the metadata plugin does for a query.
func (s *Steer) metadataProviders() []metadata.Provider {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.providers
}

var _ plugin.Handler = (*Steer)(nil)
