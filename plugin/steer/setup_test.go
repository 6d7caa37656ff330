package steer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coredns/caddy"
)

func TestParse(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	os.WriteFile(token, []byte("s3cret\n"), 0o600)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	for _, c := range []struct {
		input   string
		paths   int
		through string // a name that fallthrough passes on
		err     string
		noECS   bool // ecs off
	}{
		{"steer zones/", 1, "", "", false},
		{"steer a.yaml b/ c.yml", 3, "", "", false},
		{"steer zones/ {\n fallthrough\n}", 1, "anything.example.", "", false},
		{"steer zones/ {\n fallthrough example.org\n}", 1, "x.example.org.", "", false},
		{"steer", 0, "", "Wrong argument count", false},
		{"steer zones/ {\n ecs on\n}", 1, "", "", false},
		{"steer zones/ {\n ecs off\n}", 1, "", "", true},
		{"steer zones/ {\n ecs maybe\n}", 0, "", "ecs takes on or off", false},
		{"steer zones/ {\n ecs\n}", 0, "", "ecs takes on or off", false},
		{"steer zones/ {\n admin 127.0.0.1:9480\n}", 1, "", "", false},
		{"steer zones/ {\n admin [::1]:9480\n}", 1, "", "", false},
		{"steer zones/ {\n admin localhost:9480\n}", 1, "", "", false},
		{"steer zones/ {\n admin 0.0.0.0:9480\n}", 0, "", "admin 0.0.0.0:9480 is not a loopback address: set admin_token_file", false},
		{"steer zones/ {\n admin :9480\n}", 0, "", "is not a loopback address", false},
		{"steer zones/ {\n admin 9480\n}", 0, "", "is not host:port", false},
		{"steer zones/ {\n admin 192.0.2.1:9480\n admin_token_file " + token + "\n}", 1, "", "", false},
		{"steer zones/ {\n admin 127.0.0.1:9480\n admin_token_file " + empty + "\n}", 0, "", "is empty", false},
		{"steer zones/ {\n admin 127.0.0.1:9480\n admin_token_file /nonexistent/t\n}", 0, "", "admin_token_file: open /nonexistent/t", false},
		{"steer zones/ {\n admin_token_file " + token + "\n}", 0, "", "admin_token_file without admin", false},
		{"steer zones/ {\n state_dir /var/lib/steerdns\n}", 1, "", "", false},
		{"steer zones/ {\n probe_source 127.0.0.2\n}", 0, "", `"probe_source"`, false},
		{"steer zones/ {\n bogus\n}", 0, "", `unknown option "bogus" (known: admin, admin_token_file, ecs, fallthrough, state_dir)`, false},
		{"steer a/\nsteer b/", 0, "", "only be used once", false},
	} {
		ctl := caddy.NewTestController("dns", c.input)
		cfg, err := parse(ctl)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: error %v, want %q", c.input, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.input, err)
			continue
		}
		if strings.Contains(c.input, "admin_token_file") && cfg.AdminToken != "s3cret" {
			t.Errorf("%q: token %q", c.input, cfg.AdminToken)
		}
		if cfg.IgnoreECS != c.noECS {
			t.Errorf("%q: IgnoreECS %t", c.input, cfg.IgnoreECS)
		}
		if len(cfg.Paths) != c.paths {
			t.Errorf("%q: paths %v", c.input, cfg.Paths)
		}
		for _, p := range cfg.Paths {
			if !filepath.IsAbs(p) {
				t.Errorf("%q: path %s is not absolute", c.input, p)
			}
		}
		if c.through != "" && !cfg.Fall.Through(c.through) {
			t.Errorf("%q: %s does not fall through", c.input, c.through)
		}
		if c.through == "" && cfg.Fall.Through("x.example.com.") {
			t.Errorf("%q: falls through without fallthrough", c.input)
		}
	}

	// Start-up with an invalid policy file fails with the file's errors.
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("zone: example.com.\nns: [ns1.example.com.]\nttl: x\n"), 0o644)
	err := setup(caddy.NewTestController("dns", "steer "+bad))
	if err == nil || !strings.Contains(err.Error(), "bad.yaml:3: ttl: must be a whole number") {
		t.Errorf("invalid file at start-up: %v", err)
	}
}
