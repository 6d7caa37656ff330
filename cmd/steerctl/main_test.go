package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
		{[]string{"help", "drain"}, 0, "Not built yet", ""},
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
		{[]string{"status"}, 2, "", "steerctl: status: the admin API is not built yet\n"},
		{[]string{"explain", "www.example.com.", "AAAA"}, 2, "", "steerctl: explain: the admin API is not built yet\n"},
		{[]string{"drain", "example.com.", "www"}, 2, "", "steerctl: drain: the admin API is not built yet\n"},
		{[]string{"undrain", "1"}, 2, "", "steerctl: undrain: the admin API is not built yet\n"},
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
		if !strings.Contains(out, fmt.Sprintf("\n  %-8s ", c.name)) {
			t.Errorf("help does not list %s:\n%s", c.name, out)
		}
		if !strings.HasPrefix(c.help, "Usage: steerctl "+c.name) {
			t.Errorf("help of %s does not start with its usage", c.name)
		}
	}
}
