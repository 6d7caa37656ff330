package healthcheck

import (
	"reflect"
	"testing"
	"time"
)

// engineConfig keeps a config that is normalized and within bounds (the config of a policy
// file), so that targets that share one still share it in the engine, and copies any other.
func TestEngineConfig(t *testing.T) {
	for _, c := range []Config{
		{Type: TypeHTTP},
		{Type: TypeHTTPS, Path: "/x", ExpectStatus: []StatusRange{{200, 200}}},
		{Type: TypeTCP, Port: 22},
		{Type: TypeDNS, Query: "a.example."},
		{Type: TypeGRPC, Interval: time.Second},
		{Type: TypeHTTP, Interval: time.Millisecond, Timeout: time.Millisecond / 2}, // clamped
		{Type: TypeHTTP, Interval: time.Second, FastInterval: time.Millisecond},     // clamped
		{Type: TypeHTTP, Rise: 5, Fall: 1, Quorum: QuorumAll},
	} {
		want := c.Normalize()
		want.Interval = max(want.Interval, MinInterval)
		want.FastInterval = max(want.FastInterval, MinInterval/2)
		if got := engineConfig(&c); got == &c || !reflect.DeepEqual(*got, want) {
			t.Errorf("%+v: engineConfig gives %+v (the same: %t), want a copy %+v", c, *got, got == &c, want)
		}
		if got := engineConfig(&want); got != &want {
			t.Errorf("%+v: engineConfig of the normalized config is a copy", want)
		}
	}
}

// Targets that share a config share it in the engine too.
func TestEngineSharesConfigs(t *testing.T) {
	e := NewEngine(Options{})
	defer e.Close()
	c := Config{Type: TypeTCP, Port: refusedPort(t)}.Normalize()
	key := c.Key()
	targets := []Target{NewTargetKeyed("a", &c, key, "127.0.0.1"), NewTargetKeyed("b", &c, key, "127.0.0.2")}
	sub := e.Subscribe(nil)
	defer sub.Close()
	sub.Hold(targets)
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, tg := range targets {
		if ent := e.targets[tg.Key]; ent == nil || ent.target.Config != &c {
			t.Errorf("%s: the engine does not probe with the shared config", tg)
		}
	}
}
