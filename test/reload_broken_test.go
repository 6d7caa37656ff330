package test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestReloadBrokenFiles writes every broken file of the decoder's table (zones/testdata/broken)
// over a serving policy file, one after the other, while a client queries: none changes the
// answers, and a valid file afterwards is served.
func TestReloadBrokenFiles(t *testing.T) {
	broken, err := filepath.Glob("../zones/testdata/broken/*.yaml")
	if err != nil || len(broken) < 25 {
		t.Fatalf("broken files: %d, %v", len(broken), err)
	}
	s, dir := startReload(t, writeInPlace, "192.0.2.1")
	q := startQuerier(t, s.UDP, "www.example.com.")
	for i, b := range broken {
		data, err := os.ReadFile(b)
		if err != nil {
			t.Fatal(err)
		}
		atomicRename(t, dir, string(data))
		// A valid change to the other zone, served, proves the broken file has been read.
		want := []string{"192.0.2." + []string{"200", "201"}[i%2]}
		writeFile(t, dir, "example.net.yaml", reloadPolicy("example.net.", want[0]))
		eventually(t, 2*time.Second, "the other zone's change after "+filepath.Base(b), func() bool {
			return slices.Equal(wwwAnswer(t, s, "example.net."), want)
		})
		if got := wwwAnswer(t, s, "example.com."); !slices.Equal(got, []string{"192.0.2.1"}) {
			t.Fatalf("after %s: www.example.com. answers %v", filepath.Base(b), got)
		}
	}
	atomicRename(t, dir, reloadPolicy("example.com.", "192.0.2.2"))
	eventually(t, 2*time.Second, "the fixed file", func() bool {
		return slices.Equal(wwwAnswer(t, s, "example.com."), []string{"192.0.2.2"})
	})
	q.check(t)
}
