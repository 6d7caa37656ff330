package healthcheck

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
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

// Targets that share a config share it in the engine too; targets declared together start
// with one observation (each in a cell of its own).
func TestEngineSharesConfigs(t *testing.T) {
	e := NewEngine(Options{})
	defer e.Close()
	c := Config{Type: TypeTCP, Port: refusedPort(t)}.Normalize()
	key := c.Key()
	targets := []Target{NewTargetKeyed("a", &c, key, "127.0.0.1"), NewTargetKeyed("b", &c, key, "127.0.0.2")}
	sub := e.Subscribe(nil)
	defer sub.Close()
	st := sub.Hold(targets)
	// (Unless a first probe came already: they start within 20ms.)
	if o0, o1 := st[0].obs.Load(), st[1].obs.Load(); st[0] == st[1] || o0 != o1 && o0.State == Unknown && o1.State == Unknown {
		t.Errorf("new targets have the cells %p and %p, observations %p and %p", st[0], st[1], o0, o1)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, tg := range targets {
		if ent := e.targets[tg.Key]; ent == nil || ent.target.Config != &c {
			t.Errorf("%s: the engine does not probe with the shared config", tg)
		}
	}
}

// keyWithFmt is the Key of c as it was first written, with fmt: the reference the faster Key
// must match, since keys name targets in state files and between the nodes of a cluster. Text
// fields that hold a "|" or start with a quote are quoted (they made Keys ambiguous).
func keyWithFmt(c Config) string {
	f := func(s string) string {
		if strings.Contains(s, "|") || strings.HasPrefix(s, `"`) {
			return fmt.Sprintf("%q", s)
		}
		return s
	}
	c.Path, c.Host, c.Method, c.Query, c.Service = f(c.Path), f(c.Host), f(c.Method), f(c.Query), f(c.Service)
	var b strings.Builder
	fmt.Fprintf(&b, "%s|%d|%s|%s|%s|", c.Type, c.Port, c.Path, c.Host, c.Method)
	keys := make([]string, 0, len(c.Headers))
	for k := range c.Headers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%q=%q,", k, c.Headers[k])
	}
	for _, r := range c.ExpectStatus {
		fmt.Fprintf(&b, "|%s", r)
	}
	fmt.Fprintf(&b, "|%q|%t|%s|%s|%t|%s|%s|%s|%d|%d", c.ExpectBody, c.InsecureTLS, c.Query, c.Service, c.TLS,
		c.Interval, c.Timeout, c.FastInterval, c.Rise, c.Fall)
	return b.String()
}

func TestKey(t *testing.T) {
	for _, c := range []Config{
		{},
		{Type: TypeHTTP},
		{Type: TypeHTTPS, Port: 8443, Path: "/a|b", Host: "www.example.com", Method: "HEAD",
			Headers:      map[string]string{"X-B": "two words", "X-A": "q\"uote\n", "Ü": "\x00"},
			ExpectStatus: []StatusRange{{200, 200}, {300, 399}}, ExpectBody: "ok \"fine\"\t", InsecureTLS: true},
		{Type: TypeDNS, Query: "health.example.com.", Interval: 1500 * time.Millisecond, Timeout: 250 * time.Microsecond},
		{Type: TypeGRPC, Service: "svc.v1", TLS: true, Rise: 10, Fall: -1, Quorum: QuorumAll, Port: -5},
		{Type: "tcp", Port: 65535, Interval: time.Hour + time.Nanosecond, FastInterval: 3 * time.Second, ExpectStatus: []StatusRange{{-1, 0}}},
	} {
		for _, c := range []Config{c, c.Normalize()} {
			if got, want := c.Key(), keyWithFmt(c); got != want {
				t.Errorf("Key of %+v:\n %s\nwant\n %s", c, got, want)
			}
		}
	}
}

// Configs that differ have different Keys, whatever their text fields hold; usual ones keep the
// Key they always had.
func TestKeyUnambiguous(t *testing.T) {
	a := Config{Type: TypeHTTP, Path: "/a|b"}.Normalize()
	b := Config{Type: TypeHTTP, Path: "/a", Host: "b|"}.Normalize()
	c := Config{Type: TypeHTTP, Path: `"/a`}.Normalize()
	d := Config{Type: TypeHTTP, Path: `/a`}.Normalize()
	if a.Key() == b.Key() || c.Key() == d.Key() {
		t.Errorf("two configs, one Key:\n %s\n %s\n %s\n %s", a.Key(), b.Key(), c.Key(), d.Key())
	}
	if got, want := d.Key(), "http|80|/a||GET||200-399|\"\"|false|||false|5s|2s|1s|2|2"; got != want {
		t.Errorf("Key %s, want %s as before", got, want)
	}
}

func TestAppendTargetKey(t *testing.T) {
	c := Config{Type: TypeHTTP}.Normalize()
	for _, addr := range []string{"192.0.2.1", "2001:db8::1", "www.example.com.", "www.example.com", "."} {
		if got, want := string(AppendTargetKey([]byte("junk"), c.Key(), addr)), "junk"+NewTarget("x", c, addr).Key; got != want {
			t.Errorf("%s: %s, want %s", addr, got, want)
		}
	}
}
