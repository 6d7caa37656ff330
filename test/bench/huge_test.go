// Package bench holds the load benchmark of steerdns (run.sh, `make bench`) and, here, the
// measurement of the largest zone the issue names: 100,000 services in one policy file, loaded
// as the server loads it (Provision: read, decode, validate, compile; OnStartup: bind health,
// resolve the metrics, start watching).
package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/steerdns/steerdns/healthcheck"
	"github.com/steerdns/steerdns/plugin/steer"
	"github.com/steerdns/steerdns/zones"
)

// hugePolicy returns a policy file of n services, each with 5 endpoints in 2 pools (4 IPv4 and
// 1 IPv6), policies failover, weighted and multivalue in turn. With check "none" nothing is
// probed; otherwise every service has its own HTTP check, so n*5 distinct (check, target) pairs.
func hugePolicy(n int, check bool) []byte {
	var b strings.Builder
	b.WriteString("zone: big.bench.\nns: [ns1.big.bench.]\nrecords: |\n  ns1 A 127.0.0.1\n")
	if check {
		b.WriteString("checks:\n")
		for i := range n {
			fmt.Fprintf(&b, "  c%d: {type: http, port: 8080, path: /s%d}\n", i, i)
		}
	}
	b.WriteString("services:\n")
	policies := []string{"failover", "weighted", "multivalue"}
	for i := range n {
		c := "none"
		if check {
			c = "c" + strconv.Itoa(i)
		}
		x, y := i/256%256, i%256
		fmt.Fprintf(&b, "  s%d:\n    policy: %s\n    check: %s\n    pools:\n", i, policies[i%3], c)
		fmt.Fprintf(&b, "      - {region: r0, endpoints: [10.%d.%d.1, 10.%d.%d.2, 10.%d.%d.3]}\n", x, y, x, y, x, y)
		fmt.Fprintf(&b, "      - {region: r1, endpoints: [10.%d.%d.4, \"2001:db8::%x:%x:5\"]}\n", x, y, i/65536, i%65536)
	}
	return []byte(b.String())
}

// idle is a Health that probes nothing: every target stays unknown (counted as up), in one
// status cell.
type idle struct{}

var unknown = healthcheck.NewStatus(healthcheck.Unknown)

func (idle) Hold(ts []healthcheck.Target) []*healthcheck.Status {
	out := make([]*healthcheck.Status, len(ts))
	for i := range out {
		out[i] = unknown
	}
	return out
}
func (idle) Release([]string) {}
func (idle) Live(string) (healthcheck.Observation, bool) {
	return healthcheck.Observation{}, false
}
func (idle) Ready() bool { return true }
func (idle) Close()      {}

// TestHugeZone loads 100,000 services (STEER_BIG=1; STEER_BIG_SERVICES=N for another size,
// STEER_BIG_CHECKS=1 for a check per service) the way the server does at start-up and reports
// the time (Provision and OnStartup apart) and the memory; STEER_BIG_HEAPPROFILE=FILE writes
// the heap profile of the loaded server.
//
//	STEER_BIG=1 go test -run TestHugeZone -v ./test/bench
func TestHugeZone(t *testing.T) {
	if os.Getenv("STEER_BIG") != "1" {
		t.Skip("set STEER_BIG=1 to load 100,000 services")
	}
	n := 100_000
	if v := os.Getenv("STEER_BIG_SERVICES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "big.yaml")
	data := hugePolicy(n, os.Getenv("STEER_BIG_CHECKS") == "1")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	size := len(data)
	data = nil
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	hwmBefore := vmHWM(t)

	start := time.Now()
	s := steer.New(steer.Config{Paths: []string{path}})
	if err := s.Provision(func(func(healthcheck.Change)) steer.Health { return idle{} }); err != nil {
		t.Fatal(err)
	}
	provisioned := time.Since(start)
	hwmProvisioned := vmHWM(t)
	if err := s.OnStartup(); err != nil { // publishes: numbers the targets, builds the view, resolves the metrics
		t.Fatal(err)
	}
	defer s.OnShutdown()
	took := time.Since(start)

	var peak runtime.MemStats
	runtime.ReadMemStats(&peak)
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	z := s.Set().Zone("big.bench.")
	if z == nil || len(z.Services) != n {
		t.Fatalf("zone not loaded")
	}
	hwm := vmHWM(t)
	if p := os.Getenv("STEER_BIG_HEAPPROFILE"); p != "" {
		writeHeapProfile(t, p)
	}
	t.Logf("%d services, %d endpoints, %d targets, %.1f MB of YAML: loaded in %v (Provision %v, OnStartup %v); heap in use after GC %.0f MB (before %.0f MB); "+
		"total allocated %.0f MB; peak RSS of the test process %.0f MB (%.0f MB before the load, %.0f MB after Provision)",
		n, 5*n, len(z.Targets), float64(size)/1e6, took.Round(time.Millisecond), provisioned.Round(time.Millisecond),
		(took - provisioned).Round(time.Millisecond), float64(after.HeapInuse)/1e6, float64(before.HeapInuse)/1e6, float64(peak.TotalAlloc-before.TotalAlloc)/1e6, hwm/1e6, hwmBefore/1e6, hwmProvisioned/1e6)
	// A measurement, not an assertion: the targets (under 5 s, under 1 GiB) are judged
	// in RESULTS.md, on figures from a quiet machine.
	runtime.KeepAlive(s)
}

// writeHeapProfile writes the heap profile (what the loaded server holds, after a GC) to path:
// STEER_BIG_HEAPPROFILE=heap.out, then go tool pprof -sample_index=inuse_space.
func writeHeapProfile(t *testing.T, path string) {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		t.Fatal(err)
	}
}

// vmHWM returns the peak resident set size of this process, in bytes.
func vmHWM(t *testing.T) float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb * 1024
		}
	}
	return 0
}

// BenchmarkCompileHuge compiles (zones.Compile only, decoded once beforehand) the policy of
// TestHugeZone: 100,000 services, unchecked or with a check per service (500,000 targets).
// It is slow: run it with STEER_BIG=1 and -benchtime=3x.
func BenchmarkCompileHuge(b *testing.B) {
	if os.Getenv("STEER_BIG") != "1" {
		b.Skip("set STEER_BIG=1 to compile 100,000 services")
	}
	for _, checks := range []bool{false, true} {
		name := "checks=none"
		if checks {
			name = "checks=per-service"
		}
		b.Run(name, func(b *testing.B) {
			pf, err := zones.Decode("big.yaml", hugePolicy(100_000, checks))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				zones.Compile(pf, "hash", 1)
			}
		})
	}
}
