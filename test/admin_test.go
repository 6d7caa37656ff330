package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/steerdns/steerdns/plugin/steer/admin"
)

// adminPolicy: www fails over from us-east (checked by HTTP against a test backend) to
// eu-west; api has two pools of the same regions and no checks.
const adminPolicy = `zone: example.com.
ns: [ns1.example.com.]
records: |
  ns1 A 192.0.2.53
checks:
  web: {type: http, port: %d, interval: %s, timeout: %s, fast_interval: 50ms, rise: 1, fall: 1}
services:
  www:
    ttl: 30
    degraded_ttl: 10
    pools:
      - {region: us-east, endpoints: [{address: 127.0.0.1, check: web}]}
      - {region: eu-west, endpoints: [127.0.0.2]}
  api:
    pools:
      - {region: us-east, endpoints: [127.0.0.3, 127.0.0.4]}
      - {region: eu-west, endpoints: [127.0.0.5]}
`

// adminServer is a running server with the admin API.
type adminServer struct {
	*server
	URL   string
	token string
}

// startAdmin serves adminPolicy with the admin API on a free port; extra goes into the steer
// block. interval and timeout are the check's.
func startAdmin(t *testing.T, b *backend, dir, extra, interval, timeout string) *adminServer {
	t.Helper()
	zonesDir := filepath.Join(dir, "zones")
	os.MkdirAll(zonesDir, 0o755)
	writeFile(t, zonesDir, "example.com.yaml", fmt.Sprintf(adminPolicy, b.Port, interval, timeout))
	port := freePort(t)
	s := start(t, fmt.Sprintf("example.com:0 {\n bind 127.0.0.1\n nsid test-node\n steer %s {\n  admin 127.0.0.1:%d\n%s\n }\n}", zonesDir, port, extra))
	return &adminServer{server: s, URL: fmt.Sprintf("http://127.0.0.1:%d", port)}
}

// call makes an admin API call and decodes the JSON answer into out (when not nil).
func (a *adminServer) call(t testing.TB, method, path string, body any, out any) int {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, a.URL+path, r)
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); path != "/" && ct != "application/json" {
		t.Errorf("%s %s: content type %q", method, path, ct)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %v\n%s", method, path, err, data)
		}
	}
	return resp.StatusCode
}

func (a *adminServer) drain(t testing.TB, target, ttl string) admin.Override {
	t.Helper()
	var o admin.Override
	if code := a.call(t, "POST", "/v1/overrides", admin.OverrideRequest{Target: target, Action: "drain", TTL: ttl, Reason: "test", By: "tester"}, &o); code != http.StatusCreated {
		t.Fatalf("drain %s: status %d", target, code)
	}
	return o
}

func addrsOf(t testing.TB, s *server, name string) []string {
	t.Helper()
	return answers(ask(t, "udp", s.UDP, name, dns.TypeA))
}

func TestAdminToken(t *testing.T) {
	b := newBackend(t)
	dir := t.TempDir()
	tok := writeFile(t, dir, "token", "s3cret-token\n")
	a := startAdmin(t, b, dir, "  admin_token_file "+tok, "200ms", "100ms")
	req := admin.OverrideRequest{Target: "region:eu-west", Action: "drain"}
	var e admin.Error
	if code := a.call(t, "POST", "/v1/overrides", req, &e); code != http.StatusUnauthorized || !strings.Contains(e.Error, "Bearer") {
		t.Errorf("without a token: %d %+v", code, e)
	}
	a.token = "wrong"
	if code := a.call(t, "POST", "/v1/overrides", req, &e); code != http.StatusUnauthorized {
		t.Errorf("with a wrong token: %d", code)
	}
	// Reads need no token.
	a.token = ""
	var st admin.Status
	if code := a.call(t, "GET", "/v1/status", nil, &st); code != http.StatusOK || len(st.Zones) != 1 {
		t.Errorf("status without a token: %d %+v", code, st)
	}
	a.token = "s3cret-token"
	o := a.drain(t, "region:eu-west", "")
	var gone admin.Override
	a.token = ""
	if code := a.call(t, "DELETE", "/v1/overrides/"+o.ID, nil, &gone); code != http.StatusUnauthorized {
		t.Errorf("delete without a token: %d", code)
	}
	a.token = "s3cret-token"
	if code := a.call(t, "DELETE", "/v1/overrides/"+o.ID, nil, &gone); code != http.StatusOK || gone.ID != o.ID {
		t.Errorf("delete with the token: %d %+v", code, gone)
	}
	// Bad requests: JSON errors, with what exists when the target names nothing.
	for _, c := range []struct {
		body  string
		code  int
		known string
	}{
		{`{"target": "region:ap-south", "action": "drain"}`, 404, "us-east"},
		{`{"target": "pool:example.com./www/asia", "action": "drain"}`, 404, "example.com./www/us-east"},
		{`{"target": "endpoint:192.0.2.99", "action": "drain"}`, 404, "127.0.0.1"},
		{`{"target": "region:us-east", "action": "explode"}`, 400, ""},
		{`{"target": "region:us-east", "action": "drain", "ttl": "soon"}`, 400, ""},
		{`{"target": "region:us-east", "action": "drain", "colour": "red"}`, 400, ""},
		{`{"target": "region:us-east", "action": "drain"`, 400, ""},
		{`{"target": "moon", "action": "drain"}`, 400, ""},
		{`{"reason": "` + strings.Repeat("x", 70000) + `"}`, 413, ""},
	} {
		req, _ := http.NewRequest("POST", a.URL+"/v1/overrides", strings.NewReader(c.body))
		req.Header.Set("Authorization", "Bearer s3cret-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e admin.Error
		json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != c.code || e.Error == "" || (c.known != "" && !slices.Contains(e.Known, c.known)) {
			t.Errorf("%.60s: %d %+v, want %d with %q known", c.body, resp.StatusCode, e, c.code, c.known)
		}
	}
}

func TestAdminOverrides(t *testing.T) {
	b := newBackend(t)
	a := startAdmin(t, b, t.TempDir(), "", "200ms", "100ms")
	waitAnswer(t, a.server, "127.0.0.1")

	// A drain applies to the very next query: no polling.
	o := a.drain(t, "region:us-east", "")
	if got := addrsOf(t, a.server, "www.example.com."); !slices.Equal(got, []string{"127.0.0.2"}) {
		t.Errorf("www right after draining us-east: %v", got)
	}
	if got := addrsOf(t, a.server, "api.example.com."); !slices.Equal(got, []string{"127.0.0.5"}) {
		t.Errorf("api right after draining us-east: %v", got)
	}
	// A pool force-up beats the region drain; an endpoint drain beats the pool force-up.
	var fu admin.Override
	a.call(t, "POST", "/v1/overrides", admin.OverrideRequest{Target: "pool:example.com/api/us-east", Action: "force-up"}, &fu)
	if got := addrsOf(t, a.server, "api.example.com."); !slices.Equal(got, []string{"127.0.0.3", "127.0.0.4"}) {
		t.Errorf("api with its us-east pool forced up: %v", got)
	}
	if got := addrsOf(t, a.server, "www.example.com."); !slices.Equal(got, []string{"127.0.0.2"}) {
		t.Errorf("www keeps the region drain: %v", got)
	}
	a.drain(t, "endpoint:127.0.0.3", "")
	if got := addrsOf(t, a.server, "api.example.com."); !slices.Equal(got, []string{"127.0.0.4"}) {
		t.Errorf("api with 127.0.0.3 drained: %v", got)
	}
	var list struct{ Overrides []admin.Override }
	a.call(t, "GET", "/v1/overrides", nil, &list)
	if len(list.Overrides) != 3 || list.Overrides[2].ID != o.ID || list.Overrides[2].By != "tester" {
		t.Errorf("overrides: %+v", list.Overrides)
	}
	// The status shows the drained endpoints as drained, by which override.
	var st admin.Status
	a.call(t, "GET", "/v1/status?service=www", nil, &st)
	ep := st.Zones[0].Services[0].Pools[0].Endpoints[0]
	if ep.State != "drained" || ep.Source != "override" || ep.Override != o.ID {
		t.Errorf("www's us-east endpoint: %+v", ep)
	}
	for _, x := range list.Overrides {
		a.call(t, "DELETE", "/v1/overrides/"+x.ID, nil, nil)
	}
	if got := addrsOf(t, a.server, "www.example.com."); !slices.Equal(got, []string{"127.0.0.1"}) {
		t.Errorf("www after the overrides went: %v", got)
	}
	// An override with a ttl expires on time.
	a.drain(t, "pool:example.com./www/us-east", "300ms")
	if got := addrsOf(t, a.server, "www.example.com."); !slices.Equal(got, []string{"127.0.0.2"}) {
		t.Errorf("www with a 300ms drain: %v", got)
	}
	waitAnswer(t, a.server, "127.0.0.1")

	// explain, computed by the answer's code, through the API.
	a.drain(t, "region:us-east", "")
	var ex struct {
		Answer   []string
		Steps    []string
		Services []struct{ Chosen, Outcome string }
	}
	if code := a.call(t, "GET", "/v1/explain?name=www.example.com&type=A&client=192.0.2.7", nil, &ex); code != 200 ||
		len(ex.Services) != 1 || ex.Services[0].Chosen != "eu-west" || len(ex.Answer) != 1 || !strings.Contains(ex.Answer[0], "127.0.0.2") {
		t.Errorf("explain: %d %+v", code, ex)
	}
	var e admin.Error
	if code := a.call(t, "GET", "/v1/explain?name=www.example.com&type=BOGUS", nil, &e); code != 400 {
		t.Errorf("explain of a bad type: %d %+v", code, e)
	}
	if code := a.call(t, "GET", "/v1/nothing", nil, &e); code != 404 || !strings.Contains(e.Error, "GET /v1/status") {
		t.Errorf("an unknown call: %d %+v", code, e)
	}

	// history: the backend's fall and return, filtered by endpoint.
	b.Stop()
	waitAnswer(t, a.server, "127.0.0.2")
	var h struct{ Transitions []admin.Transition }
	eventually(t, 5*time.Second, "a down transition in the history", func() bool {
		a.call(t, "GET", "/v1/history?endpoint=127.0.0.1&since=1h", nil, &h)
		return len(h.Transitions) > 0 && h.Transitions[len(h.Transitions)-1].To == "down"
	})
	last := h.Transitions[len(h.Transitions)-1]
	if last.Check != "web" || last.Reason == "" || last.Node == "" || !slices.Contains(last.Zones, "example.com.") {
		t.Errorf("transition %+v", last)
	}
	a.call(t, "GET", "/v1/history?endpoint=127.0.0.9", nil, &h)
	if len(h.Transitions) != 0 {
		t.Errorf("history of an endpoint with none: %+v", h.Transitions)
	}
}

// TestAdminRestart: a restart with state_dir keeps the overrides, the last known states
// (shown as restored until a probe confirms them) and the history.
func TestAdminRestart(t *testing.T) {
	b := newBackend(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	a := startAdmin(t, b, dir, "  state_dir "+state, "500ms", "400ms")
	waitAnswer(t, a.server, "127.0.0.1")
	o := a.drain(t, "pool:example.com./api/eu-west", "")
	b.Stop()
	waitAnswer(t, a.server, "127.0.0.2")
	var h struct{ Transitions []admin.Transition }
	a.call(t, "GET", "/v1/history", nil, &h)
	before := len(h.Transitions)
	a.stop()

	// The backend now hangs: the first probe after the restart takes its whole 400ms timeout,
	// and until then the restored state (down) answers, not unknown (up).
	b.mu.Lock()
	b.Hang = true
	b.mu.Unlock()
	b.Start()
	a2 := startAdmin(t, b, dir, "  state_dir "+state, "500ms", "400ms")
	if got := addrsOf(t, a2.server, "www.example.com."); !slices.Equal(got, []string{"127.0.0.2"}) {
		t.Errorf("www right after the restart: %v, want the backup (the primary was down)", got)
	}
	var st admin.Status
	a2.call(t, "GET", "/v1/status?service=www", nil, &st)
	if ep := st.Zones[0].Services[0].Pools[0].Endpoints[0]; ep.State != "down" || ep.Source != "restored" {
		t.Errorf("www's primary right after the restart: %+v", ep)
	}
	var list struct{ Overrides []admin.Override }
	a2.call(t, "GET", "/v1/overrides", nil, &list)
	if len(list.Overrides) != 1 || list.Overrides[0].ID != o.ID {
		t.Errorf("overrides after the restart: %+v", list.Overrides)
	}
	if got := addrsOf(t, a2.server, "api.example.com."); !slices.Equal(got, []string{"127.0.0.3", "127.0.0.4"}) {
		t.Errorf("api after the restart: %v", got)
	}
	a2.call(t, "GET", "/v1/history", nil, &h)
	if len(h.Transitions) < before || before == 0 {
		t.Errorf("history after the restart: %d transitions, %d before", len(h.Transitions), before)
	}
	// The hanging probe confirms: the state is a probe's again.
	eventually(t, 5*time.Second, "the restored state confirmed by a probe", func() bool {
		a2.call(t, "GET", "/v1/status?service=www", nil, &st)
		ep := st.Zones[0].Services[0].Pools[0].Endpoints[0]
		return ep.State == "down" && ep.Source == "probe" && ep.Reason == "timeout"
	})
}

func TestAdminBadStateDir(t *testing.T) {
	b := newBackend(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	os.MkdirAll(state, 0o755)
	// A corrupt overrides file and a targets file of another version: both set aside.
	writeFile(t, state, "overrides.json", "{not json")
	writeFile(t, state, "targets.json", `{"version": 99, "targets": []}`)
	a := startAdmin(t, b, dir, "  state_dir "+state, "200ms", "100ms")
	waitAnswer(t, a.server, "127.0.0.1")
	for _, f := range []string{"overrides.json", "targets.json"} {
		m, _ := filepath.Glob(filepath.Join(state, f+".corrupt-*"))
		if len(m) != 1 {
			t.Errorf("%s was not set aside: %v", f, m)
		}
	}
	a.drain(t, "region:eu-west", "")
	if _, err := os.Stat(filepath.Join(state, "overrides.json")); err != nil {
		t.Errorf("the override was not written: %v", err)
	}
	a.stop()

	// A state folder that cannot be written (a file stands where it should be): the server
	// starts, serves, takes overrides, and says what failed.
	blocked := writeFile(t, dir, "blocked", "a file, not a folder")
	a2 := startAdmin(t, b, dir, "  state_dir "+filepath.Join(blocked, "state"), "200ms", "100ms")
	waitAnswer(t, a2.server, "127.0.0.1")
	a2.drain(t, "region:us-east", "")
	if got := addrsOf(t, a2.server, "www.example.com."); !slices.Equal(got, []string{"127.0.0.2"}) {
		t.Errorf("www with us-east drained and no writable state: %v", got)
	}
	var st admin.Status
	a2.call(t, "GET", "/v1/status", nil, &st)
	if st.StateDir == nil || st.StateDir.LastError == "" {
		t.Errorf("status does not show the state_dir error: %+v", st.StateDir)
	}
}

// TestAdminCorefileReload: overrides survive a Corefile reload without state_dir, and the
// admin listener passes to the new instance.
func TestAdminCorefileReload(t *testing.T) {
	b := newBackend(t)
	dir := t.TempDir()
	a := startAdmin(t, b, dir, "", "200ms", "100ms")
	o := a.drain(t, "region:us-east", "")
	zonesDir := filepath.Join(dir, "zones")
	port := strings.TrimPrefix(a.URL, "http://127.0.0.1:")
	a.restart(t, fmt.Sprintf("example.com:0 {\n bind 127.0.0.1\n steer %s {\n  admin 127.0.0.1:%s\n }\n}", zonesDir, port))
	var list struct{ Overrides []admin.Override }
	if code := a.call(t, "GET", "/v1/overrides", nil, &list); code != 200 || len(list.Overrides) != 1 || list.Overrides[0].ID != o.ID {
		t.Errorf("after a Corefile reload: %d %+v", code, list.Overrides)
	}
	if got := addrsOf(t, a.server, "www.example.com."); !slices.Equal(got, []string{"127.0.0.2"}) {
		t.Errorf("www after a Corefile reload: %v", got)
	}
	// A reload that adds a token: the listener stays, and writes need the new token.
	tok := writeFile(t, dir, "token", "new-token")
	a.restart(t, fmt.Sprintf("example.com:0 {\n bind 127.0.0.1\n steer %s {\n  admin 127.0.0.1:%s\n  admin_token_file %s\n }\n}", zonesDir, port, tok))
	if code := a.call(t, "DELETE", "/v1/overrides/"+o.ID, nil, nil); code != http.StatusUnauthorized {
		t.Errorf("a write without the token after it was configured: %d", code)
	}
	a.token = "new-token"
	if code := a.call(t, "DELETE", "/v1/overrides/"+o.ID, nil, nil); code != http.StatusOK {
		t.Errorf("a write with the new token: %d", code)
	}
}

// TestNSID: the nsid plugin says which node answered.
func TestNSID(t *testing.T) {
	b := newBackend(t)
	a := startAdmin(t, b, t.TempDir(), "", "200ms", "100ms")
	m := new(dns.Msg)
	m.SetQuestion("www.example.com.", dns.TypeA)
	m.SetEdns0(1232, false)
	m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID})
	r := exchange(t, "udp", a.UDP, m)
	found := ""
	if o := r.IsEdns0(); o != nil {
		for _, e := range o.Option {
			if n, ok := e.(*dns.EDNS0_NSID); ok {
				found = n.Nsid
			}
		}
	}
	if found != fmt.Sprintf("%x", "test-node") {
		t.Errorf("NSID %q", found)
	}
}

// TestMeasureDrain reports the time from a drain call to the first answer without the region,
// median and worst of 20 (STEER_MEASURE=1):
//
//	STEER_MEASURE=1 go test -run TestMeasureDrain -v ./test
func TestMeasureDrain(t *testing.T) {
	if os.Getenv("STEER_MEASURE") != "1" {
		t.Skip("set STEER_MEASURE=1 to measure")
	}
	b := newBackend(t)
	a := startAdmin(t, b, t.TempDir(), "", "200ms", "100ms")
	waitAnswer(t, a.server, "127.0.0.1")
	var took []time.Duration
	for range 20 {
		start := time.Now()
		o := a.drain(t, "region:us-east", "")
		deadline := start.Add(5 * time.Second)
		for !slices.Equal(addrsOf(t, a.server, "www.example.com."), []string{"127.0.0.2"}) {
			if time.Now().After(deadline) {
				t.Fatal("the drain did not move the answer within 5s")
			}
		}
		took = append(took, time.Since(start))
		a.call(t, "DELETE", "/v1/overrides/"+o.ID, nil, nil)
		waitAnswer(t, a.server, "127.0.0.1")
	}
	slices.Sort(took)
	t.Logf("drain call to the first answer without the region (20 trials): median %v, worst %v", took[10], took[19])
}
