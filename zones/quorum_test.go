package zones

import (
	"errors"
	"fmt"
	"testing"

	"github.com/steerdns/steerdns/healthcheck"
)

// quorumFile is a policy file with one check whose quorum is q, written as YAML.
func quorumFile(q string) []byte {
	return fmt.Appendf(nil, `zone: example.com.
ns: [ns1.example.com.]
checks:
  web:
    type: http
    quorum: %s
services:
  www:
    check: web
    pools:
      - endpoints: [192.0.2.10]
`, q)
}

func TestDecodeQuorum(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want int
	}{
		{"any", 1},
		{"majority", healthcheck.QuorumMajority},
		{"all", healthcheck.QuorumAll},
		{`"all"`, healthcheck.QuorumAll},
		{"2", 2},
		{`"3"`, 3},
		{"1000", 1000},
	} {
		pf, err := Decode("q.yaml", quorumFile(tc.yaml))
		if err != nil {
			t.Errorf("quorum: %s: %v", tc.yaml, err)
			continue
		}
		if got := pf.Checks["web"].Quorum; got != tc.want {
			t.Errorf("quorum: %s = %d, want %d", tc.yaml, got, tc.want)
		}
	}

	// Not set: 0, the cluster's default.
	pf, err := Decode("q.yaml", []byte("zone: example.com.\nns: [ns1.example.com.]\nchecks:\n  web: {type: http}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if q := pf.Checks["web"].Quorum; q != 0 {
		t.Errorf("quorum not set = %d, want 0", q)
	}
}

func TestDecodeQuorumInvalid(t *testing.T) {
	const choices = "must be any, majority, all or a number of nodes from 1 to 1000, not "
	for _, tc := range []struct{ yaml, want string }{
		{"most", `q.yaml:6: checks.web.quorum: ` + choices + `"most"`},
		{"0", `q.yaml:6: checks.web.quorum: ` + choices + `the number 0`},
		{"-1", `q.yaml:6: checks.web.quorum: ` + choices + `the number -1`},
		{"1001", `q.yaml:6: checks.web.quorum: ` + choices + `the number 1001`},
		{`"0"`, `q.yaml:6: checks.web.quorum: ` + choices + `"0"`},
		{"1.5", `q.yaml:6: checks.web.quorum: ` + choices + `the number 1.5`},
		{"[2]", `q.yaml:6: checks.web.quorum: ` + choices + `a list`},
		{"true", `q.yaml:6: checks.web.quorum: ` + choices + `the boolean true`},
		{"", `q.yaml:6: checks.web.quorum: ` + choices + `empty`},
	} {
		_, err := Decode("q.yaml", quorumFile(tc.yaml))
		var es Errors
		if !errors.As(err, &es) || len(es) != 1 || es[0].Error() != tc.want {
			t.Errorf("quorum: %s: error %v, want %s", tc.yaml, err, tc.want)
			continue
		}
		if e := es[0]; e.File != "q.yaml" || e.Line != 6 || e.Path != "checks.web.quorum" {
			t.Errorf("quorum: %s: error at %s:%d %s", tc.yaml, e.File, e.Line, e.Path)
		}
	}
}

// Checks that differ only in their quorum probe alike: their targets share a key, so that files
// (and nodes) that set different quorums still observe one target.
func TestQuorumNotInKey(t *testing.T) {
	pf, err := Decode("q.yaml", []byte(`zone: example.com.
ns: [ns1.example.com.]
checks:
  a: {type: http, quorum: all}
  b: {type: http, quorum: 2}
  c: {type: http}
`))
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := pf.Checks["a"], pf.Checks["b"], pf.Checks["c"]
	if a.Key() != b.Key() || a.Key() != c.Key() {
		t.Errorf("keys differ by quorum:\n%s\n%s\n%s", a.Key(), b.Key(), c.Key())
	}
	if a.Quorum != healthcheck.QuorumAll || b.Quorum != 2 || c.Quorum != 0 {
		t.Errorf("quorums %d %d %d", a.Quorum, b.Quorum, c.Quorum)
	}
}
