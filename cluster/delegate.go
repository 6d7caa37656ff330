package cluster

import (
	"slices"
	"time"

	"github.com/hashicorp/memberlist"
)

// delegate is the Node as memberlist's Delegate.
type delegate Node

func (d *delegate) NodeMeta(limit int) []byte { return nil }

func (d *delegate) NotifyMsg(b []byte) { (*Node)(d).receive(b) }

// GetBroadcasts: nothing rides memberlist's gossip; a node sends its changes to every member.
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }

// LocalState is this node's side of a push/pull: the sequence it has applied of every node,
// the records, and on a join its own whole state.
func (d *delegate) LocalState(join bool) []byte {
	n := (*Node)(d)
	n.mu.Lock()
	defer n.mu.Unlock()
	m := &message{Type: msgPush, Origin: n.cfg.Name, Heard: []heard{{n.cfg.Name, n.seq}}}
	for _, p := range n.peers {
		if p.synced && p.left.IsZero() {
			m.Heard = append(m.Heard, heard{p.name, p.seq})
		}
	}
	for _, r := range n.records {
		m.Recs = append(m.Recs, r)
	}
	if join {
		m.State = n.ownState()
	}
	return m.encode()
}

// MergeRemoteState takes a peer's side of a push/pull: its records, its state when it sent it,
// and for every node the peer has heard further than this node, a request for that node's state.
func (d *delegate) MergeRemoteState(buf []byte, join bool) {
	n := (*Node)(d)
	m, err := decode(buf)
	if err != nil || m.Type != msgPush {
		n.cfg.Logf("cluster: dropped a push/pull: %v", err)
		return
	}
	n.msgsIn.Add(1)
	now := time.Now()
	var ask []string
	n.mu.Lock()
	n.mergeRecords(m.Recs)
	if m.State != nil && m.Origin != n.cfg.Name {
		n.applyState(m.State, now)
	}
	for _, h := range m.Heard {
		if h.Name == n.cfg.Name {
			continue
		}
		if p := n.peers[h.Name]; p == nil || !p.synced || p.seq < h.Seq {
			ask = append(ask, h.Name)
		}
	}
	changed := len(n.dirty) > 0 || !n.pend.empty()
	n.mu.Unlock()
	for _, name := range ask {
		go n.ask(name) // memberlist may hold its node lock here
	}
	if changed {
		n.kick(n.changed)
	}
}

// events is the Node as memberlist's EventDelegate. memberlist calls it with its node lock
// held: it only updates the table.
type events Node

func (e *events) NotifyJoin(m *memberlist.Node) {
	n := (*Node)(e)
	if m.Name == n.cfg.Name {
		return
	}
	n.mu.Lock()
	p := n.peer(m.Name)
	p.member, p.state, p.left, p.addr, p.node = true, memberlist.StateAlive, time.Time{}, m.Address(), copyNode(m)
	p.synced = false // it may have restarted: its observations count again once its state came
	n.pend.All, n.pend.Files = true, true
	n.mu.Unlock()
	n.cfg.Logf("cluster: %s (%s) joined", m.Name, m.Address())
	n.kick(n.changed)
}

func (e *events) NotifyLeave(m *memberlist.Node) {
	n := (*Node)(e)
	if m.Name == n.cfg.Name {
		return
	}
	n.mu.Lock()
	p := n.peer(m.Name)
	p.member, p.state, p.left, p.addr, p.node = true, m.State, time.Now(), m.Address(), copyNode(m)
	n.pend.All, n.pend.Files = true, true
	n.mu.Unlock()
	how := "is dead"
	if m.State == memberlist.StateLeft {
		how = "left"
	}
	n.cfg.Logf("cluster: %s (%s) %s", m.Name, m.Address(), how)
	n.kick(n.changed)
}

func (e *events) NotifyUpdate(m *memberlist.Node) {
	n := (*Node)(e)
	n.mu.Lock()
	if p := n.peers[m.Name]; p != nil {
		p.addr, p.node = m.Address(), copyNode(m)
	}
	n.mu.Unlock()
}

// copyNode copies m, which memberlist lets its event delegate read under its lock.
func copyNode(m *memberlist.Node) *memberlist.Node {
	c := *m
	c.Addr = slices.Clone(m.Addr)
	c.Meta = slices.Clone(m.Meta)
	return &c
}
