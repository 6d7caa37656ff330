package cluster

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// cut is a set of addresses that a test makes unreachable, per node.
type cut struct {
	mu   sync.Mutex
	addr map[string]bool
}

func (c *cut) drop(addr string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addr[addr]
}

func (c *cut) set(addrs ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addr = map[string]bool{}
	for _, a := range addrs {
		c.addr[a] = true
	}
}

type testNode struct {
	*Node
	cut *cut
	log *strings.Builder
	mu  *sync.Mutex
}

func (tn testNode) logged() string {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	return tn.log.String()
}

// start starts a node on a loopback address, joining seeds.
func start(t *testing.T, name string, secret []byte, seeds ...string) testNode {
	t.Helper()
	tn := testNode{cut: &cut{}, log: &strings.Builder{}, mu: &sync.Mutex{}}
	n, err := Start(Config{Name: name, Bind: "127.0.0.1:0", Join: seeds, Secret: secret, drop: tn.cut.drop,
		Logf: func(f string, a ...any) {
			tn.mu.Lock()
			fmt.Fprintf(tn.log, f+"\n", a...)
			tn.mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	tn.Node = n
	return tn
}

// eventually polls cond until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func verdict(n *Node, key string, q int) Verdict {
	out := make([]Verdict, 1)
	n.Verdicts([]uint64{KeyHash(key)}, []int{q}, out)
	return out[0]
}

func alive(n *Node, want int) func() bool {
	return func() bool {
		c := 0
		for _, m := range n.Members() {
			if m.State == "alive" {
				c++
			}
		}
		return c == want
	}
}

func trio(t *testing.T, secret []byte) (a, b, c testNode) {
	a = start(t, "a", secret)
	b = start(t, "b", secret, a.Addr())
	c = start(t, "c", secret, a.Addr())
	for _, n := range []testNode{a, b, c} {
		eventually(t, 10*time.Second, n.Name()+" sees three members", alive(n.Node, 3))
	}
	return a, b, c
}

func TestQuorumAcrossNodes(t *testing.T) {
	a, b, c := trio(t, nil)
	const key = "http|80|/@192.0.2.1"
	for _, n := range []testNode{a, b, c} {
		n.Observe(key, false, time.Now(), time.Second)
	}
	eventually(t, 5*time.Second, "a hears b and c", func() bool { return verdict(a.Node, key, Majority).Observers == 3 })

	// One node sees it down: a majority does not, any does.
	c.Observe(key, true, time.Now(), time.Second)
	eventually(t, 5*time.Second, "a hears c's down", func() bool { return verdict(a.Node, key, 1).State == Down })
	for _, n := range []testNode{a, b, c} {
		eventually(t, 5*time.Second, n.Name()+": any -> down", func() bool { return verdict(n.Node, key, 1).State == Down })
		if v := verdict(n.Node, key, Majority); v.State != Up || v.Down != 1 || v.Need != 2 {
			t.Errorf("%s: majority with one of three down: %+v, want up (1 down, 2 needed)", n.Name(), v)
		}
		if v := verdict(n.Node, key, All); v.State != Up {
			t.Errorf("%s: all: %+v, want up", n.Name(), v)
		}
	}
	// Two see it down: a majority does.
	b.Observe(key, true, time.Now(), time.Second)
	for _, n := range []testNode{a, b, c} {
		eventually(t, 5*time.Second, n.Name()+": majority -> down", func() bool { return verdict(n.Node, key, Majority).State == Down })
	}
	if v := verdict(a.Node, key, All); v.State != Up {
		t.Errorf("all with two of three down: %+v, want up", v)
	}
	// A target nobody probes is unknown.
	if v := verdict(a.Node, "other", Majority); v.State != Unknown || v.Observers != 0 {
		t.Errorf("unobserved target: %+v", v)
	}
	// A node that stops probing is no longer counted.
	b.Forget(key)
	eventually(t, 5*time.Second, "b's observation is gone", func() bool { return verdict(a.Node, key, Majority).Observers == 2 })
	obs := a.Observations(KeyHash(key))
	if len(obs) != 2 || obs[0].Node != "a" || obs[1].Node != "c" || !obs[1].Down || !obs[1].Fresh {
		t.Errorf("observations on a: %+v", obs)
	}
}

func TestPartitionedNodeServesItsOwn(t *testing.T) {
	a, b, c := trio(t, nil)
	const key = "tcp|443@192.0.2.7"
	for _, n := range []testNode{a, b, c} {
		n.Observe(key, n.Name() == "c", time.Now(), time.Second) // c alone sees it down
	}
	eventually(t, 5*time.Second, "c hears a and b", func() bool { return verdict(c.Node, key, Majority).Observers == 3 })

	// Cut c off from both.
	c.cut.set(a.Addr(), b.Addr())
	a.cut.set(c.Addr())
	b.cut.set(c.Addr())
	cutAt := time.Now()
	// a sees c fall silent: suspect, then dead.
	stateOf := func(n testNode, name string) string {
		for _, m := range n.Members() {
			if m.Name == name {
				return m.State
			}
		}
		return "gone"
	}
	eventually(t, 30*time.Second, "a calls c suspect or dead", func() bool { s := stateOf(a, "c"); return s == "suspect" || s == "dead" })
	// a and b keep the cluster's view, without c's stale observation.
	eventually(t, 30*time.Second, "a counts two observers", func() bool { return verdict(a.Node, key, Majority).Observers == 2 })
	t.Logf("a stopped counting c's observation %v after the cut", time.Since(cutAt).Round(100*time.Millisecond))
	eventually(t, 30*time.Second, "c goes local", func() bool { l, _, _ := c.Local(); return l })
	t.Logf("c went local %v after the cut", time.Since(cutAt).Round(100*time.Millisecond))
	if v := verdict(c.Node, key, Majority); v.State != Unknown {
		t.Errorf("partitioned c: verdict %+v, want unknown (it serves its own probes)", v)
	}
	if !strings.Contains(c.logged(), "sees 1 of the 3 members it knows") {
		t.Errorf("c's log does not say it is cut off:\n%s", c.logged())
	}
	if l, _, _ := a.Local(); l {
		t.Error("a went local, though it sees two of three")
	}
	// Heal: c finds the others again and trusts the cluster.
	a.cut.set()
	b.cut.set()
	c.cut.set()
	healAt := time.Now()
	eventually(t, 60*time.Second, "c rejoins", func() bool { l, _, _ := c.Local(); return !l && verdict(c.Node, key, Majority).Observers == 3 })
	t.Logf("c serves the cluster's view with all three observations %v after the heal", time.Since(healAt).Round(100*time.Millisecond))
	eventually(t, 30*time.Second, "a calls c alive again", func() bool { return stateOf(a, "c") == "alive" })
	if !strings.Contains(c.logged(), "it serves the cluster's view") {
		t.Errorf("c's log does not say it healed:\n%s", c.logged())
	}
}

func TestJoinGetsStateAndRecords(t *testing.T) {
	a := start(t, "a", nil)
	a.Observe("k", true, time.Now(), time.Second)
	a.Put(Record{ID: "o1", Data: []byte("drain x")})
	a.Put(Record{ID: "o2", Data: []byte("drain y")})
	a.Delete("o2")
	a.SetFiles("files-1", []Zone{{Name: "example.com.", Hash: "h1", Serial: 7}})
	b := start(t, "b", nil, a.Addr())
	eventually(t, 10*time.Second, "b has a's observation", func() bool { return verdict(b.Node, "k", Majority).Down == 1 })
	eventually(t, 10*time.Second, "b has a's record", func() bool { return len(b.Records()) == 1 })
	if r := b.Records()[0]; r.ID != "o1" || string(r.Data) != "drain x" || r.Node != "a" {
		t.Errorf("b's record: %+v", r)
	}
	if s := b.Serial("example.com.", "h1"); s != 7 {
		t.Errorf("serial a announces: %d, want 7", s)
	}
	if s := b.Serial("example.com.", "other"); s != 0 {
		t.Errorf("serial for another file: %d, want 0", s)
	}
	// A write on b reaches a; the later write wins.
	b.Put(Record{ID: "o1", Data: []byte("force-up x")})
	eventually(t, 5*time.Second, "a has b's write", func() bool {
		r := a.Records()
		return len(r) == 1 && string(r[0].Data) == "force-up x"
	})
	b.Delete("o1")
	eventually(t, 5*time.Second, "a has b's delete", func() bool { return len(a.Records()) == 0 })
	m := b.Members()
	if len(m) != 2 || m[0].Name != "b" || m[1].Name != "a" || m[1].Files != "files-1" || m[1].State != "alive" {
		t.Errorf("b's members: %+v", m)
	}
}

func TestWrongSecretCannotJoin(t *testing.T) {
	good := []byte("0123456789abcdef")
	a := start(t, "a", good)
	c := start(t, "c", good, a.Addr())
	eventually(t, 10*time.Second, "c joins a", alive(a.Node, 2))
	for _, secret := range [][]byte{[]byte("fedcba9876543210"), nil} {
		n := start(t, fmt.Sprintf("wrong-%d", len(secret)), secret)
		if joined, err := n.ml.Join([]string{a.Addr()}); err == nil || joined != 0 {
			t.Errorf("a node with secret %q joined %d: %v", secret, joined, err)
		}
		if m := n.Members(); len(m) != 1 {
			t.Errorf("%s sees members: %+v", n.Name(), m)
		}
	}
	if m := a.Members(); len(m) != 2 || m[1].Name != c.Name() {
		t.Errorf("a's members: %+v", m)
	}
}

func TestWireRoundTrip(t *testing.T) {
	now := time.UnixMilli(time.Now().UnixMilli())
	msgs := []*message{
		{Type: msgBeat, Origin: "a", Seq: 9, Files: "f"},
		{Type: msgDelta, Origin: "a", Seq: 10, Files: "f", Obs: []entry{{1, obs{obsDown, 5, 1000}}, {2, obs{obsRemoved, 0, 0}}}},
		{Type: msgState, Origin: "a", Seq: 10, Obs: []entry{}, Full: true, Zones: []Zone{{"z.", "h", 3}}},
		{Type: msgSync, Origin: "b", Target: "a", Seq: 12},
		{Type: msgRecords, Origin: "a", Recs: []Record{{ID: "x", Node: "a", Updated: time.Unix(0, now.UnixNano()), Expires: now, Data: []byte("d")}}},
		{Type: msgPush, Origin: "a", Heard: []heard{{"a", 1}}, Recs: []Record{}, State: &message{Type: msgState, Origin: "a", Obs: []entry{}}},
	}
	for _, m := range msgs {
		got, err := decode(m.encode())
		if err != nil {
			t.Fatalf("%c: %v", m.Type, err)
		}
		if m.Type == msgRecords {
			if got.Recs[0].ID != "x" || !got.Recs[0].Updated.Equal(m.Recs[0].Updated) || !got.Recs[0].Expires.Equal(now) {
				t.Errorf("records: %+v", got.Recs)
			}
			continue
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("%c: got %+v, want %+v", m.Type, got, m)
		}
	}
	for _, b := range [][]byte{nil, {1}, {2, 'b', 1, 'a', 0, 0}, {1, 'z', 1, 'a'}, append(msgs[0].encode(), 0)} {
		if _, err := decode(b); err == nil {
			t.Errorf("decode(%q) accepted", b)
		}
	}
}

func TestNeed(t *testing.T) {
	for _, c := range []struct{ q, n, want int }{
		{Majority, 1, 1}, {Majority, 2, 2}, {Majority, 3, 2}, {Majority, 4, 3}, {Majority, 10, 6},
		{All, 3, 3}, {1, 3, 1}, {2, 3, 2}, {5, 3, 3},
	} {
		if got := need(c.q, c.n); got != c.want {
			t.Errorf("need(%d, %d) = %d, want %d", c.q, c.n, got, c.want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add((&message{Type: msgDelta, Origin: "a", Seq: 1, Obs: []entry{{1, obs{obsUp, 1, 1}}}}).encode())
	f.Add((&message{Type: msgPush, Origin: "a", Heard: []heard{{"b", 2}}, State: &message{Type: msgState, Origin: "a"}}).encode())
	f.Add((&message{Type: msgRecords, Origin: "a", Recs: []Record{{ID: "x", Data: []byte("y")}}}).encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decode(b)
		if err != nil {
			return
		}
		if _, err := decode(m.encode()); err != nil {
			t.Fatalf("re-encoded message fails: %v", err)
		}
	})
}
