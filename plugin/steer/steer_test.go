package steer

import (
	"os"
	"testing"
)

// TestReloadPublishesChangesOnly: a reload that changes nothing keeps the served value; a
// changed file, or a file that turns bad, publishes a new one.
func TestReloadPublishesChangesOnly(t *testing.T) {
	s, _ := newTestSteer(t, policyZone)
	before := s.snap.Load()
	s.Reload()
	if s.snap.Load() != before {
		t.Error("a reload with nothing changed published anew")
	}
	path := s.cfg.Paths[0]
	if err := os.WriteFile(path, []byte(policyZone+"  extra:\n    pools:\n      - endpoints: [192.0.2.77]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.Reload()
	after := s.snap.Load()
	if after == before || after.set.Zone("example.com.").Service("extra.example.com.") == nil {
		t.Fatal("a changed file was not published")
	}
	if err := os.WriteFile(path, []byte("zone: example.com.\nttl: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.Reload()
	bad := s.snap.Load()
	if bad == after || bad.set.Files[0].Err == nil {
		t.Fatal("a file that turned bad was not published in error")
	}
	if bad.set.Zone("example.com.").Service("extra.example.com.") == nil {
		t.Error("the last good version stopped serving")
	}
}
