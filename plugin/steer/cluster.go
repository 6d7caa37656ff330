package steer

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/steerdns/steerdns/cluster"
	"github.com/steerdns/steerdns/healthcheck"
	"github.com/steerdns/steerdns/plugin/steer/admin"
)

// ClusterConfig is the cluster block of the steer directive.
type ClusterConfig struct {
	// Name of this node, unique in the cluster. Default: the host name.
	Name string
	// Bind is the gossip address, UDP and TCP. Default 127.0.0.1:7946.
	Bind string
	// Advertise is the address peers reach this node at. Default: Bind.
	Advertise string
	// Join lists the seeds, host:port; names are resolved again on every attempt.
	Join []string
	// SecretFile holds the gossip key, base64 of 16, 24 or 32 bytes; Secret is what it holds.
	SecretFile string
	Secret     []byte
	// Quorum is the quorum of every check that sets none: N >= 1, or healthcheck.QuorumMajority
	// or QuorumAll. Default (0): majority.
	Quorum int
}

// sameNode reports whether c and o run the same cluster node: a Corefile reload that changes
// any of these needs a restart.
func (c *ClusterConfig) sameNode(o *ClusterConfig) bool {
	return c.Name == o.Name && c.Bind == o.Bind && c.Advertise == o.Advertise && bytes.Equal(c.Secret, o.Secret)
}

// The process's cluster node, shared by its plugin instances (server blocks, and the old and
// new instance of a Corefile reload), as the probe engine is.
var clusters struct {
	mu  sync.Mutex
	ref *clusterRef
}

type clusterRef struct {
	node  *cluster.Node
	cfg   ClusterConfig
	ready atomic.Bool // node is set

	mu    sync.Mutex
	users []*Steer
	held  map[string]int // target key -> instances that hold it
}

// joinCluster gives s the process's cluster node (s.cluster), starting it for the first
// instance.
func joinCluster(s *Steer) error {
	clusters.mu.Lock()
	defer clusters.mu.Unlock()
	cfg := s.cfg.Cluster
	if r := clusters.ref; r != nil {
		if !r.cfg.sameNode(cfg) {
			return fmt.Errorf("cluster: this process runs node %q on %s; a change of name, bind, advertise or secret_file takes effect on a restart", r.cfg.Name, r.cfg.Bind)
		}
		r.mu.Lock()
		s.cluster = r
		r.users = append([]*Steer{s}, r.users...)
		r.mu.Unlock()
		return nil
	}
	r := &clusterRef{cfg: *cfg, users: []*Steer{s}, held: map[string]int{}}
	s.cluster = r
	node, err := cluster.Start(cluster.Config{Name: cfg.Name, Bind: cfg.Bind, Advertise: cfg.Advertise, Join: cfg.Join,
		Secret: cfg.Secret, Quorum: cfg.Quorum, Logf: log.Infof, OnChange: r.changed})
	if err != nil {
		s.cluster = nil
		return err
	}
	r.node = node
	r.ready.Store(true)
	clusters.ref = r
	log.Infof("cluster: node %s gossips on %s (encrypted: %t), seeds %v", cfg.Name, node.Addr(), cfg.Secret != nil, cfg.Join)
	return nil
}

// adoptOverrides offers the cluster the overrides this instance started with (kept in
// state_dir, or taken over from the instance it replaces); newer writes in the cluster win.
func (s *Steer) adoptOverrides() {
	s.pub.Lock()
	recs := make([]cluster.Record, 0, len(s.overrides))
	for _, o := range s.overrides {
		r := overrideRecord(o)
		r.Node, r.Updated = s.node, o.Created
		recs = append(recs, r)
	}
	s.pub.Unlock()
	s.cluster.node.Adopt(recs)
	s.syncOverrides()
}

// leave drops s; the last instance to leave stops the node, telling the others it left.
func (r *clusterRef) leave(s *Steer) {
	clusters.mu.Lock()
	defer clusters.mu.Unlock()
	r.mu.Lock()
	r.users = slices.DeleteFunc(r.users, func(x *Steer) bool { return x == s })
	last := len(r.users) == 0
	r.mu.Unlock()
	if last {
		r.node.Close()
		if clusters.ref == r {
			clusters.ref = nil
		}
	}
}

// changed is the node's OnChange: every instance takes what changed.
func (r *clusterRef) changed(ch cluster.Change) {
	if !r.ready.Load() {
		return
	}
	r.mu.Lock()
	users := slices.Clone(r.users)
	r.mu.Unlock()
	for _, s := range users {
		s.clusterChanged(ch)
	}
}

// hold counts targets an instance took on, and gossips this node's observations of them.
func (r *clusterRef) hold(targets []healthcheck.Target, statuses []*healthcheck.Status) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, t := range targets {
		r.held[t.Key]++
		if o := statuses[i].Observation(); o.State != healthcheck.Unknown {
			r.node.Observe(t.Key, o.State == healthcheck.Down, o.Since, t.Config.Interval)
		}
	}
}

// release counts targets an instance dropped; those that no instance holds are forgotten.
func (r *clusterRef) release(keys []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range keys {
		if r.held[k]--; r.held[k] <= 0 {
			delete(r.held, k)
			r.node.Forget(k)
		}
	}
}

// announce tells the cluster the hash of the policy files served and their zones' serials.
func (r *clusterRef) announce() {
	r.mu.Lock()
	users := slices.Clone(r.users)
	r.mu.Unlock()
	seen := map[string]bool{}
	var list []cluster.Zone
	for _, s := range users {
		set := s.Set()
		if set == nil {
			continue
		}
		for _, z := range set.Zones() {
			if !seen[z.Origin] {
				seen[z.Origin] = true
				list = append(list, cluster.Zone{Name: z.Origin, Hash: z.Hash, Serial: z.Serial})
			}
		}
	}
	r.node.SetFiles(filesHash(list), list)
}

// filesHash is one hash of the served policy files' contents: nodes with identical files have
// the same, wherever the files lie.
func filesHash(list []cluster.Zone) string {
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	h := sha256.New()
	for _, z := range list {
		fmt.Fprintf(h, "%s %s\n", z.Name, z.Hash)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// quorumOf is the quorum of a target: its check's, else the Corefile's, else majority.
func (s *Steer) quorumOf(t *healthcheck.Target) int {
	if q := t.Config.Quorum; q != 0 {
		return q
	}
	if q := s.cfg.Cluster.Quorum; q != 0 {
		return q
	}
	return cluster.Majority
}

// fromVerdict is the view's cluster state for a verdict.
func fromVerdict(v cluster.Verdict) State {
	switch v.State {
	case cluster.Up:
		return StateUp
	case cluster.Down:
		return StateDown
	}
	return StateUnknown
}

// verdictOf asks the node for the verdict on one slot. s.pub is held.
func (s *Steer) verdictOf(slot int32) cluster.Verdict {
	out := make([]cluster.Verdict, 1)
	t := s.slots.targets[slot]
	s.cluster.node.Verdicts([]uint64{cluster.KeyHash(t.Key)}, []int{s.quorumOf(t)}, out)
	return out[0]
}

// clusterChanged takes what the peers said: the verdicts on the targets that ch names (all of
// them when ch.All), the overrides, the serials of identical files.
func (s *Steer) clusterChanged(ch cluster.Change) {
	if s.cluster == nil {
		return
	}
	s.pub.Lock()
	old := s.snap.Load()
	var slots []int32
	if ch.All {
		slots = make([]int32, 0, len(s.slots.targets))
		for i, t := range s.slots.targets {
			if t != nil {
				slots = append(slots, int32(i))
			}
		}
	} else {
		for _, k := range ch.Keys {
			if slot, ok := s.slots.byHash[k]; ok {
				slots = append(slots, slot)
			}
		}
	}
	keys, quorums := make([]uint64, len(slots)), make([]int, len(slots))
	for i, slot := range slots {
		keys[i], quorums[i] = s.slots.hash[slot], s.quorumOf(s.slots.targets[slot])
	}
	out := make([]cluster.Verdict, len(slots))
	s.cluster.node.Verdicts(keys, quorums, out)
	var e *viewEdit
	now := time.Now()
	for i, slot := range slots {
		th := old.view.Target(slot)
		if th == nil || th.Verdict == out[i] {
			continue
		}
		next := *th
		next.Verdict, next.Cluster = out[i], fromVerdict(out[i])
		if e == nil {
			e = old.view.edit()
		}
		e.set(slot, &next)
		// unknown -> up is not news, as with the engine's own first probes.
		if from, to := th.State(), next.State(); from != to && next.Cluster != StateUnknown && (from != StateUnknown || to != StateUp) {
			s.clusterTransition(slot, from, to, out[i], now)
		}
	}
	if e != nil {
		sn := *old
		sn.view = e.done()
		s.snap.Store(&sn)
	}
	s.pub.Unlock()
	if ch.Records {
		s.syncOverrides()
	}
	if ch.Files {
		s.adoptSerials()
	}
}

// clusterTransition records a change of a target's state that the cluster's verdict made.
// s.pub is held.
func (s *Steer) clusterTransition(slot int32, from, to State, v cluster.Verdict, at time.Time) {
	t := s.slots.targets[slot]
	var zoneNames []string
	sn := s.snap.Load()
	s.slots.holders[slot].each(func(h holder) {
		if zs := sn.zones[h.zone]; zs != nil {
			zoneNames = append(zoneNames, h.zone.Origin)
		}
	})
	reason := fmt.Sprintf("cluster: %d of %d nodes see it down, %d needed", v.Down, v.Observers, v.Need)
	s.history.add(admin.Transition{Time: at, Endpoint: t.Address, Check: t.Name, From: from.String(), To: to.String(),
		Reason: reason, Node: "cluster", Zones: zoneNames})
	log.Infof("%s: %s -> %s (%s)", t, from, to, reason)
	s.state.changed()
}

// overrideRecord is an override as the cluster shares it.
func overrideRecord(o *Override) cluster.Record {
	data, _ := json.Marshal(toJSON(o))
	return cluster.Record{ID: o.ID, Data: data, Expires: o.Expires}
}

// syncOverrides takes the cluster's overrides as this instance's, when they changed.
func (s *Steer) syncOverrides() {
	recs := s.cluster.node.Records()
	var sig strings.Builder
	for _, r := range recs {
		fmt.Fprintf(&sig, "%s/%d/%s;", r.ID, r.Updated.UnixNano(), r.Node)
	}
	s.pub.Lock()
	if sig.String() == s.recordsSig {
		s.pub.Unlock()
		return
	}
	s.recordsSig = sig.String()
	list := make([]*Override, 0, len(recs))
	for _, r := range recs {
		var x overrideJSON
		if err := json.Unmarshal(r.Data, &x); err != nil {
			log.Errorf("cluster: override %s from %s cannot be read, ignored: %v", r.ID, r.Node, err)
			continue
		}
		list = append(list, fromJSON(x))
	}
	before := map[string]bool{}
	for _, o := range s.overrides {
		before[o.ID] = true
	}
	s.overrides = list
	s.republish()
	s.pub.Unlock()
	after := map[string]bool{}
	for i, o := range list {
		after[o.ID] = true
		if !before[o.ID] && recs[i].Node != s.cluster.node.Name() {
			log.Infof("override %s from %s: %s %s until %s (by %q: %s)", o.ID, recs[i].Node, o.Action, overrideTarget(o), expiry(o), o.By, o.Reason)
		}
	}
	for id := range before {
		if !after[id] {
			log.Infof("override %s removed in the cluster", id)
		}
	}
	s.saveOverrides()
}

// adoptSerials raises the serial of each zone with serial 0 to the highest that another node
// serving the same file announces, so that nodes with identical files serve identical SOAs.
func (s *Steer) adoptSerials() {
	set := s.Set()
	if set == nil {
		return
	}
	raised := false
	s.mu.Lock()
	for _, z := range set.Zones() {
		if z.FileSerial != 0 {
			continue
		}
		if serial := s.cluster.node.Serial(z.Origin, z.Hash); serial > z.Serial && s.loader.RaiseSerial(z.Origin, z.Hash, serial) {
			log.Infof("%s: serial %d -> %d, as other nodes serving the same file do", z.Origin, z.Serial, serial)
			raised = true
		}
	}
	s.mu.Unlock()
	if raised {
		s.Reload()
	}
}

// clusterStatus is the cluster part of the status.
func (s *Steer) clusterStatus() *admin.Cluster {
	if s.cluster == nil {
		return nil
	}
	node := s.cluster.node
	local, alive, known := node.Local()
	c := &admin.Cluster{Mode: "cluster", Alive: alive, Known: known}
	if local {
		c.Mode = "local"
	}
	members := node.Members()
	for _, m := range members {
		am := admin.Member{Name: m.Name, Address: m.Addr, State: m.State, Self: m.Self, FilesHash: m.Files, Targets: m.Targets}
		if !m.Heard.IsZero() {
			h := m.Heard
			am.Heard = &h
		}
		am.Differs = m.Files != "" && m.Files != members[0].Files
		if am.Differs {
			c.Differ = append(c.Differ, m.Name)
		}
		c.Members = append(c.Members, am)
	}
	return c
}

// observations lists every node's observation of a target, for the status.
func (s *Steer) observations(t *healthcheck.Target) []admin.NodeObservation {
	if s.cluster == nil {
		return nil
	}
	var out []admin.NodeObservation
	for _, o := range s.cluster.node.Observations(cluster.KeyHash(t.Key)) {
		st := "up"
		if o.Down {
			st = "down"
		}
		out = append(out, admin.NodeObservation{Node: o.Node, State: st, Since: o.Since, Fresh: o.Fresh})
	}
	return out
}

// clusterGauges gives the gauges see the members by state and the view's mode.
func clusterGauges() (members map[string]float64, mode string, stats cluster.Stats, ok bool) {
	clusters.mu.Lock()
	r := clusters.ref
	clusters.mu.Unlock()
	if r == nil {
		return nil, "", cluster.Stats{}, false
	}
	members = map[string]float64{"alive": 0, "suspect": 0, "dead": 0}
	for _, m := range r.node.Members() {
		if _, counted := members[m.State]; counted {
			members[m.State]++
		}
	}
	mode = "cluster"
	if local, _, _ := r.node.Local(); local {
		mode = "local"
	}
	return members, mode, r.node.Stats(), true
}
