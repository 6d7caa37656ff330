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
	key16 := filepath.Join(dir, "key16")
	os.WriteFile(key16, []byte("MDEyMzQ1Njc4OWFiY2RlZg==\n"), 0o600)
	key5 := filepath.Join(dir, "key5")
	os.WriteFile(key5, []byte("aGVsbG8=\n"), 0o600)
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
		{"steer zones/ {\n probe_source 127.0.0.2\n}", 1, "", "", false},
		{"steer zones/ {\n probe_source 127.0.0\n}", 0, "", `probe_source "127.0.0" is not an IP address`, false},
		{"steer zones/ {\n probe_source\n}", 0, "", "probe_source takes one IP address", false},
		{"steer zones/ {\n cluster {\n name a\n bind 127.0.0.1:7946\n join 127.0.0.2:7946 seed.example:7946\n quorum any\n }\n}", 1, "", "", false},
		{"steer zones/ {\n cluster {\n }\n ecs off\n}", 1, "", "", true},
		{"steer zones/ {\n cluster\n}", 0, "", "cluster takes a block", false},
		{"steer zones/ {\n cluster {\n bind 192.0.2.1:7946\n }\n}", 0, "", "bind 192.0.2.1:7946 is not a loopback address: set secret_file", false},
		{"steer zones/ {\n cluster {\n bind seed:7946\n }\n}", 0, "", `bind "seed:7946" is not IP:PORT`, false},
		{"steer zones/ {\n cluster {\n join seed\n }\n}", 0, "", `join "seed" is not HOST:PORT`, false},
		{"steer zones/ {\n cluster {\n quorum most\n }\n}", 0, "", `cluster: quorum: quorum "most" is not any, majority`, false},
		{"steer zones/ {\n cluster {\n secret_file " + token + "\n }\n}", 0, "", "is not base64", false},
		{"steer zones/ {\n cluster {\n secret_file " + key16 + "\n bind 192.0.2.1:7946\n }\n}", 1, "", "", false},
		{"steer zones/ {\n cluster {\n secret_file " + key5 + "\n }\n}", 0, "", "holds 5 bytes; a key is 16, 24 or 32", false},
		{"steer zones/ {\n cluster {\n nmae a\n }\n}", 0, "", `cluster: unknown option "nmae"`, false},
		{"steer zones/ {\n cluster {\n name a\n", 0, "", "cluster block is not closed", false},
		{"steer zones/ {\n bogus\n}", 0, "", `unknown option "bogus" (known: admin, admin_token_file, cluster, ecs, fallthrough, probe_source, state_dir)`, false},
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
