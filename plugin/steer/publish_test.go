package steer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/steerdns/steerdns/healthcheck"
)

// holdRecorder is a drivenHealth that keeps the slices Hold was given.
type holdRecorder struct {
	*drivenHealth
	held [][]healthcheck.Target
}

func (h *holdRecorder) Hold(ts []healthcheck.Target) []*healthcheck.Status {
	h.held = append(h.held, ts)
	return h.drivenHealth.Hold(ts)
}

// TestHoldTargets: a zone whose targets are all new is given to Hold as its own Targets, not
// copied; a reload that adds a target gives Hold that one alone.
func TestHoldTargets(t *testing.T) {
	p := filepath.Join(t.TempDir(), "zone.yaml")
	if err := os.WriteFile(p, []byte(overrideZone), 0o644); err != nil {
		t.Fatal(err)
	}
	s := New(Config{Paths: []string{p}})
	h := &holdRecorder{drivenHealth: newDriven()}
	if err := s.Provision(func(onChange func(healthcheck.Change)) Health {
		h.onChange = onChange
		return h
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.OnStartup(); err != nil {
		t.Fatal(err)
	}
	defer s.OnShutdown()
	z := s.Set().Zone("example.com.")
	if len(h.held) != 1 || len(h.held[0]) != len(z.Targets) || &h.held[0][0] != &z.Targets[0] {
		t.Fatalf("Hold was given %d slices, the first of %d targets; the zone has %d", len(h.held), len(h.held[0]), len(z.Targets))
	}
	grown := strings.Replace(overrideZone, "[192.0.2.1, 192.0.2.2]", "[192.0.2.1, 192.0.2.2, 192.0.2.3]", 1)
	if err := os.WriteFile(p, []byte(grown), 0o644); err != nil {
		t.Fatal(err)
	}
	s.Reload()
	if len(h.held) != 2 || len(h.held[1]) != 1 || h.held[1][0].Address != "192.0.2.3" {
		t.Fatalf("after the reload, Hold was given %v", h.held[1:])
	}
}
