package zones

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// policyText is a small valid policy file for origin whose service www answers ip.
func policyText(origin, ip string) string {
	return fmt.Sprintf(`zone: %s
ns: [ns1.%s]
records: |
  ns1 A 192.0.2.53
services:
  www:
    pools:
      - endpoints: [%s]
`, origin, origin, ip)
}

// putFile writes a file with a modification time of mtime (the zero time: now).
func putFile(t *testing.T, path, content string, mtime time.Time) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if !mtime.IsZero() {
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
}

// wwwAddress returns the first address of service www of the zone origin in set, or "".
func wwwAddress(set *Set, origin string) string {
	z := set.Zone(origin)
	if z == nil {
		return ""
	}
	s := z.Service("www." + origin)
	if s == nil {
		return ""
	}
	return s.Pools[0].Endpoints[0].Address
}

func fileState(t *testing.T, set *Set, path string) FileState {
	t.Helper()
	for _, f := range set.Files {
		if f.Path == path {
			return f
		}
	}
	t.Fatalf("no file state for %s in %+v", path, set.Files)
	return FileState{}
}

func noErrors(t *testing.T, res Result) {
	t.Helper()
	for _, err := range res.Errors {
		t.Errorf("unexpected error: %v", err)
	}
}

var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func TestLoaderTwoZones(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yml")
	putFile(t, a, policyText("a.example.", "192.0.2.1"), time.Time{})
	putFile(t, b, policyText("b.example.", "192.0.2.2"), time.Time{})
	putFile(t, filepath.Join(dir, "README.md"), "not a policy file", time.Time{})
	l := NewLoader([]string{dir})

	res := l.Load(t0)
	noErrors(t, res)
	if res.Reloads != 2 || !res.Changed {
		t.Errorf("reloads %d changed %v, want 2 true", res.Reloads, res.Changed)
	}
	set := res.Set
	if zs := set.Zones(); len(zs) != 2 || zs[0].Origin != "a.example." || zs[1].Origin != "b.example." {
		t.Fatalf("zones = %v", zs)
	}
	if wwwAddress(set, "a.example.") != "192.0.2.1" || wwwAddress(set, "b.example.") != "192.0.2.2" {
		t.Errorf("www of a %q, of b %q", wwwAddress(set, "a.example."), wwwAddress(set, "b.example."))
	}
	if z := set.Match("x.www.b.example."); z == nil || z.Origin != "b.example." || z.Path != b {
		t.Errorf("Match(x.www.b.example.) = %v", z)
	}
	if z := set.Match("c.example."); z != nil {
		t.Errorf("Match(c.example.) = %s", z.Origin)
	}
	if len(set.Files) != 2 {
		t.Fatalf("files = %+v", set.Files)
	}
	for _, f := range set.Files {
		if f.Err != nil || f.Zone == "" || f.Serial == 0 || !f.Loaded.Equal(t0) {
			t.Errorf("file state %+v", f)
		}
	}
	if f := fileState(t, set, a); f.Zone != "a.example." || f.Serial != uint32(t0.Unix()) {
		t.Errorf("a: %+v, want serial %d", f, t0.Unix())
	}

	// The same content again: nothing compiles, nothing changes.
	res2 := l.Load(t0.Add(time.Minute))
	noErrors(t, res2)
	if res2.Reloads != 0 || res2.Changed {
		t.Errorf("reloads %d changed %v, want 0 false", res2.Reloads, res2.Changed)
	}
	if res2.Set.Zone("a.example.") != set.Zone("a.example.") {
		t.Error("an unchanged file was compiled again")
	}
}

func TestLoaderRemoveFile(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	putFile(t, a, policyText("a.example.", "192.0.2.1"), time.Time{})
	putFile(t, b, policyText("b.example.", "192.0.2.2"), time.Time{})
	l := NewLoader([]string{dir})
	noErrors(t, l.Load(t0))

	if err := os.Remove(b); err != nil {
		t.Fatal(err)
	}
	res := l.Load(t0.Add(time.Second))
	noErrors(t, res)
	if !res.Changed || res.Set.Zone("b.example.") != nil || res.Set.Zone("a.example.") == nil {
		t.Errorf("changed %v zones %v", res.Changed, res.Set.Zones())
	}
	if len(res.Set.Files) != 1 || res.Set.Files[0].Path != a {
		t.Errorf("files = %+v", res.Set.Files)
	}

	// The file comes back: its zone too.
	putFile(t, b, policyText("b.example.", "192.0.2.2"), time.Time{})
	res = l.Load(t0.Add(2 * time.Second))
	noErrors(t, res)
	if res.Set.Zone("b.example.") == nil || !res.Changed {
		t.Errorf("b is not back: %v", res.Set.Zones())
	}
}

func TestLoaderMissingPath(t *testing.T) {
	dir := t.TempDir()
	l := NewLoader([]string{filepath.Join(dir, "nope"), filepath.Join(dir, "nope.yaml")})
	res := l.Load(t0)
	if len(res.Errors) != 2 || !errors.Is(res.Errors[0], ErrNoPath) || !errors.Is(res.Errors[1], ErrNoPath) {
		t.Errorf("errors = %v", res.Errors)
	}
	if len(res.Set.Zones()) != 0 {
		t.Errorf("zones = %v", res.Set.Zones())
	}
}

func TestLoaderSingleFile(t *testing.T) {
	// A path that is a file is loaded whatever its name.
	p := filepath.Join(t.TempDir(), "zone.conf")
	putFile(t, p, policyText("a.example.", "192.0.2.1"), time.Time{})
	res := NewLoader([]string{p}).Load(t0)
	noErrors(t, res)
	if res.Set.Zone("a.example.") == nil {
		t.Error("a file named on its own is not loaded")
	}
}

func TestLoaderBrokenKeepsLastGood(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.yaml")
	putFile(t, a, policyText("a.example.", "192.0.2.1"), time.Time{})
	l := NewLoader([]string{dir})
	res := l.Load(t0)
	noErrors(t, res)
	good := res.Set.Zone("a.example.")

	// A broken version: the last good zone keeps serving, the error is reported once.
	putFile(t, a, strings.Replace(policyText("a.example.", "192.0.2.9"), "pools:", "poolz:", 1), time.Time{})
	res = l.Load(t0.Add(time.Second))
	if len(res.Errors) != 1 {
		t.Fatalf("errors = %v, want one", res.Errors)
	}
	var es Errors
	if !errors.As(res.Errors[0], &es) || es[0].File != a || es[0].Line != 7 || es[0].Path != "services.www.poolz" {
		t.Errorf("error = %v", res.Errors[0])
	}
	if res.Reloads != 0 || res.Changed {
		t.Errorf("reloads %d changed %v, want 0 false", res.Reloads, res.Changed)
	}
	if res.Set.Zone("a.example.") != good || wwwAddress(res.Set, "a.example.") != "192.0.2.1" {
		t.Error("the last good version does not serve")
	}
	f := fileState(t, res.Set, a)
	if f.Err == nil || f.Zone != "a.example." || f.Serial != good.Serial || !f.Loaded.Equal(t0) {
		t.Errorf("file state %+v", f)
	}

	// The same broken content again: not reported again, still in error.
	res = l.Load(t0.Add(2 * time.Second))
	noErrors(t, res)
	if f := fileState(t, res.Set, a); f.Err == nil {
		t.Error("the file's error is forgotten")
	}
	if res.Set.Zone("a.example.") != good {
		t.Error("the last good version does not serve")
	}

	// Another broken content is a new error.
	putFile(t, a, "zone: a.example.\n", time.Time{})
	res = l.Load(t0.Add(3 * time.Second))
	if len(res.Errors) != 1 || !strings.Contains(res.Errors[0].Error(), "ns: required") {
		t.Errorf("errors = %v", res.Errors)
	}

	// Fixed: the new version serves, the error is gone.
	putFile(t, a, policyText("a.example.", "192.0.2.7"), time.Time{})
	res = l.Load(t0.Add(4 * time.Second))
	noErrors(t, res)
	if res.Reloads != 1 || !res.Changed || wwwAddress(res.Set, "a.example.") != "192.0.2.7" {
		t.Errorf("reloads %d changed %v www %s", res.Reloads, res.Changed, wwwAddress(res.Set, "a.example."))
	}
	f = fileState(t, res.Set, a)
	if f.Err != nil || f.Serial <= good.Serial || !f.Loaded.Equal(t0.Add(4*time.Second)) {
		t.Errorf("file state %+v, serial was %d", f, good.Serial)
	}
}

func TestLoaderBrokenFromTheStart(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.yaml")
	putFile(t, a, "zone: a.example.\nns: ns1.a.example.\n", time.Time{})
	l := NewLoader([]string{dir})
	res := l.Load(t0)
	if len(res.Errors) != 1 || res.Set.Zone("a.example.") != nil {
		t.Fatalf("errors %v zones %v", res.Errors, res.Set.Zones())
	}
	if f := fileState(t, res.Set, a); f.Err == nil || f.Zone != "" || f.Serial != 0 {
		t.Errorf("file state %+v", f)
	}
	putFile(t, a, policyText("a.example.", "192.0.2.1"), time.Time{})
	res = l.Load(t0.Add(time.Second))
	noErrors(t, res)
	if res.Set.Zone("a.example.") == nil {
		t.Error("the fixed file does not serve")
	}
}

// TestLoaderBrokenTestdata: every file of testdata/broken, as a new version of a good file,
// leaves the good version serving and reports one error that names the file.
func TestLoaderBrokenTestdata(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(brokenDir, "*.yaml"))
	dir := t.TempDir()
	p := filepath.Join(dir, "zone.yaml")
	good := policyText("example.com.", "192.0.2.1")
	putFile(t, p, good, time.Time{})
	l := NewLoader([]string{dir})
	noErrors(t, l.Load(t0))
	for i, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		putFile(t, p, string(data), time.Time{})
		res := l.Load(t0.Add(time.Duration(i) * time.Second))
		if len(res.Errors) != 1 || !strings.HasPrefix(res.Errors[0].Error(), p+":") {
			t.Errorf("%s: errors = %v", f, res.Errors)
		}
		if wwwAddress(res.Set, "example.com.") != "192.0.2.1" {
			t.Errorf("%s: the good version does not serve", f)
		}
	}
}

func TestLoaderSameZoneTwoFiles(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	putFile(t, b, policyText("x.example.", "192.0.2.1"), time.Time{})
	l := NewLoader([]string{dir})
	res := l.Load(t0)
	noErrors(t, res)

	// a.yaml claims the same zone; its name sorts first and its modification time is older
	// (copied with cp -p, say), yet b.yaml served the zone first and keeps it.
	putFile(t, a, policyText("x.example.", "192.0.2.2"), t0.Add(-time.Hour))
	res = l.Load(t0.Add(time.Second))
	if len(res.Errors) != 1 || res.Errors[0].Error() != a+": zone x.example. is already served from "+b {
		t.Errorf("errors = %v", res.Errors)
	}
	if z := res.Set.Zone("x.example."); z == nil || z.Path != b || wwwAddress(res.Set, "x.example.") != "192.0.2.1" {
		t.Fatalf("x.example. is served from %v", z)
	}
	if f := fileState(t, res.Set, a); f.Err == nil || f.Zone != "" {
		t.Errorf("a: %+v", f)
	}
	if f := fileState(t, res.Set, b); f.Err != nil || f.Zone != "x.example." {
		t.Errorf("b: %+v", f)
	}

	// Reported once.
	res = l.Load(t0.Add(2 * time.Second))
	noErrors(t, res)
	if f := fileState(t, res.Set, a); f.Err == nil {
		t.Error("a is no longer in error")
	}

	// Both change, a newer than b: b still serves.
	putFile(t, b, policyText("x.example.", "192.0.2.3"), t0.Add(3*time.Second))
	putFile(t, a, policyText("x.example.", "192.0.2.4"), t0.Add(4*time.Second))
	res = l.Load(t0.Add(5 * time.Second))
	if len(res.Errors) != 0 && (len(res.Errors) != 1 || !strings.Contains(res.Errors[0].Error(), "already served from "+b)) {
		t.Errorf("errors = %v", res.Errors)
	}
	if z := res.Set.Zone("x.example."); z == nil || z.Path != b || wwwAddress(res.Set, "x.example.") != "192.0.2.3" {
		t.Fatalf("x.example. is served from %v", z)
	}
	served := res.Set.Zone("x.example.").Serial

	// b goes: a takes the zone over, its error clears, and the serial rises.
	if err := os.Remove(b); err != nil {
		t.Fatal(err)
	}
	res = l.Load(t0.Add(6 * time.Second))
	noErrors(t, res)
	z := res.Set.Zone("x.example.")
	if z == nil || z.Path != a || wwwAddress(res.Set, "x.example.") != "192.0.2.4" || !res.Changed {
		t.Fatalf("x.example. is served from %v", z)
	}
	if f := fileState(t, res.Set, a); f.Err != nil || f.Zone != "x.example." {
		t.Errorf("a: %+v", f)
	}
	if z.Serial <= served || z.Static.Apex.SOA.Serial != z.Serial {
		t.Errorf("serial %d (SOA %d) after %d", z.Serial, z.Static.Apex.SOA.Serial, served)
	}
}

// TestLoaderSameZoneFirstLoad: two files that claim one zone in the first load: the older
// file keeps it.
func TestLoaderSameZoneFirstLoad(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	putFile(t, a, policyText("x.example.", "192.0.2.1"), t0)
	putFile(t, b, policyText("x.example.", "192.0.2.2"), t0.Add(-time.Minute))
	res := NewLoader([]string{dir}).Load(t0)
	if len(res.Errors) != 1 || !strings.HasPrefix(res.Errors[0].Error(), a+": zone x.example. is already served from "+b) {
		t.Errorf("errors = %v", res.Errors)
	}
	if z := res.Set.Zone("x.example."); z == nil || z.Path != b {
		t.Errorf("x.example. is served from %v", z)
	}
}

func TestLoaderSerial(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.yaml")
	putFile(t, a, policyText("a.example.", "192.0.2.1"), time.Time{})
	l := NewLoader([]string{dir})
	serial := func(now time.Time) uint32 {
		t.Helper()
		res := l.Load(now)
		noErrors(t, res)
		z := res.Set.Zone("a.example.")
		if z.Static.Apex.SOA.Serial != z.Serial {
			t.Fatalf("SOA serial %d, zone serial %d", z.Static.Apex.SOA.Serial, z.Serial)
		}
		return z.Serial
	}
	s1 := serial(t0)
	if s1 != uint32(t0.Unix()) {
		t.Errorf("first serial %d, want the load time %d", s1, t0.Unix())
	}
	// Unchanged content: the serial stays.
	if s := serial(t0.Add(time.Hour)); s != s1 {
		t.Errorf("unchanged content: serial %d, want %d", s, s1)
	}
	// Two changes within one second: the serial rises each time.
	putFile(t, a, policyText("a.example.", "192.0.2.2"), time.Time{})
	s2 := serial(t0.Add(time.Hour + 100*time.Millisecond))
	putFile(t, a, policyText("a.example.", "192.0.2.3"), time.Time{})
	s3 := serial(t0.Add(time.Hour + 200*time.Millisecond))
	if s2 <= s1 || s3 <= s2 {
		t.Errorf("serials %d %d %d do not rise", s1, s2, s3)
	}
	// Back to an earlier content: still a new, higher serial.
	putFile(t, a, policyText("a.example.", "192.0.2.1"), time.Time{})
	s4 := serial(t0.Add(time.Hour + 300*time.Millisecond))
	if s4 <= s3 {
		t.Errorf("serial %d after %d", s4, s3)
	}
	// A clock that goes back does not lower the serial.
	putFile(t, a, policyText("a.example.", "192.0.2.5"), time.Time{})
	if s5 := serial(t0.Add(-24 * time.Hour)); s5 <= s4 {
		t.Errorf("serial %d after %d with the clock back", s5, s4)
	}
	// A broken version in between does not count.
	putFile(t, a, "zone: a.example.\n", time.Time{})
	l.Load(t0.Add(2 * time.Hour))
	before := l.Load(t0.Add(2 * time.Hour)).Set.Zone("a.example.").Serial
	putFile(t, a, policyText("a.example.", "192.0.2.6"), time.Time{})
	if s := serial(t0.Add(2 * time.Hour)); s <= before {
		t.Errorf("serial %d after %d", s, before)
	}

	// An explicit serial is used as written.
	putFile(t, a, strings.Replace(policyText("a.example.", "192.0.2.1"), "records:", "soa: {serial: 2024050101}\nrecords:", 1), time.Time{})
	if s := serial(t0.Add(3 * time.Hour)); s != 2024050101 {
		t.Errorf("explicit serial: %d", s)
	}
}

// TestLoaderSerialRemovedAndBack: a zone that goes away and comes back (a rename, say) does
// not go back in serial.
func TestLoaderSerialRemovedAndBack(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	putFile(t, a, policyText("a.example.", "192.0.2.1"), time.Time{})
	l := NewLoader([]string{dir})
	s1 := l.Load(t0).Set.Zone("a.example.").Serial
	if err := os.Rename(a, b); err != nil {
		t.Fatal(err)
	}
	res := l.Load(t0)
	noErrors(t, res)
	z := res.Set.Zone("a.example.")
	if z == nil || z.Path != b || z.Serial <= s1 {
		t.Errorf("after a rename: %v, serial was %d", z, s1)
	}
}

func TestLoaderIgnoresTemporaryFiles(t *testing.T) {
	dir := t.TempDir()
	putFile(t, filepath.Join(dir, "app.yaml"), policyText("a.example.", "192.0.2.1"), time.Time{})
	broken := "zone: [\n"
	for _, name := range []string{".app.yaml", "app.yaml~", "app.yaml.swp", ".app.yaml.swp", "app.swp",
		"#app.yaml#", ".#app.yaml", "4913", "app.yaml.bak", "app.json", "notes.txt", "..data"} {
		putFile(t, filepath.Join(dir, name), broken, time.Time{})
	}
	if err := os.Mkdir(filepath.Join(dir, "sub.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	res := NewLoader([]string{dir}).Load(t0)
	noErrors(t, res)
	if len(res.Set.Files) != 1 || res.Set.Zone("a.example.") == nil {
		t.Errorf("files = %+v", res.Set.Files)
	}
}

func TestIsPolicyFile(t *testing.T) {
	for name, want := range map[string]bool{
		"a.yaml": true, "a.yml": true, "example.com.yaml": true, "a.YAML": false,
		".a.yaml": false, "a.yaml~": false, "a.swp": false, "#a.yaml#": false, ".#a.yaml": false,
		"..data": false, "a.json": false, "yaml": false, "a.yaml.tmp": false,
	} {
		if got := IsPolicyFile(name); got != want {
			t.Errorf("IsPolicyFile(%q) = %v, want %v", name, got, want)
		}
	}
}

// TestLoaderConfigMap: a folder laid out as Kubernetes mounts a ConfigMap, where each file
// is a symlink through ..data to a timestamped folder, loads, and a swap of ..data is seen.
func TestLoaderConfigMap(t *testing.T) {
	dir := t.TempDir()
	publish := func(stamp, content string) {
		t.Helper()
		ts := filepath.Join(dir, stamp)
		if err := os.Mkdir(ts, 0o755); err != nil {
			t.Fatal(err)
		}
		putFile(t, filepath.Join(ts, "app.yaml"), content, time.Time{})
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(stamp, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	publish("..2024_01_01_00_00_00.1", policyText("a.example.", "192.0.2.1"))
	if err := os.Symlink(filepath.Join("..data", "app.yaml"), filepath.Join(dir, "app.yaml")); err != nil {
		t.Fatal(err)
	}
	l := NewLoader([]string{dir})
	res := l.Load(t0)
	noErrors(t, res)
	if len(res.Set.Files) != 1 || res.Set.Files[0].Path != filepath.Join(dir, "app.yaml") || wwwAddress(res.Set, "a.example.") != "192.0.2.1" {
		t.Fatalf("files %+v", res.Set.Files)
	}

	publish("..2024_01_01_00_00_00.2", policyText("a.example.", "192.0.2.2"))
	if err := os.RemoveAll(filepath.Join(dir, "..2024_01_01_00_00_00.1")); err != nil {
		t.Fatal(err)
	}
	res = l.Load(t0.Add(time.Second))
	noErrors(t, res)
	if wwwAddress(res.Set, "a.example.") != "192.0.2.2" || res.Reloads != 1 {
		t.Errorf("after the swap: www %s, reloads %d", wwwAddress(res.Set, "a.example."), res.Reloads)
	}
}

func TestLoaderUnreadableFile(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads every file")
	}
	dir := t.TempDir()
	a := filepath.Join(dir, "a.yaml")
	putFile(t, a, policyText("a.example.", "192.0.2.1"), time.Time{})
	l := NewLoader([]string{dir})
	noErrors(t, l.Load(t0))
	if err := os.Chmod(a, 0); err != nil {
		t.Fatal(err)
	}
	res := l.Load(t0.Add(time.Second))
	if len(res.Errors) != 1 || !strings.Contains(res.Errors[0].Error(), "cannot read") || res.Set.Zone("a.example.") == nil {
		t.Errorf("errors %v zones %v", res.Errors, res.Set.Zones())
	}
	if res = l.Load(t0.Add(2 * time.Second)); len(res.Errors) != 0 {
		t.Errorf("reported again: %v", res.Errors)
	}
}

func TestSetMatch(t *testing.T) {
	dir := t.TempDir()
	putFile(t, filepath.Join(dir, "a.yaml"), policyText("example.com.", "192.0.2.1"), time.Time{})
	putFile(t, filepath.Join(dir, "b.yaml"), policyText("sub.example.com.", "192.0.2.2"), time.Time{})
	set := NewLoader([]string{dir}).Load(t0).Set
	for q, want := range map[string]string{
		"example.com.": "example.com.", "www.example.com.": "example.com.", "sub.example.com.": "sub.example.com.",
		"a.b.sub.example.com.": "sub.example.com.", "xsub.example.com.": "example.com.", "com.": "", ".": "",
		`a\.sub.example.com.`: "example.com.", "example.org.": "",
	} {
		got := ""
		if z := set.Match(q); z != nil {
			got = z.Origin
		}
		if got != want {
			t.Errorf("Match(%q) = %q, want %q", q, got, want)
		}
	}
	var none *Set
	if none.Match("example.com.") != nil {
		t.Error("a nil set matches")
	}
}
