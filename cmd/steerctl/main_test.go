package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/steerdns/steerdns/plugin/steer/admin"
)

// steerctl runs the command line and returns its exit code, stdout and stderr.
func steerctl(args ...string) (int, string, string) {
	var out, errw bytes.Buffer
	code := run(args, &out, &errw)
	return code, out.String(), errw.String()
}

const validZone = `zone: example.com.
ns: [ns1.example.com.]
records: |
  ns1   A   192.0.2.53
  mail  A   192.0.2.25
checks:
  web: {type: http}
services:
  www:
    check: web
    pools:
      - endpoints: [192.0.2.10]
  api:
    pools:
      - endpoints: [192.0.2.11]
`

const brokenZone = `zone: example.org.
ns: [ns1.example.org.]
services:
  www:
    check: web
    pools:
      - endpoints: [192.0.2.300]
`

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCheckValid(t *testing.T) {
	dir := writeFiles(t, map[string]string{"a.yaml": validZone})
	a := filepath.Join(dir, "a.yaml")
	code, out, errs := steerctl("check", a)
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	if want := a + ": ok (zone example.com., 2 services, 2 static records)\n"; out != want {
		t.Errorf("stdout %q, want %q", out, want)
	}
}

func TestCheckBroken(t *testing.T) {
	dir := writeFiles(t, map[string]string{"a.yaml": validZone, "b.yaml": brokenZone})
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	code, out, errs := steerctl("check", a, b)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if out != a+": ok (zone example.com., 2 services, 2 static records)\n" {
		t.Errorf("stdout %q", out)
	}
	want := b + `:7: services.www.pools[0].endpoints[0]: "192.0.2.300" is neither an IP address nor a fully qualified name (a name ends in a dot)` + "\n"
	if errs != want {
		t.Errorf("stderr\n%s\nwant\n%s", errs, want)
	}

	// After the decode errors are fixed, validation finds the undefined check.
	fixed := strings.Replace(brokenZone, "192.0.2.300", "192.0.2.30", 1)
	if err := os.WriteFile(b, []byte(fixed), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs = steerctl("check", b)
	if want := b + `:5: services.www.check: check "web" is not defined (defined: none)` + "\n"; code != 1 || errs != want {
		t.Errorf("exit %d stderr %q, want %q", code, errs, want)
	}
}

func TestCheckFolder(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"a.yaml": validZone, "b.yml": strings.ReplaceAll(validZone, "example.com.", "example.net."),
		".hidden.yaml": "not: [valid", "a.yaml~": "x", "#a.yaml#": "x", "notes.txt": "x", "sub/c.yaml": "x",
	})
	code, out, errs := steerctl("check", dir)
	if code != 0 || errs != "" {
		t.Fatalf("exit %d stderr %q", code, errs)
	}
	want := filepath.Join(dir, "a.yaml") + ": ok (zone example.com., 2 services, 2 static records)\n" +
		filepath.Join(dir, "b.yml") + ": ok (zone example.net., 2 services, 2 static records)\n"
	if out != want {
		t.Errorf("stdout\n%s\nwant\n%s", out, want)
	}

	// A file named again, on its own, is checked once.
	code, out, _ = steerctl("check", dir, filepath.Join(dir, "a.yaml"))
	if code != 0 || strings.Count(out, "\n") != 2 {
		t.Errorf("exit %d stdout %q", code, out)
	}
}

func TestCheckEmptyFolderAndMissing(t *testing.T) {
	dir := writeFiles(t, map[string]string{"notes.txt": "x"})
	code, out, errs := steerctl("check", dir, filepath.Join(dir, "nope.yaml"))
	want := dir + ": no policy files (*.yaml, *.yml) in this folder\n" + filepath.Join(dir, "nope.yaml") + ": no such file or folder\n"
	if code != 1 || out != "" || errs != want {
		t.Errorf("exit %d stdout %q stderr\n%s\nwant\n%s", code, out, errs, want)
	}
}

func TestCheckSameZone(t *testing.T) {
	dir := writeFiles(t, map[string]string{"a.yaml": validZone, "b.yaml": "# the same zone\n" + validZone})
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	code, out, errs := steerctl("check", dir)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if !strings.HasPrefix(out, a+": ok") || strings.Contains(out, b) {
		t.Errorf("stdout %q", out)
	}
	if want := b + ":2: zone: zone example.com. is also in " + a + "; a zone is served from one file only\n"; errs != want {
		t.Errorf("stderr %q, want %q", errs, want)
	}
	// The first named keeps it.
	_, _, errs = steerctl("check", b, a)
	if !strings.HasPrefix(errs, a+":1: zone: zone example.com. is also in "+b) {
		t.Errorf("stderr %q", errs)
	}
}

func TestCheckJSON(t *testing.T) {
	dir := writeFiles(t, map[string]string{"a.yaml": validZone, "b.yaml": brokenZone})
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	for _, args := range [][]string{
		{"check", "--format", "json", dir},
		{"check", "-format=json", dir},
		{"check", dir, "--format=json"}, // options after the arguments
	} {
		code, out, errs := steerctl(args...)
		if code != 1 || errs != "" {
			t.Errorf("%q: exit %d stderr %q", args, code, errs)
		}
		var got []struct {
			File   string `json:"file"`
			Zone   string `json:"zone"`
			OK     bool   `json:"ok"`
			Errors []struct {
				File    string `json:"file"`
				Line    int    `json:"line"`
				Path    string `json:"path"`
				Message string `json:"message"`
			} `json:"errors"`
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%q: %v\n%s", args, err, out)
		}
		if len(got) != 2 || got[0].File != a || got[0].Zone != "example.com." || !got[0].OK || len(got[0].Errors) != 0 ||
			got[1].File != b || got[1].OK || got[1].Zone != "" || len(got[1].Errors) != 1 {
			t.Fatalf("%q: %+v", args, got)
		}
		e := got[1].Errors[0]
		if e.File != b || e.Line != 7 || e.Path != "services.www.pools[0].endpoints[0]" ||
			e.Message != `"192.0.2.300" is neither an IP address nor a fully qualified name (a name ends in a dot)` {
			t.Errorf("%q: error %+v", args, e)
		}
		// An ok file has "errors": [], not null.
		if !strings.Contains(out, `"errors": []`) {
			t.Errorf("%q: %s", args, out)
		}
	}

	// All valid: exit 0.
	code, out, _ := steerctl("check", "--format", "json", a)
	if code != 0 || !strings.Contains(out, `"ok": true`) {
		t.Errorf("exit %d: %s", code, out)
	}
}

// TestCheckBrokenTestdata: each file of zones/testdata/broken fails, with its errors on stderr,
// one a line, each naming the file and its line.
func TestCheckBrokenTestdata(t *testing.T) {
	files, _ := filepath.Glob("../../zones/testdata/broken/*.yaml")
	if len(files) < 30 {
		t.Fatalf("%d broken files", len(files))
	}
	for _, f := range files {
		code, out, errs := steerctl("check", f)
		if code != 1 || out != "" || errs == "" {
			t.Errorf("%s: exit %d stdout %q stderr %q", f, code, out, errs)
			continue
		}
		for _, line := range strings.Split(strings.TrimSuffix(errs, "\n"), "\n") {
			if !strings.HasPrefix(line, f+":") {
				t.Errorf("%s: line %q", f, line)
			}
		}
	}
	code, _, _ := steerctl("check", "../../zones/testdata/broken")
	if code != 1 {
		t.Errorf("the broken folder: exit %d", code)
	}
	code, out, errs := steerctl("check", "../../zones/testdata/example.com.yaml", "../steerdns/example/example.test.yaml")
	if code != 0 || errs != "" {
		t.Errorf("the examples: exit %d stderr %q", code, errs)
	}
	if !strings.Contains(out, "example.com.yaml: ok (zone example.com., 2 services, 4 static records)") {
		t.Errorf("stdout %q", out)
	}
}

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string // substring
		stderr string // substring
	}{
		{nil, 2, "", "Usage:\n  steerctl COMMAND"},
		{[]string{"--help"}, 0, "Commands:\n  check", ""},
		{[]string{"-h"}, 0, "admin API", ""},
		{[]string{"help"}, 0, "Exit status", ""},
		{[]string{"help", "check"}, 0, "Usage: steerctl check [--format text|json] FILE|DIR...", ""},
		{[]string{"help", "drain"}, 0, "POST /v1/overrides", ""},
		{[]string{"help", "nope"}, 2, "", `unknown command "nope"`},
		{[]string{"help", "check", "status"}, 2, "", "one command at most"},
		{[]string{"nope"}, 2, "", `steerctl: unknown command "nope"`},
		{[]string{"--format", "json"}, 2, "", "unknown option --format before the command"},
		{[]string{"check"}, 2, "", "name at least one policy file or folder"},
		{[]string{"check", "--help"}, 0, "Usage: steerctl check", ""},
		{[]string{"check", "-h"}, 0, "--format json", ""},
		{[]string{"check", "--format", "xml", "a.yaml"}, 2, "", `--format is text or json, not "xml"`},
		{[]string{"check", "--nope", "a.yaml"}, 2, "", "flag provided but not defined: -nope"},
		{[]string{"check", "--format"}, 2, "", "flag needs an argument"},
		{[]string{"status", "zone"}, 2, "", `no arguments, only options ("zone" is one too many)`},
		{[]string{"status", "--state", "sick"}, 2, "", `--state is one of up, down, unknown, drained, forced-up, restored, not "sick"`},
		{[]string{"status", "--admin", "ftp://x"}, 2, "", `the admin URL "ftp://x" is not http://HOST:PORT`},
		{[]string{"explain"}, 2, "", "name the query: NAME [TYPE]"},
		{[]string{"explain", "a.", "A", "x"}, 2, "", `NAME [TYPE] at most ("x" is one too many)`},
		{[]string{"history", "--since", "yesterday"}, 2, "", `--since "yesterday" is neither a duration`},
		{[]string{"drain"}, 2, "", "name the TARGET"},
		{[]string{"drain", "example.com.", "www"}, 2, "", `one TARGET at a time ("www" is one too many)`},
		{[]string{"drain", "www"}, 2, "", `target "www" is not endpoint:ADDR, pool:ZONE/SERVICE/REGION, region:NAME or an IP address`},
		{[]string{"drain", "pool:example.com/www"}, 2, "", `pool target "pool:example.com/www" is not pool:ZONE/SERVICE/REGION`},
		{[]string{"drain", "region:eu-west", "--ttl", "soon"}, 2, "", `--ttl "soon" is not a positive duration`},
		{[]string{"force-up", "region:eu-west", "--ttl", "-5m"}, 2, "", `--ttl "-5m" is not a positive duration`},
		{[]string{"drain", "region:eu-west", "--token-file", "/nonexistent/token"}, 2, "", "--token-file: /nonexistent/token: no such file or folder"},
		{[]string{"undrain"}, 2, "", "name an override ID, or a TARGET"},
		{[]string{"undrain", "pool:x"}, 2, "", `pool target "pool:x" is not pool:ZONE/SERVICE/REGION`},
		{[]string{"probe"}, 2, "", "name at least one policy file or folder"},
		{[]string{"probe", "--source", "nope", "x.yaml"}, 2, "", `steerctl: probe: --source "nope" is not an IP address`},
		{[]string{"probe", "--source", "203.0.113.77", "x.yaml"}, 2, "", "steerctl: probe: --source 203.0.113.77: listen tcp 203.0.113.77:0: bind: cannot assign requested address"},
		{[]string{"explain", "--help"}, 0, "Usage: steerctl explain [--client ADDR|PREFIX]", ""},
		{[]string{"force-up", "-h"}, 0, "$USER@hostname", ""},
		{[]string{"probe", "--help"}, 0, "Usage: steerctl probe [--service NAME] [--source ADDR] [--json] FILE|DIR...", ""},
		{[]string{"help", "history"}, 0, "--since DURATION", ""},
		{[]string{"overrides", "--help"}, 0, "STEER_ADMIN", ""},
		{[]string{"status", "--help"}, 0, "Usage: steerctl status", ""},
		{[]string{"undrain", "-h"}, 0, "DELETE /v1/overrides", ""},
	} {
		code, out, errs := steerctl(tc.args...)
		if code != tc.code || !strings.Contains(out, tc.stdout) || !strings.Contains(errs, tc.stderr) {
			t.Errorf("steerctl %q: exit %d (want %d)\nstdout %q (want %q)\nstderr %q (want %q)", tc.args, code, tc.code, out, tc.stdout, errs, tc.stderr)
		}
		if tc.code == 2 && out != "" {
			t.Errorf("steerctl %q: a usage error prints on stdout: %q", tc.args, out)
		}
	}
}

// TestCheckDashDash: after "--", an argument that looks like an option is a file.
func TestCheckDashDash(t *testing.T) {
	dir := writeFiles(t, map[string]string{"-x.yaml": validZone})
	t.Chdir(dir)
	code, out, errs := steerctl("check", "--", "-x.yaml")
	if code != 0 || out != "-x.yaml: ok (zone example.com., 2 services, 2 static records)\n" {
		t.Errorf("exit %d stdout %q stderr %q", code, out, errs)
	}
}

func TestHelpListsEveryCommand(t *testing.T) {
	_, out, _ := steerctl("help")
	for _, c := range commands() {
		if !strings.Contains(out, fmt.Sprintf("\n  %-10s ", c.name)) {
			t.Errorf("help does not list %s:\n%s", c.name, out)
		}
		if !strings.HasPrefix(c.help, "Usage: steerctl "+c.name) {
			t.Errorf("help of %s does not start with its usage", c.name)
		}
	}
}

// fakeBackend is the plugin as the admin API sees it, with fixed contents; it records what it
// was asked.
type fakeBackend struct {
	mu        sync.Mutex
	status    admin.Status
	filter    admin.Filter
	history   []admin.Transition
	since     time.Time
	endpoint  string
	explained []string // name, type, client of the last explain
	overrides []admin.Override
	requests  []admin.OverrideRequest
	next      int
}

var _ admin.Backend = (*fakeBackend)(nil)

// knownTargets are the targets the fake serves.
var knownTargets = []string{"endpoint:192.0.2.10", "endpoint:192.0.2.11", "pool:example.com./www/us-east", "region:eu-west", "region:us-east"}

func (b *fakeBackend) Status(f admin.Filter) *admin.Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.filter = f
	st := b.status
	return &st
}

func (b *fakeBackend) Explain(_ context.Context, name, qtype, client string) (any, error) {
	b.mu.Lock()
	b.explained = []string{name, qtype, client}
	b.mu.Unlock()
	switch name {
	case "nope.example.org":
		return nil, &admin.NotFound{Msg: "nope.example.org is in no zone served here", Known: []string{"example.com."}}
	case "boom.example.com":
		return nil, errors.New("the view is gone")
	}
	scope, ttl := 24, uint32(30)
	return map[string]any{
		"name": name + ".", "type": qtype, "zone": "example.com.", "rcode": "NOERROR",
		"client":   map[string]any{"prefix": client, "from": "ecs", "country": "US", "continent": "NA"},
		"services": []map[string]any{{"name": name + ".", "policy": "failover", "chosen": "us-east", "outcome": "primary", "pools": []any{}}},
		"scope":    scope, "ttl": ttl,
		"answer": []string{name + ".\t30\tIN\tAAAA\t2001:db8::10"},
		"steps":  []string{"client " + client + " is in region us-east (networks)", "  pool us-east: healthy (1 of 1 up, min 1)", "  chose us-east"},
	}, nil
}

func (b *fakeBackend) History(since time.Time, endpoint string) []admin.Transition {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.since, b.endpoint = since, endpoint
	return b.history
}

func (b *fakeBackend) Overrides() []admin.Override {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.overrides)
}

func (b *fakeBackend) AddOverride(r admin.OverrideRequest) (admin.Override, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.requests = append(b.requests, r)
	target := strings.Replace(r.Target, "pool:example.com/", "pool:example.com./", 1)
	if !slices.Contains(knownTargets, target) {
		return admin.Override{}, &admin.NotFound{Msg: fmt.Sprintf("%s is not served", r.Target), Known: knownTargets}
	}
	b.next++
	o := admin.Override{ID: fmt.Sprintf("ov%d", b.next), Target: target, Action: r.Action, Created: time.Now().UTC(), Reason: r.Reason, By: r.By}
	if r.TTL != "" {
		d, _ := time.ParseDuration(r.TTL)
		e := o.Created.Add(d)
		o.Expires = &e
	}
	b.overrides = append([]admin.Override{o}, b.overrides...)
	return o, nil
}

func (b *fakeBackend) DeleteOverride(id string) (admin.Override, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	i := slices.IndexFunc(b.overrides, func(o admin.Override) bool { return o.ID == id })
	if i < 0 {
		var known []string
		for _, o := range b.overrides {
			known = append(known, o.ID)
		}
		return admin.Override{}, &admin.NotFound{Msg: fmt.Sprintf("no override %s", id), Known: known}
	}
	o := b.overrides[i]
	b.overrides = slices.Delete(b.overrides, i, i+1)
	return o, nil
}

const testToken = "s3cret-token"

// adminServer starts the real admin API with the token, on the fake backend, and clears the
// environment's defaults so that only the options count. It returns the options that reach it.
func adminServer(t *testing.T) (*fakeBackend, []string) {
	t.Helper()
	t.Setenv("STEER_ADMIN", "")
	t.Setenv("STEER_TOKEN", "")
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	since := now.Add(-4*time.Minute - 12*time.Second)
	lat, slow := 1.25, 2100.0
	b := &fakeBackend{
		status: admin.Status{
			Node: "ns1", Time: now, Version: 42, Ready: true,
			Counts: map[string]int{"up": 1, "down": 1, "drained": 1},
			Zones: []admin.Zone{{Origin: "example.com.", File: "zones/example.com.yaml", Serial: 7, Services: []admin.Service{{
				Name: "www", Policy: "failover", Pools: []admin.Pool{
					{Region: "us-east", Healthy: true, MinHealthy: 1, Endpoints: []admin.Endpoint{
						{Address: "192.0.2.10", Check: "web", State: "up", Source: "probe", Since: &since, LastResult: "ok", LatencyMs: &lat},
						{Address: "192.0.2.11", Check: "web", State: "drained", Source: "override", Override: "ov9", Since: &since},
					}},
					{Region: "", Healthy: false, MinHealthy: 1, Endpoints: []admin.Endpoint{
						{Address: "198.51.100.10", Check: "web", State: "down", Source: "restored", Reason: "timeout", Error: "no answer\twithin 2s", LatencyMs: &slow},
					}},
				}}}}},
			Overrides: []admin.Override{{ID: "ov9", Target: "endpoint:192.0.2.11", Action: "drain", Created: since, By: "alice@ops", Reason: "disk failing"}},
			Files:     []admin.PolicyFile{{Path: "zones/example.com.yaml", Zone: "example.com."}, {Path: "zones/bad.yaml", Error: "bad.yaml:3: zone: required"}},
			StateDir:  &admin.StateDir{Path: "/var/lib/steerdns", LastError: "no space left on device"},
		},
		history: []admin.Transition{
			{Time: since, Endpoint: "198.51.100.10", Check: "web", From: "up", To: "down", Reason: "timeout", Node: "ns1", LatencyMs: &slow},
		},
	}
	srv := httptest.NewServer(admin.NewHandler(b, admin.Options{Token: testToken}))
	t.Cleanup(srv.Close)
	return b, []string{"--admin", srv.URL}
}

// tokenFile writes token to a file and returns the option that names it.
func tokenFile(t *testing.T, token string) []string {
	f := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(f, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"--token-file", f}
}

func TestAdminCommands(t *testing.T) {
	b, at := adminServer(t)
	tok := tokenFile(t, testToken)
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout []string // substrings, in order
		stderr []string
	}{
		{"status table", []string{"status"}, 0, []string{
			"node ns1, ready, view 42, at 2026-03-01T12:00:00Z\n",
			"endpoints: 1 up, 1 down, 1 drained\n",
			"zone example.com. (zones/example.com.yaml, serial 7)\n",
			"SERVICE  POLICY    POOL                  ENDPOINT       CHECK  STATE    SOURCE        SINCE  REASON   LATENCY  ERROR\n",
			"www      failover  us-east               192.0.2.10     web    up       probe         4m12s  -        1.2ms    -\n",
			"www      failover  us-east               192.0.2.11     web    drained  override ov9  4m12s  -        -        -\n",
			"www      failover  pools[1] (unhealthy)  198.51.100.10  web    down     restored      -      timeout  2.10s    no answer within 2s\n",
			"overrides:\n", "ov9", "drain", "endpoint:192.0.2.11", "never", "alice@ops", "disk failing",
			"policy file zones/bad.yaml: not loaded: bad.yaml:3: zone: required\n",
			"state_dir /var/lib/steerdns: last error: no space left on device\n",
		}, nil},
		{"explain", []string{"explain", "www.example.com", "aaaa", "--client", "192.0.2.0/24"}, 0, []string{
			"www.example.com. AAAA: NOERROR (zone example.com.)\n",
			"client: 192.0.2.0/24 (ECS), country US, continent NA\n",
			"steps:\n  client 192.0.2.0/24 is in region us-east (networks)\n    pool us-east: healthy (1 of 1 up, min 1)\n    chose us-east\n",
			"answer (TTL 30, ECS scope /24, www.example.com.: primary):\n  www.example.com.\t30\tIN\tAAAA\t2001:db8::10\n",
		}, nil},
		{"explain 404", []string{"explain", "nope.example.org"}, 1, nil, []string{"steerctl: explain: nope.example.org is in no zone served here\nknown: example.com.\n"}},
		{"explain 500", []string{"explain", "boom.example.com"}, 2, nil, []string{"steerctl: explain: the view is gone\n"}},
		{"history", []string{"history", "--since", "1h", "--endpoint", "198.51.100.10"}, 0, []string{
			"TIME                  ENDPOINT       CHECK  FROM  TO    REASON   NODE  LATENCY\n",
			"2026-03-01T11:55:48Z  198.51.100.10  web    up    down  timeout  ns1   2.10s\n",
		}, nil},
		{"overrides", []string{"overrides"}, 0, []string{"no active overrides\n"}, nil},
		{"drain without a token", []string{"drain", "region:eu-west"}, 2, nil, []string{
			"steerctl: drain: this call needs Authorization: Bearer TOKEN", "No token was given: use --token-file FILE or set STEER_TOKEN.\n"}},
		{"drain with a wrong token", append([]string{"drain", "region:eu-west"}, tokenFile(t, "guess")...), 2, nil, []string{
			"steerctl: drain: this call needs Authorization: Bearer TOKEN", "The token given was refused"}},
		{"drain what does not exist", append([]string{"drain", "region:mars"}, tok...), 1, nil, []string{
			"steerctl: drain: region:mars is not served\nknown: endpoint:192.0.2.10, endpoint:192.0.2.11, pool:example.com./www/us-east, region:eu-west, region:us-east\n"}},
		{"undrain an unknown ID", append([]string{"undrain", "ov404"}, tok...), 1, nil, []string{"steerctl: undrain: no override ov404\n"}},
		{"undrain a target without overrides", append([]string{"undrain", "region:us-east"}, tok...), 1, nil, []string{"steerctl: undrain: no active override of region:us-east\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := steerctl(append(tc.args, at...)...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout %s\nstderr %s", code, tc.code, out, errs)
			}
			inOrder(t, "stdout", out, tc.stdout)
			inOrder(t, "stderr", errs, tc.stderr)
			if tc.stderr == nil && errs != "" {
				t.Errorf("stderr %q", errs)
			}
		})
	}

	// What the server was asked.
	if got := b.explained; !slices.Equal(got, []string{"boom.example.com", "A", ""}) {
		t.Errorf("last explain %q", got)
	}
	if b.endpoint != "198.51.100.10" || time.Since(b.since) < 59*time.Minute || time.Since(b.since) > 61*time.Minute {
		t.Errorf("history asked since %v endpoint %q", b.since, b.endpoint)
	}
	if len(b.requests) != 1 { // the refused ones never reached the backend
		t.Errorf("override requests %+v", b.requests)
	}
}

// inOrder checks that each of want is in s, after the one before.
func inOrder(t *testing.T, what, s string, want []string) {
	t.Helper()
	rest := s
	for _, w := range want {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Errorf("%s does not have %q (after the previous ones):\n%s", what, w, s)
			return
		}
		rest = rest[i+len(w):]
	}
}

func TestStatusFilterAndJSON(t *testing.T) {
	b, at := adminServer(t)
	code, out, errs := steerctl(append([]string{"status", "--zone", "example.com", "--service", "www", "--state", "down", "--json"}, at...)...)
	if code != 0 || errs != "" {
		t.Fatalf("exit %d stderr %q", code, errs)
	}
	if want := (admin.Filter{Zone: "example.com.", Service: "www", State: "down"}); b.filter != want {
		t.Errorf("filter %+v, want %+v", b.filter, want)
	}
	var st admin.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if st.Node != "ns1" || len(st.Zones) != 1 || len(st.Zones[0].Services[0].Pools) != 2 || st.StateDir.LastError == "" {
		t.Errorf("%+v", st)
	}

	// Nothing matches: said so.
	b.status.Zones = nil
	code, out, _ = steerctl(append([]string{"status", "--state", "forced-up"}, at...)...)
	if code != 0 || !strings.Contains(out, "\nno endpoints match\n") {
		t.Errorf("exit %d stdout %s", code, out)
	}
}

func TestStatusCluster(t *testing.T) {
	b, at := adminServer(t)
	now := b.status.Time
	heard2, heard3 := now.Add(-800*time.Millisecond), now.Add(-2*time.Minute-5*time.Second)
	b.status.Cluster = &admin.Cluster{Mode: "cluster", Alive: 2, Known: 3, Differ: []string{"ns2"}, Members: []admin.Member{
		{Name: "ns1", Address: "10.0.1.10:7946", State: "alive", Self: true, FilesHash: "9f86d081884c7d65", Targets: 3},
		{Name: "ns2", Address: "10.0.2.10:7946", State: "alive", FilesHash: "60303ae22b998861", Differs: true, Heard: &heard2, Targets: 3},
		{Name: "ns3", Address: "10.0.3.10:7946", State: "dead", FilesHash: "9f86d081884c7d65", Heard: &heard3, Targets: 2},
	}}
	eps := b.status.Zones[0].Services[0].Pools[0].Endpoints
	eps[0].Quorum = "0 of 2 down, 2 needed"
	eps[0].Nodes = []admin.NodeObservation{{Node: "ns1", State: "up", Fresh: true}, {Node: "ns2", State: "up", Fresh: true}, {Node: "ns3", State: "up"}}
	down := b.status.Zones[0].Services[0].Pools[1].Endpoints
	down[0].Source, down[0].Quorum = "cluster", "2 of 2 down, 2 needed"
	down[0].Nodes = []admin.NodeObservation{{Node: "ns1", State: "down", Fresh: true}, {Node: "ns2", State: "down", Fresh: true}, {Node: "ns3", State: "down"}}

	code, out, errs := steerctl(append([]string{"status"}, at...)...)
	if code != 0 || errs != "" {
		t.Fatalf("exit %d stderr %q", code, errs)
	}
	inOrder(t, "stdout", out, []string{
		"endpoints: 1 up, 1 down, 1 drained\n",
		"\ncluster: mode cluster, sees 2 of 3 members\n",
		"MEMBER      ADDRESS         STATE  FILES                       HEARD      TARGETS\n",
		"ns1 (self)  10.0.1.10:7946  alive  9f86d081884c7d65            -          3\n",
		"ns2         10.0.2.10:7946  alive  60303ae22b998861 (differs)  0s ago     3\n",
		"ns3         10.0.3.10:7946  dead   9f86d081884c7d65            2m05s ago  2\n",
		"policy files differ from this node's on: ns2\n",
		"zone example.com.",
		"SOURCE        SINCE  REASON   LATENCY  QUORUM                 NODES                              ERROR\n",
		"192.0.2.10     web    up       probe         4m12s  -        1.2ms    0 of 2 down, 2 needed  ns1:up ns2:up ns3:up(stale)        -\n",
		"192.0.2.11     web    drained  override ov9  4m12s  -        -        -                      -                                  -\n",
		"198.51.100.10  web    down     cluster       -      timeout  2.10s    2 of 2 down, 2 needed  ns1:down ns2:down ns3:down(stale)  no answer within 2s\n",
		"overrides:\n",
	})

	// Cut off: said so.
	b.status.Cluster.Mode, b.status.Cluster.Alive = "local", 1
	_, out, _ = steerctl(append([]string{"status"}, at...)...)
	inOrder(t, "stdout", out, []string{"\ncluster: mode local, sees 1 of 3 members: fewer than half, so it serves from its own probes\n"})

	// --json is the API's answer, cluster included.
	_, out, _ = steerctl(append([]string{"status", "--json"}, at...)...)
	var st admin.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Cluster == nil || len(st.Cluster.Members) != 3 || st.Zones[0].Services[0].Pools[1].Endpoints[0].Quorum == "" {
		t.Errorf("%v %+v", err, st.Cluster)
	}

	// Alone: nothing about a cluster.
	b.status.Cluster = nil
	for _, e := range []*admin.Endpoint{&eps[0], &down[0]} {
		e.Quorum, e.Nodes = "", nil
	}
	_, out, _ = steerctl(append([]string{"status"}, at...)...)
	for _, no := range []string{"cluster:", "MEMBER", "QUORUM", "NODES", "differ"} {
		if strings.Contains(out, no) {
			t.Errorf("alone, the status has %q:\n%s", no, out)
		}
	}
	inOrder(t, "stdout", out, []string{"SOURCE        SINCE  REASON   LATENCY  ERROR\n"})
}

func TestReadCommandsJSON(t *testing.T) {
	_, at := adminServer(t)
	tok := tokenFile(t, testToken)
	if code, _, errs := steerctl(append([]string{"drain", "192.0.2.10", "--by", "bob"}, append(at, tok...)...)...); code != 0 {
		t.Fatalf("drain: exit %d: %s", code, errs)
	}

	code, out, _ := steerctl(append([]string{"explain", "www.example.com", "--json"}, at...)...)
	var ex explanation
	if err := json.Unmarshal([]byte(out), &ex); code != 0 || err != nil || ex.Rcode != "NOERROR" || len(ex.Steps) != 3 || len(ex.Answer) != 1 || *ex.TTL != 30 {
		t.Errorf("explain: exit %d %v %+v", code, err, ex)
	}

	code, out, _ = steerctl(append([]string{"history", "--json"}, at...)...)
	var h struct{ Transitions []admin.Transition }
	if err := json.Unmarshal([]byte(out), &h); code != 0 || err != nil || len(h.Transitions) != 1 || h.Transitions[0].To != "down" {
		t.Errorf("history: exit %d %v %+v", code, err, h)
	}

	code, out, _ = steerctl(append([]string{"overrides", "--json"}, at...)...)
	var l struct{ Overrides []admin.Override }
	if err := json.Unmarshal([]byte(out), &l); code != 0 || err != nil || len(l.Overrides) != 1 || l.Overrides[0].By != "bob" || l.Overrides[0].Target != "endpoint:192.0.2.10" {
		t.Errorf("overrides: exit %d %v %+v", code, err, l)
	}
	code, out, _ = steerctl(append([]string{"overrides"}, at...)...)
	if code != 0 || !strings.Contains(out, "ov1  drain   endpoint:192.0.2.10") || !strings.Contains(out, "  never    bob  -\n") {
		t.Errorf("overrides: exit %d\n%s", code, out)
	}
}

func TestDrainForceUpUndrain(t *testing.T) {
	b, at := adminServer(t)
	at = append(at, tokenFile(t, testToken)...)
	t.Setenv("USER", "carol")
	host, _ := os.Hostname()

	// A bare IP is endpoint:IP; --by defaults to $USER@hostname.
	code, out, errs := steerctl(append([]string{"drain", "192.0.2.10", "--ttl", "30m", "--reason", "disk failing"}, at...)...)
	if code != 0 || errs != "" {
		t.Fatalf("exit %d stderr %q", code, errs)
	}
	want := admin.OverrideRequest{Target: "endpoint:192.0.2.10", Action: "drain", TTL: "30m", Reason: "disk failing", By: "carol@" + host}
	if b.requests[0] != want {
		t.Errorf("request %+v, want %+v", b.requests[0], want)
	}
	inOrder(t, "stdout", out, []string{"override ov1: drain endpoint:192.0.2.10, until 20", "(in 29m5", "s), by carol@" + host + ": disk failing\n", "undo: steerctl undrain ov1\n"})

	// force-up, --json: the override as the API wrote it.
	code, out, _ = steerctl(append([]string{"force-up", "pool:example.com/www/us-east", "--by", "dave", "--json"}, at...)...)
	var o admin.Override
	if err := json.Unmarshal([]byte(out), &o); code != 0 || err != nil || o.ID != "ov2" || o.Action != "force-up" || o.Target != "pool:example.com./www/us-east" || o.Expires != nil {
		t.Errorf("exit %d %v %+v", code, err, o)
	}

	// Two overrides of one region, and another: undrain by the target removes those two.
	for range 2 {
		if code, _, errs := steerctl(append([]string{"drain", "region:eu-west"}, at...)...); code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
	}
	code, out, errs = steerctl(append([]string{"undrain", "region:eu-west"}, at...)...)
	if code != 0 || errs != "" {
		t.Fatalf("undrain: exit %d stderr %q", code, errs)
	}
	inOrder(t, "stdout", out, []string{"removed override ov4: drain region:eu-west, until removed, by carol@", "removed override ov3: drain region:eu-west"})
	if got := ids(b.Overrides()); !slices.Equal(got, []string{"ov2", "ov1"}) {
		t.Errorf("left %q", got)
	}

	// A pool target written otherwise (zone without its dot, a service fully qualified) is
	// the same target; --json lists what was removed.
	code, out, _ = steerctl(append([]string{"undrain", "pool:Example.COM/www.example.com./us-east", "--json"}, at...)...)
	var removed []admin.Override
	if err := json.Unmarshal([]byte(out), &removed); code != 0 || err != nil || len(removed) != 1 || removed[0].ID != "ov2" {
		t.Errorf("exit %d %v %+v", code, err, removed)
	}

	// By ID.
	code, out, _ = steerctl(append([]string{"undrain", "ov1"}, at...)...)
	if code != 0 || !strings.HasPrefix(out, "removed override ov1: drain endpoint:192.0.2.10, until 20") {
		t.Errorf("exit %d stdout %q", code, out)
	}
	if len(b.Overrides()) != 0 {
		t.Errorf("left %+v", b.Overrides())
	}
	// Nothing left: a finding.
	code, _, errs = steerctl(append([]string{"undrain", "192.0.2.10"}, at...)...)
	if code != 1 || errs != "steerctl: undrain: no active override of endpoint:192.0.2.10\n" {
		t.Errorf("exit %d stderr %q", code, errs)
	}
}

func ids(l []admin.Override) []string {
	var out []string
	for _, o := range l {
		out = append(out, o.ID)
	}
	return out
}

// TestEnvironment: STEER_ADMIN and STEER_TOKEN are the defaults of --admin and the token; a
// URL without a scheme is http.
func TestEnvironment(t *testing.T) {
	b, at := adminServer(t)
	t.Setenv("STEER_ADMIN", strings.TrimPrefix(at[1], "http://"))
	t.Setenv("STEER_TOKEN", testToken)
	code, out, errs := steerctl("drain", "region:us-east")
	if code != 0 || !strings.HasPrefix(out, "override ov1: drain region:us-east") {
		t.Errorf("exit %d stdout %q stderr %q", code, out, errs)
	}
	// --token-file wins over STEER_TOKEN.
	code, _, errs = steerctl(append([]string{"drain", "region:us-east"}, tokenFile(t, "other")...)...)
	if code != 2 || !strings.Contains(errs, "The token given was refused") {
		t.Errorf("exit %d stderr %q", code, errs)
	}
	if len(b.Overrides()) != 1 {
		t.Errorf("%+v", b.Overrides())
	}
}

// TestUnreachable: no server, or a server that is not the admin API: exit 2 and a message.
func TestUnreachable(t *testing.T) {
	t.Setenv("STEER_ADMIN", "")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()
	code, out, errs := steerctl("status", "--admin", closed)
	if code != 2 || out != "" || !strings.Contains(errs, "steerctl: status: cannot reach the admin API at "+closed+": ") || !strings.Contains(errs, "connection refused") {
		t.Errorf("exit %d stdout %q stderr %q", code, out, errs)
	}

	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "<html>Not Found</html>", http.StatusNotFound)
	}))
	defer other.Close()
	code, _, errs = steerctl("undrain", "ov1", "--admin", other.URL)
	if code != 2 || !strings.Contains(errs, "answered 404 Not Found, not as the steerdns admin API does") {
		t.Errorf("exit %d stderr %q", code, errs)
	}
}

// probeFile writes a policy file whose checks reach an open and a closed port on 127.0.0.1.
func probeFile(t *testing.T) string {
	t.Helper()
	open, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { open.Close() })
	go func() {
		for {
			c, err := open.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := l.Addr().(*net.TCPAddr).Port
	l.Close()
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(web.Close)
	webPort := web.Listener.Addr().(*net.TCPAddr).Port

	dir := writeFiles(t, map[string]string{"probe.yaml": fmt.Sprintf(`zone: probe.test.
ns: [ns1.probe.test.]
checks:
  open: {type: tcp, port: %d, timeout: 1s}
  closed: {type: tcp, port: %d, timeout: 1s}
  web: {type: http, port: %d, path: /healthz, expect_body: ok, timeout: 1s}
services:
  up:
    check: open
    pools:
      - region: a
        endpoints: [127.0.0.1]
      - endpoints: [{address: 127.0.0.1, check: web}]
      - endpoints: [127.0.0.1]   # the same (check, address) again: probed once
  down:
    check: closed
    pools:
      - endpoints: [127.0.0.1]
  free:
    pools:
      - endpoints: [127.0.0.1]
`, open.Addr().(*net.TCPAddr).Port, closedPort, webPort)})
	return filepath.Join(dir, "probe.yaml")
}

func TestProbe(t *testing.T) {
	f := probeFile(t)

	code, out, errs := steerctl("probe", f)
	if code != 1 || errs != "" {
		t.Errorf("exit %d stderr %q", code, errs)
	}
	for _, re := range []string{
		`(?m)^SERVICE +POOL +ENDPOINT +CHECK +RESULT +REASON +LATENCY +ERROR$`,
		`(?m)^up\.probe\.test\. +a +127\.0\.0\.1 +open +up +- +[0-9.]+(µs|ms|s) +-$`,
		`(?m)^up\.probe\.test\. +pools\[1\] +127\.0\.0\.1 +web +up +`,
		`(?m)^up\.probe\.test\. +pools\[2\] +127\.0\.0\.1 +open +up +`,
		`(?m)^down\.probe\.test\. +pools\[0\] +127\.0\.0\.1 +closed +down +refused +[0-9.]+(µs|ms|s) +.*connection refused`,
		`(?m)^free\.probe\.test\. +pools\[0\] +127\.0\.0\.1 +none +not checked +- +- +-$`,
		`(?m)^3 targets probed: 2 up, 1 down; 1 endpoint not checked \(check none\)$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("stdout does not match %s:\n%s", re, out)
		}
	}

	// One service: all up, exit 0; by its relative or its full name.
	for _, name := range []string{"up", "up.probe.test.", "UP.probe.test"} {
		code, out, errs = steerctl("probe", "--service", name, f)
		if code != 0 || errs != "" || strings.Contains(out, "down.probe.test") || !strings.HasSuffix(out, "2 targets probed: 2 up, 0 down\n") {
			t.Errorf("--service %s: exit %d stderr %q\n%s", name, code, errs, out)
		}
	}

	code, out, _ = steerctl("probe", "--json", "--service", "down", f)
	var rows []probeRow
	if err := json.Unmarshal([]byte(out), &rows); code != 1 || err != nil || len(rows) != 1 {
		t.Fatalf("exit %d %v\n%s", code, err, out)
	}
	if r := rows[0]; r.Zone != "probe.test." || r.Service != "down.probe.test." || r.Pool != "pools[0]" || r.Check != "closed" ||
		!r.Checked || r.Up || r.Reason != "refused" || r.Error == "" || r.LatencyMs == nil {
		t.Errorf("%+v", r)
	}

	code, _, errs = steerctl("probe", "--service", "nope", f)
	if want := `steerctl: probe: no service "nope" in these files (services: down.probe.test., free.probe.test., up.probe.test.)`; code != 2 || !strings.HasPrefix(errs, want) {
		t.Errorf("exit %d stderr %q", code, errs)
	}

	// An invalid file is reported as check reports it; the valid ones are probed.
	bad := filepath.Join(writeFiles(t, map[string]string{"b.yaml": brokenZone}), "b.yaml")
	code, out, errs = steerctl("probe", "--service", "up", bad, f)
	if code != 1 || !strings.HasPrefix(errs, bad+":7: services.www.pools[0].endpoints[0]: ") || !strings.HasSuffix(out, "2 targets probed: 2 up, 0 down; 1 file not valid, not probed\n") {
		t.Errorf("exit %d stderr %q\n%s", code, errs, out)
	}
}

// --source sends the probes from that address: 127.0.0.2, which Linux routes to lo. An endpoint
// of the other IP family is down, with the reason.
func TestProbeSource(t *testing.T) {
	var mu sync.Mutex
	var from []string
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		mu.Lock()
		from = append(from, host)
		mu.Unlock()
	}))
	t.Cleanup(web.Close)
	dir := writeFiles(t, map[string]string{"source.yaml": fmt.Sprintf(`zone: source.test.
ns: [ns1.source.test.]
checks:
  web: {type: http, port: %d, timeout: 1s}
services:
  www:
    check: web
    pools:
      - endpoints: [127.0.0.1]
  six:
    check: web
    pools:
      - endpoints: ["::1"]
`, web.Listener.Addr().(*net.TCPAddr).Port)})
	f := filepath.Join(dir, "source.yaml")

	for _, src := range []string{"127.0.0.2", "127.0.0.3"} {
		mu.Lock()
		from = nil
		mu.Unlock()
		code, out, errs := steerctl("probe", "--source", src, "--service", "www", f)
		mu.Lock()
		got := slices.Clone(from)
		mu.Unlock()
		if code != 0 || errs != "" || !slices.Equal(got, []string{src}) {
			t.Errorf("--source %s: exit %d stderr %q, probes from %v\n%s", src, code, errs, got, out)
		}
	}

	code, out, _ := steerctl("probe", "--source", "127.0.0.2", "--json", "--service", "six", f)
	var rows []probeRow
	if err := json.Unmarshal([]byte(out), &rows); code != 1 || err != nil || len(rows) != 1 {
		t.Fatalf("exit %d %v\n%s", code, err, out)
	}
	if r := rows[0]; r.Up || r.Reason != "other" || !strings.Contains(r.Error, "different IP families") {
		t.Errorf("an IPv6 endpoint probed from 127.0.0.2: %+v", r)
	}
}

func TestLatency(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{55 * time.Microsecond, "55µs"},
		{250 * time.Microsecond, "0.2ms"},
		{1250 * time.Microsecond, "1.2ms"},
		{42 * time.Millisecond, "42ms"},
		{2100 * time.Millisecond, "2.10s"},
	} {
		if got := latency(tc.d); got != tc.want {
			t.Errorf("latency(%s) = %q, want %q", tc.d, got, tc.want)
		}
	}
}
