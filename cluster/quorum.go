package cluster

import (
	"slices"
	"time"

	"github.com/hashicorp/memberlist"
)

// Verdict states.
const (
	Unknown = 0 // nobody has a fresh observation, or this node does not trust the cluster
	Up      = 1
	Down    = 2
)

// Verdict is the cluster's view of one target.
type Verdict struct {
	State     uint8
	Observers int // nodes with a fresh observation, this one included
	Down      int // of them, those that see it down
	Need      int // how many must see it down for it to be down
}

// need is the number of observers that must see a target down, of n, for quorum q.
func need(q, n int) int {
	switch {
	case q == All:
		return n
	case q >= 1:
		return min(q, n)
	default: // Majority
		return n/2 + 1
	}
}

// freshFor is how long an observation made by a check of interval counts after its node was
// last heard from: Fresh intervals, and at least Fresh beats.
func freshFor(interval uint32) time.Duration {
	return max(time.Duration(interval)*time.Millisecond, time.Second) * Fresh
}

// Verdicts computes the verdict of each target of keys (KeyHash values) with the quorum of the
// same index (0: the default), into out. In local mode every verdict is Unknown.
func (n *Node) Verdicts(keys []uint64, quorums []int, out []Verdict) {
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.local {
		clear(out)
		return
	}
	peers := make([]*peer, 0, len(n.peers))
	for _, p := range n.peers {
		if p.synced && p.left.IsZero() {
			peers = append(peers, p)
		}
	}
	for i, k := range keys {
		var v Verdict
		if o, ok := n.own[k]; ok {
			v.Observers++
			if o.State == obsDown {
				v.Down++
			}
		}
		for _, p := range peers {
			if o, ok := p.obs[k]; ok && now.Sub(p.heard) < freshFor(o.Interval) {
				v.Observers++
				if o.State == obsDown {
					v.Down++
				}
			}
		}
		if v.Observers > 0 {
			q := quorums[i]
			if q == 0 {
				q = n.cfg.Quorum
			}
			v.Need = need(q, v.Observers)
			v.State = Up
			if v.Down >= v.Need {
				v.State = Down
			}
		}
		out[i] = v
	}
}

// Observation is one node's observation of a target, for the status.
type Observation struct {
	Node  string
	Down  bool
	Since time.Time
	Fresh bool // it counts in the verdict
}

// Observations returns every node's observation of the target key, this node's first.
func (n *Node) Observations(key uint64) []Observation {
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []Observation
	if o, ok := n.own[key]; ok {
		out = append(out, Observation{Node: n.cfg.Name, Down: o.State == obsDown, Since: time.UnixMilli(o.Since), Fresh: true})
	}
	for _, p := range n.peers {
		if o, ok := p.obs[key]; ok {
			out = append(out, Observation{Node: p.name, Down: o.State == obsDown, Since: time.UnixMilli(o.Since),
				Fresh: p.synced && p.left.IsZero() && now.Sub(p.heard) < freshFor(o.Interval) && !n.local})
		}
	}
	slices.SortFunc(out[min(1, len(out)):], func(a, b Observation) int { return cmpString(a.Node, b.Node) })
	return out
}

// Member is one node of the cluster as this node sees it.
type Member struct {
	Name, Addr string
	State      string // alive, suspect, dead or left
	Self       bool
	Files      string    // the hash of its policy files
	Heard      time.Time // when a message from it last came; zero for this node
	Targets    int       // how many targets it observes
}

// SuspectAfter is how long a member may stay silent (every node beats once a second) before
// Members calls it suspect: memberlist still counts it, but its messages stopped coming.
// memberlist's own suspicion is not readable from outside it.
const SuspectAfter = 3 * time.Second

// Members returns the members, this node first, then by name.
func (n *Node) Members() []Member {
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	live := n.liveLocked()
	out := []Member{{Name: n.cfg.Name, Addr: n.Addr(), State: "alive", Self: true, Files: n.files, Targets: len(n.own)}}
	seen := map[string]bool{n.cfg.Name: true}
	for _, m := range live {
		if seen[m.Name] {
			continue
		}
		seen[m.Name] = true
		x := Member{Name: m.Name, Addr: m.Address(), State: "alive"}
		if p := n.peers[m.Name]; p != nil {
			x.Files, x.Heard, x.Targets = p.files, p.heard, len(p.obs)
			if !p.heard.IsZero() && now.Sub(p.heard) > SuspectAfter {
				x.State = "suspect"
			}
		}
		out = append(out, x)
	}
	for _, p := range n.peers {
		if seen[p.name] || !p.member {
			continue
		}
		st := "dead"
		if p.state == memberlist.StateLeft {
			st = "left"
		}
		out = append(out, Member{Name: p.name, Addr: p.addr, State: st, Files: p.files, Heard: p.heard, Targets: len(p.obs)})
	}
	slices.SortFunc(out[1:], func(a, b Member) int { return cmpString(a.Name, b.Name) })
	return out
}

// Local reports whether this node is cut off (it sees fewer than half of the members it
// knows) and so serves from its own probes; with the numbers it decided by.
func (n *Node) Local() (local bool, alive, known int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.local, n.alive, n.known
}

// checkMode decides the mode from the members memberlist sees alive: this node is cut off when
// it sees fewer than half of the members it knows (alive, suspect, or dead for less than
// ForgetDead; a member that left is not counted).
func (n *Node) checkMode() {
	now := time.Now()
	n.mu.Lock()
	alive := 1 + len(n.liveLocked()) // and this node
	known := 1
	for _, p := range n.peers {
		if p.member && p.state != memberlist.StateLeft && (p.left.IsZero() || now.Sub(p.left) < ForgetDead) {
			known++
		}
	}
	was := n.local
	n.local, n.alive, n.known = alive*2 < known, alive, known
	local := n.local
	if local != was {
		n.pend.All = true
	}
	n.mu.Unlock()
	switch {
	case local && !was:
		n.cfg.Logf("cluster: this node sees %d of the %d members it knows: it serves from its own probes until it sees at least half", alive, known)
	case !local && was:
		n.cfg.Logf("cluster: this node sees %d of %d members again: it serves the cluster's view", alive, known)
	}
}

// Serial returns the highest serial that a member serving the same policy file (name and hash)
// announces for the zone, or 0.
func (n *Node) Serial(name, hash string) uint32 {
	n.mu.Lock()
	defer n.mu.Unlock()
	var s uint32
	for _, p := range n.peers {
		if !p.left.IsZero() {
			continue
		}
		if z, ok := p.zones[name]; ok && z.Hash == hash {
			s = max(s, z.Serial)
		}
	}
	return s
}
