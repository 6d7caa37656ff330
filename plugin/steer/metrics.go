package steer

import (
	"sync/atomic"

	"github.com/coredns/coredns/plugin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/steerdns/steerdns/zones"
)

const subsystem = "steer"

var (
	answersTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: subsystem,
		Name:      "answers_total",
		Help:      "Answers at steered names, by how they came about (primary, failover, fail_open, fallback, nodata, servfail).",
	}, []string{"zone", "service", "outcome"})

	transitionsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: subsystem,
		Name:      "transitions_total",
		Help:      "Endpoint health state changes, by the state entered.",
	}, []string{"zone", "region", "to"})

	checkDuration = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: plugin.Namespace,
		Subsystem: subsystem,
		Name:      "check_duration_seconds",
		Help:      "Duration of health probes.",
		Buckets:   []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"type"})

	checkFailures = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: subsystem,
		Name:      "check_failures_total",
		Help:      "Failed health probes, by check type and reason (timeout, refused, reset, status, body, tls, dns, grpc, other).",
	}, []string{"type", "reason"})

	reloadsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: subsystem,
		Name:      "reloads_total",
		Help:      "Policy file loads, by result (success, error).",
	}, []string{"result"})

	stateErrors = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: subsystem,
		Name:      "state_errors_total",
		Help:      "Failed reads and writes of state_dir files, by file and operation (read, write); serving goes on.",
	}, []string{"file", "op"})

	overridesDesc = prometheus.NewDesc(plugin.Namespace+"_"+subsystem+"_overrides",
		"Active operator overrides, by action (drain, force-up).",
		[]string{"action"}, nil)
	overrideAgeDesc = prometheus.NewDesc(plugin.Namespace+"_"+subsystem+"_override_oldest_seconds",
		"Age of the oldest active override, 0 when there is none: an alert can catch a drain left behind.",
		nil, nil)

	probesInFlightDesc = prometheus.NewDesc(plugin.Namespace+"_"+subsystem+"_probes_in_flight",
		"Health probes running now, and (bound) the most the checker lets run at once: what the targets need, within the file descriptor and memory limits.",
		[]string{"kind"}, nil)
	probesLimitedDesc = prometheus.NewDesc(plugin.Namespace+"_"+subsystem+"_probes_limited",
		"1 while a limit holds health probes back (every target's interval stretches alike), by limit: fds, memory, max_in_flight.",
		[]string{"limit"}, nil)

	probeFDsDesc = prometheus.NewDesc(plugin.Namespace+"_"+subsystem+"_probe_fds",
		"File descriptors of the health probes: in_use (probes running and connections kept), kept (connections kept between probes, idle or held) and budget (the most they may hold: seven eighths of RLIMIT_NOFILE).",
		[]string{"kind"}, nil)
	probeConnsShedDesc = prometheus.NewDesc(plugin.Namespace+"_"+subsystem+"_probe_connections_shed_total",
		"Probe connections closed, or not kept, because the probes held their whole file descriptor budget: each costs its target a new connection at its next probe.",
		nil, nil)

	clusterMembersDesc = prometheus.NewDesc(plugin.Namespace+"_"+subsystem+"_cluster_members",
		"Members of the cluster as this node sees them (itself included), by state: alive, suspect, dead.",
		[]string{"state"}, nil)
	clusterViewDesc = prometheus.NewDesc(plugin.Namespace+"_"+subsystem+"_cluster_view",
		"1 for the mode this node serves in: cluster (the quorum of fresh observations) or local (cut off: its own probes).",
		[]string{"mode"}, nil)
	gossipMessagesDesc = prometheus.NewDesc(plugin.Namespace+"_"+subsystem+"_gossip_messages_total",
		"steerdns gossip messages (observations, beats, states, overrides; not memberlist's own), by direction: in, out.",
		[]string{"direction"}, nil)
	gossipBytesDesc = prometheus.NewDesc(plugin.Namespace+"_"+subsystem+"_gossip_sent_bytes_total",
		"Bytes this node sent to its peers, memberlist's own traffic included.",
		nil, nil)

	endpointUpDesc = prometheus.NewDesc(plugin.Namespace+"_"+subsystem+"_endpoint_up",
		"Whether an endpoint is in the answers: 1 up or not yet checked, 0 down.",
		[]string{"zone", "service", "region", "endpoint"}, nil)
	poolHealthyDesc = prometheus.NewDesc(plugin.Namespace+"_"+subsystem+"_pool_healthy",
		"Whether a pool has at least min_healthy endpoints up.",
		[]string{"zone", "service", "region"}, nil)
	policyFilesDesc = prometheus.NewDesc(plugin.Namespace+"_"+subsystem+"_policy_files",
		"Policy files by state: loaded (the current content serves) or error (the last good version, if any, serves).",
		[]string{"state"}, nil)
)

// serviceCounters holds a service's answer counters. Each is made on the service's first
// answer with that outcome: made up front, six per service cost hundreds of megabytes at
// 100,000 services. The query path pays one atomic load.
type serviceCounters struct {
	zone, service string
	outcome       [numOutcomes]atomic.Pointer[prometheus.Counter]
}

// count adds one answer with outcome o.
func (c *serviceCounters) count(o outcome) {
	if p := c.outcome[o].Load(); p != nil {
		(*p).Inc()
		return
	}
	ctr := answersTotal.WithLabelValues(c.zone, c.service, o.String())
	c.outcome[o].Store(&ctr) // a racing first answer stores the same counter
	ctr.Inc()
}

func recordLoad(res zones.Result) {
	if n := res.Reloads; n > 0 {
		reloadsTotal.WithLabelValues("success").Add(float64(n))
	}
	if n := len(res.Errors); n > 0 {
		reloadsTotal.WithLabelValues("error").Add(float64(n))
	}
}

// recordProbe is the health engine's hook for every probe result.
func recordProbe(checkType string, seconds float64, reason string) {
	checkDuration.WithLabelValues(checkType).Observe(seconds)
	if reason != "" {
		checkFailures.WithLabelValues(checkType, reason).Inc()
	}
}
