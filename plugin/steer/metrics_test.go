package steer

import (
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/steerdns/steerdns/healthcheck"
	"github.com/steerdns/steerdns/zones"
)

func counterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestMetricsLint(t *testing.T) {
	s, h := newTestSteer(t, policyZone)
	instances.add(s)
	t.Cleanup(func() { instances.remove(s) })
	h.set(t, healthcheck.Down, "192.0.2.1")
	ask(t, s, "fo.example.com.", dns.TypeA, "")
	recordProbe("http", 0.01, "timeout")
	recordLoad(zones.Result{Reloads: 1})

	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var ours []*dto.MetricFamily
	names := map[string]bool{}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "coredns_steer_") {
			ours = append(ours, mf)
			names[mf.GetName()] = true
		}
	}
	for _, want := range []string{"coredns_steer_endpoint_up", "coredns_steer_pool_healthy", "coredns_steer_answers_total",
		"coredns_steer_check_duration_seconds", "coredns_steer_check_failures_total", "coredns_steer_transitions_total",
		"coredns_steer_reloads_total", "coredns_steer_policy_files", "coredns_steer_overrides", "coredns_steer_probes_in_flight",
		"coredns_steer_probes_limited", "coredns_steer_probe_fds", "coredns_steer_probe_connections_shed_total"} {
		if !names[want] {
			t.Errorf("metric %s is missing", want)
		}
	}
	problems, err := promlint.NewWithMetricFamilies(ours).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}
