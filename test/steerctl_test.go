package test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

var (
	steerctlOnce sync.Once
	steerctlBin  string
	steerctlErr  error
)

// steerctl builds cmd/steerctl once per test process and returns its path.
func steerctlPath(t *testing.T) string {
	t.Helper()
	steerctlOnce.Do(func() {
		dir, err := os.MkdirTemp("", "steerctl")
		if err != nil {
			steerctlErr = err
			return
		}
		steerctlBin = filepath.Join(dir, "steerctl")
		out, err := exec.Command("go", "build", "-o", steerctlBin, "../cmd/steerctl").CombinedOutput()
		if err != nil {
			steerctlErr = err
			t.Logf("%s", out)
		}
	})
	if steerctlErr != nil {
		t.Fatalf("building steerctl: %v", steerctlErr)
	}
	return steerctlBin
}

// runCtl runs steerctl with args against a, and returns its output and exit code.
func runCtl(t *testing.T, a *adminServer, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(steerctlPath(t), args...)
	cmd.Env = append(os.Environ(), append([]string{"STEER_ADMIN=" + a.URL, "STEER_TOKEN="}, env...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), code
}

// TestSteerctl runs every steerctl command against a running server, as an operator would.
func TestSteerctl(t *testing.T) {
	b := newBackend(t)
	dir := t.TempDir()
	tok := writeFile(t, dir, "token", "ctl-token\n")
	a := startAdmin(t, b, dir, "  admin_token_file "+tok, "200ms", "100ms")
	waitAnswer(t, a.server, "127.0.0.1")
	withToken := []string{"STEER_TOKEN=ctl-token"}

	expect := func(what string, out string, code, want int, contains ...string) {
		t.Helper()
		if code != want {
			t.Errorf("%s: exit %d, want %d\n%s", what, code, want, out)
		}
		for _, c := range contains {
			if !strings.Contains(out, c) {
				t.Errorf("%s: output lacks %q\n%s", what, c, out)
			}
		}
	}
	out, code := runCtl(t, a, nil, "status")
	expect("status", out, code, 0, "example.com.", "www", "us-east", "127.0.0.1", "up")
	out, code = runCtl(t, a, nil, "status", "--json")
	expect("status --json", out, code, 0, `"zones"`, `"view_version"`)

	// Writes need the token.
	out, code = runCtl(t, a, nil, "drain", "region:us-east")
	expect("drain without a token", out, code, 2, "Bearer", "No token was given")
	out, code = runCtl(t, a, withToken, "drain", "region:us-east", "--reason", "maintenance", "--ttl", "1h")
	expect("drain", out, code, 0, "region:us-east")
	if got := addrsOf(t, a.server, "www.example.com."); !slices.Equal(got, []string{"127.0.0.2"}) {
		t.Errorf("www after steerctl drain: %v", got)
	}
	out, code = runCtl(t, a, nil, "overrides")
	expect("overrides", out, code, 0, "region:us-east", "drain", "maintenance")
	out, code = runCtl(t, a, withToken, "drain", "region:mars")
	expect("drain of a region that does not exist", out, code, 1, "us-east", "eu-west")
	out, code = runCtl(t, a, withToken, "force-up", "endpoint:127.0.0.3")
	expect("force-up", out, code, 0, "force-up")
	if got := addrsOf(t, a.server, "api.example.com."); !slices.Equal(got, []string{"127.0.0.3"}) {
		t.Errorf("api with us-east drained and 127.0.0.3 forced up: %v", got)
	}
	out, code = runCtl(t, a, nil, "explain", "www.example.com", "A", "--client", "192.0.2.0/24")
	expect("explain", out, code, 0, "127.0.0.2", "eu-west")
	out, code = runCtl(t, a, withToken, "undrain", "region:us-east")
	expect("undrain by target", out, code, 0)
	out, code = runCtl(t, a, withToken, "undrain", "endpoint:127.0.0.3")
	expect("undrain of the force-up", out, code, 0)
	out, code = runCtl(t, a, withToken, "undrain", "region:us-east")
	expect("undrain with nothing left", out, code, 1)
	if r := ask(t, "udp", a.UDP, "www.example.com.", dns.TypeA); !slices.Equal(answers(r), []string{"127.0.0.1"}) {
		t.Errorf("www after undrain: %v", answers(r))
	}
	b.Stop()
	waitAnswer(t, a.server, "127.0.0.2")
	out, code = runCtl(t, a, nil, "history", "--endpoint", "127.0.0.1")
	expect("history", out, code, 0, "127.0.0.1", "down")

	// probe: a dry run of the policy file from here; the backend is down now, so exit 1.
	policy := filepath.Join(dir, "zones", "example.com.yaml")
	out, code = runCtl(t, a, nil, "probe", policy)
	expect("probe with the backend down", out, code, 1, "127.0.0.1", "down", "refused")
	b.Start()
	out, code = runCtl(t, a, nil, "probe", policy, "--service", "www")
	expect("probe with the backend up", out, code, 0, "127.0.0.1", "up")

	// A server that cannot be reached: exit 2.
	dead := *a
	dead.URL = "http://127.0.0.1:1"
	out, code = runCtl(t, &dead, nil, "status")
	expect("status of no server", out, code, 2)
}
