// Package cluster shares health observations and operator records between steerdns nodes by
// gossip over hashicorp/memberlist, and turns the observations of a target into the cluster's
// verdict by a quorum. It knows nothing of DNS, zones or the plugin: a target is a key, an
// observation is up or down since a time, a record is bytes with an ID.
//
// Each node is the only source of its own observations. It numbers its changes (a sequence)
// and sends each batch straight to every member (UDP, best effort); once a second it tells
// every member its sequence number (a beat). A member that finds it missed a number asks for
// the whole state, which comes over TCP. A joining node gets, by memberlist's push/pull, what
// its seed has heard of everyone, and asks each node it is behind on for its state. Records
// (overrides) go to every member over TCP and ride every push/pull; the newest write wins.
package cluster

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Config configures a Node. Name, Bind and Logf are required.
type Config struct {
	// Name of this node; unique in the cluster.
	Name string
	// Bind is the gossip address, UDP and TCP, host:port (port 0: any free port).
	Bind string
	// Advertise is the address peers reach this node at; default Bind.
	Advertise string
	// Join lists seeds, host:port; names are resolved again on every attempt.
	Join []string
	// Secret is the gossip encryption key (16, 24 or 32 bytes); nil: gossip is not encrypted.
	Secret []byte
	// Quorum is the default quorum of a target whose own is 0: N >= 1, Majority or All.
	// Default (0): Majority.
	Quorum int
	// Logf logs a line: joins, leaves, the view's mode changing, errors.
	Logf func(format string, args ...any)
	// OnChange is called with what changed in what peers said (observations, records, files,
	// members, the mode, observations going stale), at most once per 50 ms. It runs on its
	// own goroutine, one call at a time.
	OnChange func(Change)

	drop func(addr string) bool // tests: packets and connections to addr are lost
}

// Change says what changed since the last OnChange.
type Change struct {
	// Keys are the targets (KeyHash) whose observations changed, unless All.
	Keys []uint64
	// All: the verdict of any target may have changed (a member came, went or went quiet,
	// one sent its whole state, the mode changed).
	All bool
	// Records: the shared records changed.
	Records bool
	// Files: a member's files hash or serials changed.
	Files bool
}

func (c *Change) empty() bool { return len(c.Keys) == 0 && !c.All && !c.Records && !c.Files }

// Quorum values besides N >= 1.
const (
	Majority = -1
	All      = -2
)

// ring is how many of its last changes a node can send again.
const ring = 256

// maxLater is how many early changes a node keeps per peer while it waits for a missing one.
const maxLater = 512

// Fresh is how long an observation counts, in intervals of its check, after the node that made
// it was last heard from.
const Fresh = 3

// Node is this process's member of the cluster.
type Node struct {
	cfg   Config
	ml    *memberlist.Memberlist
	tr    *transport
	start time.Time
	addr  string // the address peers reach it at, read once from memberlist

	mu      sync.Mutex
	seq     uint64
	own     map[uint64]obs
	pending map[uint64]obs // changes not sent yet
	zones   []Zone
	files   string
	peers   map[string]*peer
	records map[string]Record
	dirty   map[uint64]struct{}  // keys changed since the last OnChange
	pend    Change               // the rest of what changed since then
	local   bool                 // partitioned: this node does not trust the cluster's view
	alive   int                  // members memberlist saw alive at the last check, this node included
	known   int                  // members this node knew then
	asked   map[string]time.Time // when this node last asked a peer for its state
	served  map[string]time.Time // when this node last sent its state to a peer

	// recent keeps the last changes sent, by sequence number modulo its size, so that a peer
	// that lost a packet gets it again rather than the whole state.
	recent [ring][]byte

	flush   chan struct{}
	changed chan struct{}
	stop    chan struct{}
	wg      sync.WaitGroup
	closed  atomic.Bool

	msgsIn, msgsOut atomic.Uint64
}

// peer is what this node knows of another.
type peer struct {
	name  string
	addr  string
	state memberlist.NodeStateType
	left  time.Time // when it died or left; zero while it is a member
	seq   uint64
	heard time.Time // when any message from it last arrived, on this node's clock
	files string
	obs   map[uint64]obs
	zones map[string]Zone
	// windows counts its observations by how long they stay fresh after it was last heard.
	windows map[time.Duration]int
	// later holds changes that came before one they follow, until the gap is filled.
	later  map[uint64]*message
	synced bool // it sent its whole state at least once
	member bool // memberlist told of it
	// node is a copy of its memberlist Node as the event delegate last saw it, nil before.
	// memberlist rewrites its own Nodes (address, meta) under its lock at every alive
	// message, so the Nodes that Members returns cannot be read, or sent to, from here
	// without a data race.
	node *memberlist.Node
}

// Start joins the cluster (in the background: seeds that do not answer are tried again with
// back-off) and returns the node.
func Start(cfg Config) (*Node, error) {
	if cfg.Name == "" {
		return nil, errors.New("cluster: a node needs a name")
	}
	host, portText, err := net.SplitHostPort(cfg.Bind)
	if err != nil {
		return nil, fmt.Errorf("cluster: bind %q: %v", cfg.Bind, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("cluster: bind %q: bad port", cfg.Bind)
	}
	if ip := net.ParseIP(host); ip == nil {
		return nil, fmt.Errorf("cluster: bind %q: not an IP address", cfg.Bind)
	}
	switch len(cfg.Secret) {
	case 0, 16, 24, 32:
	default:
		return nil, fmt.Errorf("cluster: the secret is %d bytes; it must be 16, 24 or 32", len(cfg.Secret))
	}
	// The sequence starts at the start time, so that a restarted node's numbers are above
	// those of its previous run and its peers take its new state.
	n := &Node{cfg: cfg, start: time.Now(), seq: uint64(time.Now().UnixNano()), own: map[uint64]obs{}, pending: map[uint64]obs{},
		peers: map[string]*peer{}, dirty: map[uint64]struct{}{}, records: map[string]Record{}, asked: map[string]time.Time{}, served: map[string]time.Time{},
		flush: make(chan struct{}, 1), changed: make(chan struct{}, 1), stop: make(chan struct{})}

	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.Name
	mc.Logger = log.New(io.Discard, "", 0)
	mc.Delegate = (*delegate)(n)
	mc.Events = (*events)(n)
	mc.TCPTimeout = 2 * time.Second
	mc.PushPullInterval = 15 * time.Second
	// A node that died without leaving may come back under its name at another address (a
	// Kubernetes pod that was killed and rescheduled); memberlist refuses that forever by default.
	mc.DeadNodeReclaimTime = 10 * time.Second
	if cfg.Secret != nil {
		mc.SecretKey = cfg.Secret
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	}
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{host}, BindPort: port, Logger: mc.Logger})
	if err != nil {
		return nil, fmt.Errorf("cluster: bind %s: %v", cfg.Bind, err)
	}
	port = nt.GetAutoBindPort()
	mc.BindAddr, mc.BindPort, mc.AdvertisePort = host, port, port
	if cfg.Advertise != "" {
		ah, ap, err := net.SplitHostPort(cfg.Advertise)
		if p, perr := strconv.Atoi(ap); err != nil || perr != nil || net.ParseIP(ah) == nil {
			nt.Shutdown()
			return nil, fmt.Errorf("cluster: advertise %q is not IP:port", cfg.Advertise)
		} else {
			mc.AdvertiseAddr, mc.AdvertisePort = ah, p
		}
	}
	n.tr = newTransport(nt, cfg.drop)
	n.tr.dropOn.Store(cfg.drop != nil)
	mc.Transport = n.tr
	if n.ml, err = memberlist.Create(mc); err != nil {
		nt.Shutdown()
		return nil, fmt.Errorf("cluster: %v", err)
	}
	n.addr = n.ml.LocalNode().Address()
	n.wg.Add(3)
	go n.sender()
	go n.notifier()
	go n.joiner()
	return n, nil
}

// Addr returns the address peers reach this node at.
func (n *Node) Addr() string { return n.addr }

// Name returns this node's name.
func (n *Node) Name() string { return n.cfg.Name }

// Close leaves the cluster (telling the others, for up to a second) and stops.
func (n *Node) Close() {
	if n.closed.Swap(true) {
		return
	}
	close(n.stop)
	n.ml.Leave(time.Second)
	n.ml.Shutdown()
	n.wg.Wait()
}

// Observe records this node's own observation of the target key: down or up since, by a check
// of interval. Peers hear of it within milliseconds.
func (n *Node) Observe(key string, down bool, since time.Time, interval time.Duration) {
	o := obs{State: obsUp, Since: since.UnixMilli(), Interval: uint32(min(interval.Milliseconds(), 1<<32-1))}
	if down {
		o.State = obsDown
	}
	h := KeyHash(key)
	n.mu.Lock()
	if n.own[h] != o {
		n.own[h] = o
		n.pending[h] = o
	}
	n.mu.Unlock()
	n.kick(n.flush)
}

// Forget says this node stopped probing the target key.
func (n *Node) Forget(key string) {
	h := KeyHash(key)
	n.mu.Lock()
	if _, ok := n.own[h]; ok {
		delete(n.own, h)
		n.pending[h] = obs{State: obsRemoved}
	}
	n.mu.Unlock()
	n.kick(n.flush)
}

// SetFiles sets the hash of this node's policy files and the serials it serves.
func (n *Node) SetFiles(hash string, zones []Zone) {
	zones = slices.Clone(zones)
	slices.SortFunc(zones, func(a, b Zone) int { return cmpString(a.Name, b.Name) })
	n.mu.Lock()
	if n.files == hash && slices.Equal(n.zones, zones) {
		n.mu.Unlock()
		return
	}
	n.files, n.zones = hash, zones
	b := n.emit(&message{Type: msgDelta, Origin: n.cfg.Name, Files: hash, Full: true, Zones: zones})
	n.mu.Unlock()
	if b != nil {
		n.sendAll(b, false)
	}
}

// emit numbers a change, keeps it for peers that lose it, and returns it encoded; nil when it
// does not fit a packet (peers fetch the whole state). n.mu is held.
func (n *Node) emit(m *message) []byte {
	n.seq++
	m.Seq = n.seq
	b := m.encode()
	if len(b) > maxPacket {
		b = nil
	}
	n.recent[n.seq%ring] = b
	return b
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (n *Node) kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// sender sends this node's changes as they come, and a beat every second.
func (n *Node) sender() {
	defer n.wg.Done()
	beat := time.NewTicker(time.Second)
	defer beat.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-n.flush:
			n.sendDelta()
		case <-beat.C:
			n.mu.Lock()
			m := &message{Type: msgBeat, Origin: n.cfg.Name, Seq: n.seq, Files: n.files}
			n.mu.Unlock()
			n.sendAll(m.encode(), false)
			n.gc(time.Now())
		}
	}
}

// sendDelta sends the pending changes, in as many packets as they need. A burst of more than
// ring/4 packets is not sent: the sequence moves on, and peers fetch the whole state over TCP.
func (n *Node) sendDelta() {
	n.mu.Lock()
	if len(n.pending) == 0 {
		n.mu.Unlock()
		return
	}
	const perPacket = (maxPacket - 64) / (minObsSize + 8)
	var out [][]byte
	if len(n.pending) <= perPacket*ring/4 {
		list := make([]entry, 0, len(n.pending))
		for k, o := range n.pending {
			list = append(list, entry{k, o})
		}
		for len(list) > 0 {
			c := min(len(list), perPacket)
			out = append(out, n.emit(&message{Type: msgDelta, Origin: n.cfg.Name, Files: n.files, Obs: list[:c]}))
			list = list[c:]
		}
	} else {
		n.seq++
		n.recent[n.seq%ring] = nil
		out = append(out, (&message{Type: msgBeat, Origin: n.cfg.Name, Seq: n.seq, Files: n.files}).encode())
	}
	clear(n.pending)
	n.mu.Unlock()
	for _, b := range out {
		if b != nil {
			n.sendAll(b, false)
		}
	}
}

// resend sends the named peer the changes from seq from on, when this node still has them all,
// and reports whether it did.
func (n *Node) resend(name string, from uint64) bool {
	n.mu.Lock()
	if from == 0 || from > n.seq || n.seq-from >= ring {
		n.mu.Unlock()
		return from > n.seq // nothing to send
	}
	var out [][]byte
	for s := from; s <= n.seq; s++ {
		b := n.recent[s%ring]
		if b == nil {
			n.mu.Unlock()
			return false
		}
		out = append(out, b)
	}
	m := n.memberLocked(name)
	n.mu.Unlock()
	if m != nil {
		for _, b := range out {
			n.send(m, b, false)
		}
	}
	return true
}

// sendAll sends b to every member but this node.
func (n *Node) sendAll(b []byte, reliable bool) {
	n.mu.Lock()
	live := n.liveLocked()
	n.mu.Unlock()
	for _, m := range live {
		n.send(m, b, reliable)
	}
}

// liveLocked returns the members other than this node that memberlist counts (joined, not dead
// or left, as its event delegate told), as copies of their Nodes. n.mu is held.
func (n *Node) liveLocked() []*memberlist.Node {
	var out []*memberlist.Node
	for _, p := range n.peers {
		if p.member && p.left.IsZero() && p.node != nil {
			out = append(out, p.node)
		}
	}
	return out
}

// memberLocked returns the named member as liveLocked does, or nil. n.mu is held.
func (n *Node) memberLocked(name string) *memberlist.Node {
	if p := n.peers[name]; p != nil && p.member && p.left.IsZero() {
		return p.node
	}
	return nil
}

func (n *Node) send(to *memberlist.Node, b []byte, reliable bool) {
	var err error
	if reliable {
		err = n.ml.SendReliable(to, b)
	} else {
		err = n.ml.SendBestEffort(to, b)
	}
	if err == nil {
		n.msgsOut.Add(1)
	}
}

// ownState returns this node's whole state as a message.
func (n *Node) ownState() *message {
	m := &message{Type: msgState, Origin: n.cfg.Name, Seq: n.seq, Files: n.files, Full: true, Zones: n.zones,
		Obs: make([]entry, 0, len(n.own))}
	for k, o := range n.own {
		m.Obs = append(m.Obs, entry{k, o})
	}
	return m
}

// receive applies a message from a peer.
func (n *Node) receive(b []byte) {
	m, err := decode(b)
	if err != nil {
		n.cfg.Logf("cluster: dropped a message: %v", err)
		return
	}
	n.msgsIn.Add(1)
	if m.Origin == n.cfg.Name && m.Type != msgSync {
		return
	}
	now := time.Now()
	var ask, resend string
	var from uint64
	n.mu.Lock()
	switch m.Type {
	case msgBeat:
		p := n.heardFrom(m.Origin, m.Files, now)
		if m.Seq > p.seq || !p.synced {
			ask = m.Origin
		}
	case msgDelta:
		p := n.heardFrom(m.Origin, m.Files, now)
		switch {
		case !p.synced:
			ask = m.Origin
		case m.Seq == p.seq+1:
			n.applyDelta(p, m)
			n.applyLater(p)
		case m.Seq > p.seq:
			if len(p.later) < maxLater {
				p.later[m.Seq] = m
			}
			ask = m.Origin
		}
	case msgState:
		n.applyState(m, now)
	case msgSync:
		if m.Target == n.cfg.Name {
			resend, from = m.Origin, m.Seq
		}
	case msgRecords:
		n.mergeRecords(m.Recs)
	}
	changed := len(n.dirty) > 0 || !n.pend.empty()
	n.mu.Unlock()
	if ask != "" {
		n.ask(ask)
	}
	if resend != "" && !n.resend(resend, from) {
		n.serve(resend)
	}
	if changed {
		n.kick(n.changed)
	}
}

// applyDelta applies the peer's next change. n.mu is held.
func (n *Node) applyDelta(p *peer, m *message) {
	p.seq = m.Seq
	for _, e := range m.Obs {
		if old, ok := p.obs[e.Key]; ok {
			p.windows[freshFor(old.Interval)]--
		}
		if e.State == obsRemoved {
			delete(p.obs, e.Key)
		} else {
			p.obs[e.Key] = e.obs
			p.windows[freshFor(e.Interval)]++
		}
		n.dirty[e.Key] = struct{}{}
	}
	if m.Full {
		p.setZones(m.Zones)
		n.pend.Files = true
	}
}

// applyLater applies the changes that came early and follow now, and drops those it passed.
// n.mu is held.
func (n *Node) applyLater(p *peer) {
	for s := range p.later {
		if s <= p.seq {
			delete(p.later, s)
		}
	}
	for {
		m := p.later[p.seq+1]
		if m == nil {
			return
		}
		delete(p.later, m.Seq)
		n.applyDelta(p, m)
	}
}

// heardFrom notes a message from the named peer: a peer that was quiet long enough for some of
// its observations to go stale counts again. n.mu is held.
func (n *Node) heardFrom(name, files string, now time.Time) *peer {
	p := n.peer(name)
	if !p.heard.IsZero() && now.Sub(p.heard) >= Fresh*time.Second {
		n.pend.All = true
	}
	if p.files != files {
		n.pend.Files = true
	}
	p.heard, p.files = now, files
	return p
}

func (p *peer) setZones(list []Zone) {
	p.zones = make(map[string]Zone, len(list))
	for _, z := range list {
		p.zones[z.Name] = z
	}
}

// applyState takes a peer's whole state, unless this node has a newer one. n.mu is held.
func (n *Node) applyState(m *message, now time.Time) {
	p := n.peer(m.Origin)
	if m.Seq < p.seq && p.synced {
		return
	}
	p.seq, p.files, p.heard, p.synced = m.Seq, m.Files, now, true
	p.setZones(m.Zones)
	p.obs = make(map[uint64]obs, len(m.Obs))
	p.windows = map[time.Duration]int{}
	for _, e := range m.Obs {
		if e.State != obsRemoved {
			p.obs[e.Key] = e.obs
			p.windows[freshFor(e.Interval)]++
		}
	}
	n.pend.All, n.pend.Files = true, true
	n.applyLater(p)
}

// peer returns the record of the named node, made when new. n.mu is held.
func (n *Node) peer(name string) *peer {
	p := n.peers[name]
	if p == nil {
		p = &peer{name: name, state: memberlist.StateAlive, obs: map[uint64]obs{}, windows: map[time.Duration]int{}, later: map[uint64]*message{}}
		n.peers[name] = p
	}
	return p
}

// ask asks the named node for the changes this node lacks (its whole state when it has none
// of them), at most five times a second.
func (n *Node) ask(name string) {
	now := time.Now()
	n.mu.Lock()
	if now.Sub(n.asked[name]) < 200*time.Millisecond {
		n.mu.Unlock()
		return
	}
	n.asked[name] = now
	var from uint64 // the whole state
	if p := n.peers[name]; p != nil && p.synced {
		from = p.seq + 1 // the changes this node lacks
	}
	m := n.memberLocked(name)
	n.mu.Unlock()
	if m != nil {
		n.send(m, (&message{Type: msgSync, Origin: n.cfg.Name, Target: name, Seq: from}).encode(), false)
	}
}

// serve sends this node's whole state to the named node, over TCP, at most twice a second.
func (n *Node) serve(name string) {
	now := time.Now()
	n.mu.Lock()
	if now.Sub(n.served[name]) < 500*time.Millisecond {
		n.mu.Unlock()
		return
	}
	n.served[name] = now
	b := n.ownState().encode()
	m := n.memberLocked(name)
	n.mu.Unlock()
	if m != nil {
		go n.send(m, b, true)
	}
}

// notifier calls OnChange, coalesced.
func (n *Node) notifier() {
	defer n.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-n.stop:
			return
		case <-n.changed:
		case <-tick.C:
		}
		n.checkMode()
		now := time.Now()
		n.mu.Lock()
		n.staleSince(last, now)
		last = now
		ch := n.pend
		n.pend = Change{}
		if !ch.All {
			for k := range n.dirty {
				ch.Keys = append(ch.Keys, k)
			}
		}
		clear(n.dirty)
		n.mu.Unlock()
		if n.cfg.OnChange != nil && !ch.empty() {
			n.cfg.OnChange(ch)
		}
		select {
		case <-n.stop:
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// staleSince marks every verdict changed when some observation went stale between last and
// now: its node was last heard from longer ago than it stays fresh. n.mu is held.
func (n *Node) staleSince(last, now time.Time) {
	for _, p := range n.peers {
		if !p.synced || p.heard.IsZero() {
			continue
		}
		before, after := last.Sub(p.heard), now.Sub(p.heard)
		for w, count := range p.windows {
			if count > 0 && before < w && after >= w {
				n.pend.All = true
				return
			}
		}
	}
}

// joiner joins the seeds, and keeps joining the seeds and the members that died, so that a
// node cut off for longer than memberlist remembers the dead finds the others again.
func (n *Node) joiner() {
	defer n.wg.Done()
	wait, failed := time.Second, 0
	for {
		var want []string
		alive := map[string]bool{n.addr: true}
		n.mu.Lock()
		for _, m := range n.liveLocked() {
			alive[m.Address()] = true
		}
		for _, s := range n.cfg.Join {
			if !alive[s] {
				want = append(want, s)
			}
		}
		for _, p := range n.peers {
			if !p.left.IsZero() && p.state == memberlist.StateDead && p.addr != "" && !alive[p.addr] && !slices.Contains(want, p.addr) {
				want = append(want, p.addr)
			}
		}
		n.mu.Unlock()
		if len(want) > 0 {
			joined, err := n.ml.Join(want)
			switch {
			case joined > 0:
				wait, failed = 5*time.Second, 0
			case err != nil:
				if failed%10 == 0 {
					n.cfg.Logf("cluster: cannot join %v yet (trying again with back-off): %v", want, err)
				}
				failed++
				wait = min(wait*2, 10*time.Second)
			}
		} else {
			wait = 5 * time.Second
		}
		select {
		case <-n.stop:
			return
		case <-time.After(wait):
		}
	}
}

// gc drops records that expired and peers that left long ago.
func (n *Node) gc(now time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for id, r := range n.records {
		if (!r.Expires.IsZero() && now.After(r.Expires)) || (r.Deleted && now.Sub(r.Updated) > TombstoneTTL) {
			delete(n.records, id)
		}
	}
	for name, p := range n.peers {
		if !p.left.IsZero() && now.Sub(p.left) > ForgetDead {
			delete(n.peers, name)
		}
	}
}

// TombstoneTTL is how long a deleted record is remembered, so that a node that was away
// shorter than that does not bring it back.
const TombstoneTTL = 24 * time.Hour

// ForgetDead is how long a member that died without leaving still counts among the members
// this node knows (for the partition rule) and is joined again.
const ForgetDead = 10 * time.Minute

// Stats are counters of this node's gossip.
type Stats struct {
	MessagesIn, MessagesOut uint64 // steerdns messages, not memberlist's own
	BytesOut                uint64 // every byte this node sent, memberlist's own included
}

// Stats returns the counters.
func (n *Node) Stats() Stats {
	return Stats{MessagesIn: n.msgsIn.Load(), MessagesOut: n.msgsOut.Load(), BytesOut: n.tr.out.Load()}
}
