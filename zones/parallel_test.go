package zones

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// parallelCases are files laid out to tempt splitFile into a wrong cut: decodeParallel
// must either refuse them or decode them exactly as the sequential decode does.
var parallelCases = map[string]string{
	"plain": `zone: example.com.
ns: [ns1.example.com.]
services:
  a:
    pools: [{endpoints: [192.0.2.1]}]
  b:
    pools: [{endpoints: [192.0.2.2]}]
`,
	"tail, comments and blank lines": `zone: example.com.
services:
  # first
  a:
    pools: [{endpoints: [192.0.2.1]}]

# at column 1, inside the mapping
  b:
    pools: [{endpoints: [192.0.2.2]}]
    # indented
ns: [ns1.example.com.]
`,
	"flow mapping over the cut": `zone: example.com.
ns: [ns1.example.com.]
services:
  a: {pools: [{endpoints: [192.0.2.1]}],
  b: x}
  c:
    pools: [{endpoints: [192.0.2.2]}]
`,
	"quoted string over the cut": `zone: example.com.
ns: [ns1.example.com.]
services:
  a:
    check: "none
  b"
    pools: [{endpoints: [192.0.2.1]}]
  c:
    pools: [{endpoints: [192.0.2.2]}]
`,
	"anchor before, alias after": `zone: example.com.
ns: [ns1.example.com.]
services:
  a:
    pools: &p [{endpoints: [192.0.2.1]}]
  b:
    pools: *p
`,
	"anchor in the head": `zone: example.com.
ns: [ns1.example.com.]
regions: {r: &p {continent: EU}}
services:
  a:
    pools: [{region: r, endpoints: [192.0.2.1]}]
  b:
    pools: [{region: r, endpoints: [192.0.2.2]}]
`,
	"services in a quoted string": `zone: example.com.
ns: [ns1.example.com.]
records: "
services:
  a: x
  b: y"
`,
	"block scalar keeping its breaks": `zone: example.com.
ns: [ns1.example.com.]
checks:
  "w\n\n\n": {type: tcp, port: 1}
services:
  a:
    pools: [{endpoints: [192.0.2.1]}]
    check: |+
      w


  b:
    pools: [{endpoints: [192.0.2.2]}]
`,
	"list under a key at its indent": `zone: example.com.
ns: [ns1.example.com.]
services:
  a:
    pools:
    - endpoints: [192.0.2.1]
  b:
    pools:
    - endpoints: [192.0.2.2]
`,
	"services as a list": `zone: example.com.
ns: [ns1.example.com.]
services:
  - a
  - b
`,
	"services twice": `zone: example.com.
ns: [ns1.example.com.]
services:
  a:
    pools: [{endpoints: [192.0.2.1]}]
  b:
    pools: [{endpoints: [192.0.2.2]}]
services:
  c:
    pools: [{endpoints: [192.0.2.3]}]
`,
	"a key twice across the cut": `zone: example.com.
ns: [ns1.example.com.]
services:
  a:
    pools: [{endpoints: [192.0.2.1]}]
  a:
    pools: [{endpoints: [192.0.2.2]}]
`,
	"one name twice": `zone: example.com.
ns: [ns1.example.com.]
services:
  a:
    pools: [{endpoints: [192.0.2.1]}]
  A:
    pools: [{endpoints: [192.0.2.2]}]
`,
	"a key less indented": `zone: example.com.
ns: [ns1.example.com.]
services:
   a:
    pools: [{endpoints: [192.0.2.1]}]
  b:
    pools: [{endpoints: [192.0.2.2]}]
`,
	"second document": `zone: example.com.
ns: [ns1.example.com.]
services:
  a:
    pools: [{endpoints: [192.0.2.1]}]
  b:
    pools: [{endpoints: [192.0.2.2]}]
---
zone: other.
`,
	"a tag directive": `%TAG !! tag:example.com,2026:
---
zone: example.com.
ns: [ns1.example.com.]
services:
  a:
    check: !!str none
    pools: [{endpoints: [192.0.2.1]}]
  b:
    pools: [{endpoints: [192.0.2.2]}]
`,
	"a tab": "zone: example.com.\nns: [ns1.example.com.]\nservices:\n  a:\n    pools: [{endpoints: [192.0.2.1]}]\n\tb: x\n",
	"CR LF": "zone: example.com.\r\nns: [ns1.example.com.]\r\nservices:\r\n  a:\r\n    pools: [{endpoints: [192.0.2.1]}]\r\n  b:\r\n    pools: [{endpoints: [192.0.2.2]}]\r\n",
	"no final line break": `zone: example.com.
ns: [ns1.example.com.]
services:
  a:
    pools: [{endpoints: [192.0.2.1]}]
  b:
    pools: [{endpoints: [192.0.2.2]}]`,
	"checks and services": `zone: example.com.
ns: [ns1.example.com.]
checks:
  web: {type: http, port: 8080, path: /a}
  # a comment
  db:
    type: tcp
    port: 5432

  tls: {type: https, headers: {X: y}, expect_status: [200, "300-399"]}
services:
  a:
    check: web
    pools: [{endpoints: [192.0.2.1, {address: 192.0.2.3, check: db}]}]
  b:
    check: tls
    pools: [{endpoints: [192.0.2.2]}]
`,
	"checks after services": `zone: example.com.
ns: [ns1.example.com.]
services:
  a:
    check: web
    pools: [{endpoints: [192.0.2.1]}]
  b:
    pools: [{endpoints: [192.0.2.2]}]
checks:
  web: {type: http}
  db: {type: tcp, port: 1}
`,
	"checks cut, services not": `zone: example.com.
ns: [ns1.example.com.]
checks:
  web: {type: http}
  db: {type: tcp, port: 1}
services:
  "a":
    check: db
    pools: [{endpoints: [192.0.2.1]}]
  b:
    pools: [{endpoints: [192.0.2.2]}]
`,
	"a check twice across the cut": `zone: example.com.
ns: [ns1.example.com.]
checks:
  web: {type: http}
  web: {type: tcp, port: 1}
services:
  a:
    pools: [{endpoints: [192.0.2.1]}]
  b:
    pools: [{endpoints: [192.0.2.2]}]
`,
	"a check named none": `zone: example.com.
ns: [ns1.example.com.]
checks:
  web: {type: http}
  none: {type: tcp, port: 1}
services:
  a:
    pools: [{endpoints: [192.0.2.1]}]
  b:
    pools: [{endpoints: [192.0.2.2]}]
`,
	"a bad check": `zone: example.com.
ns: [ns1.example.com.]
checks:
  web: {type: http, interval: 1ms}
  db: {type: tcp, port: 1}
services:
  a:
    check: db
    pools: [{endpoints: [192.0.2.1]}]
  b:
    pools: [{endpoints: [192.0.2.2]}]
`,
	"a check not defined": `zone: example.com.
ns: [ns1.example.com.]
checks:
  web: {type: http}
  db: {type: tcp, port: 1}
services:
  a:
    check: dbx
    pools: [{endpoints: [192.0.2.1]}]
  b:
    pools: [{endpoints: [192.0.2.2]}]
`,
	"a check's anchor in another check": `zone: example.com.
ns: [ns1.example.com.]
checks:
  web: &w {type: http}
  web2: *w
services:
  a:
    check: web2
    pools: [{endpoints: [192.0.2.1]}]
  b:
    pools: [{endpoints: [192.0.2.2]}]
`,
	"checks in a quoted string": `zone: example.com.
ns: [ns1.example.com.]
records: "
checks:
  a: x
  b: y"
services:
  a:
    pools: [{endpoints: [192.0.2.1]}]
  b:
    pools: [{endpoints: [192.0.2.2]}]
`,
	"a quoted string over a check's cut": `zone: example.com.
ns: [ns1.example.com.]
checks:
  web: {type: http, path: "/a
  db: x"}
  db: {type: tcp, port: 1}
services:
  a:
    pools: [{endpoints: [192.0.2.1]}]
  b:
    pools: [{endpoints: [192.0.2.2]}]
`,
	"check per endpoint and checks defined": `zone: example.com.
ns: [ns1.example.com.]
checks:
  web: {type: http, port: 8080}
records: |
  ns1 A 192.0.2.53
  sub NS ns1.example.com.
services:
  a:
    check: web
    pools: [{endpoints: [{address: 192.0.2.1, check: none}, 192.0.2.9]}]
  b.subway:
    pools: [{endpoints: [192.0.2.2]}]
`,
}

// decodeBoth decodes data sequentially and, cutting at every key, in parallel. The parallel
// decode may refuse (nil); when it does not, the file must be valid and decode to the same
// policy file. It reports whether the parallel decode took the file.
func decodeBoth(t *testing.T, name string, data []byte) bool {
	t.Helper()
	seq, err := decodeSequential("p.yaml", data)
	par := decodeParallel("p.yaml", data, 1)
	if par == nil {
		return false
	}
	if err != nil {
		t.Fatalf("%s: decoded in parallel, but the sequential decode says: %v", name, err)
	}
	if !reflect.DeepEqual(seq, par) {
		t.Fatalf("%s: parallel decode differs:\n%+v\n%+v", name, seq, par)
	}
	return true
}

// TestDecodeParallel holds decodeParallel to the results of the sequential decode on every
// file the tests know, and on the files above.
func TestDecodeParallel(t *testing.T) {
	taken := map[string]bool{}
	for name, text := range parallelCases {
		taken[name] = decodeBoth(t, name, []byte(text))
	}
	for _, name := range []string{"plain", "tail, comments and blank lines", "anchor in the head",
		"block scalar keeping its breaks", "list under a key at its indent", "no final line break",
		"check per endpoint and checks defined", "checks and services", "checks after services", "checks cut, services not"} {
		if !taken[name] {
			t.Errorf("%s: not decoded in parallel", name)
		}
	}
	for name, keys := range map[string][]string{"checks and services": {"checks", "services"},
		"checks after services": {"services", "checks"}, "checks cut, services not": {"checks"}} {
		var got []string
		if sp := splitFile([]byte(parallelCases[name]), 1); sp != nil {
			for _, c := range sp.cuts {
				got = append(got, c.key)
			}
		}
		if !reflect.DeepEqual(got, keys) {
			t.Errorf("%s: cut %v, want %v", name, got, keys)
		}
	}
	for _, name := range []string{"a check twice across the cut", "a check named none", "a bad check", "a check not defined"} {
		if taken[name] {
			t.Errorf("%s: a broken file decoded in parallel", name)
		}
	}
	for _, c := range brokenCases {
		if decodeBoth(t, c.name, []byte(c.yaml)) {
			t.Errorf("%s: a broken file decoded in parallel", c.name)
		}
	}
	files, _ := filepath.Glob("testdata/*.yaml")
	fuzz, _ := filepath.Glob("testdata/fuzz/FuzzDecode/*")
	for _, f := range append(files, fuzz...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if s, ok := strings.CutPrefix(string(b), "go test fuzz v1\n[]byte("); ok {
			u, err := strconv.Unquote(strings.TrimSuffix(strings.TrimSpace(s), ")"))
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			b = []byte(u)
		}
		decodeBoth(t, f, b)
	}
	if !decodeBoth(t, "bigPolicy", bigPolicy(300, 5)) {
		t.Error("bigPolicy: not decoded in parallel")
	}
}

// TestCompileParallel compiles a zone large enough to be built on every core (and, under
// -race, checked for races) and holds it to what building the services one by one gives:
// every service and endpoint in place, the placeholders in the tree, and z.Targets in the
// order the endpoints first name them.
func TestCompileParallel(t *testing.T) {
	data := bigPolicy(3000, 4)
	pf, err := Decode("big.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	z := Compile(pf, "hash", 1)
	if len(z.Services) != len(pf.Services) {
		t.Fatalf("%d services compiled from %d", len(z.Services), len(pf.Services))
	}
	var keys []string
	seen := map[string]bool{}
	for _, s := range pf.Services {
		cs := z.Services[s.Name]
		if cs == nil || cs.Name != s.Name || cs.Key != s.Key || cs.ServiceSpec.Pools != nil || len(cs.Pools) != len(s.Pools) {
			t.Fatalf("service %s: %+v", s.Name, cs)
		}
		if e, _ := z.Static.Search(s.Name); e == nil || len(e.Type(placeholderType)) != 1 {
			t.Fatalf("service %s: no placeholder in the tree", s.Name)
		}
		for i, ps := range s.Pools {
			for j, es := range ps.Endpoints {
				ep := cs.Pools[i].Endpoints[j]
				if ep.Address != es.Address || ep.RR == nil || cs.Pools[i].Record(j, Degraded) == nil || (ep.Target == NoTarget) != (es.Check == CheckNone) {
					t.Fatalf("service %s: endpoint %+v from %+v", s.Name, ep, es)
				}
				if ep.Target != NoTarget && !seen[z.Targets[ep.Target].Key] {
					seen[z.Targets[ep.Target].Key] = true
					keys = append(keys, z.Targets[ep.Target].Key)
				}
			}
		}
	}
	if len(z.Targets) != len(keys) {
		t.Fatalf("%d targets, want %d", len(z.Targets), len(keys))
	}
	for i, tg := range z.Targets {
		if tg.Key != keys[i] {
			t.Fatalf("target %d is %s, want %s", i, tg.Key, keys[i])
		}
	}
}
