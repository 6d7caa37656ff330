package test

import (
	"fmt"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// metricValue scrapes url and returns the value of the sample whose name and labels are
// exactly sample (as written in the exposition format), or -1 when absent.
func metricValue(t *testing.T, url, sample string) float64 {
	t.Helper()
	_, body := httpGet(url)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestReloadErrorsCounted: a rejected policy file is counted once in reloads_total{result=
// "error"} and shows in policy_files{state="error"} until it is fixed.
func TestReloadErrorsCounted(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "example.com.yaml", reloadPolicy("example.com.", "192.0.2.1"))
	port := freePort(t)
	start(t, fmt.Sprintf(". {\n bind 127.0.0.1\n steer %s\n prometheus 127.0.0.1:%d\n}", dir, port))
	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	errors := func() float64 { return max(0, metricValue(t, url, `coredns_steer_reloads_total{result="error"}`)) }
	eventually(t, 5*time.Second, "the metrics", func() bool {
		return metricValue(t, url, `coredns_steer_policy_files{state="loaded"}`) >= 1
	})
	before := errors()
	// Renamed into place, so that no half-written file is read and counted too.
	atomicRename(t, dir, "zone: example.com.\nns: [ns1.example.com.]\nttl: soon\n")
	eventually(t, 3*time.Second, "the file in error", func() bool {
		return metricValue(t, url, `coredns_steer_policy_files{state="error"}`) == 1
	})
	if got := errors() - before; got != 1 {
		t.Errorf("reloads_total{result=\"error\"} rose by %v, want 1", got)
	}
	atomicRename(t, dir, reloadPolicy("example.com.", "192.0.2.2"))
	eventually(t, 3*time.Second, "the file fixed", func() bool {
		return metricValue(t, url, `coredns_steer_policy_files{state="error"}`) == 0
	})
}
