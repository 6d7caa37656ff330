package steer

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/steerdns/steerdns/healthcheck"
)

// instances lists the running plugin instances, newest first, for the gauges of health
// state, which are read from the served zones at scrape time.
var instances = &registry{}

type registry struct {
	mu   sync.Mutex
	list []*Steer
	once sync.Once
}

func (r *registry) add(s *Steer) {
	r.once.Do(func() { prometheus.MustRegister(r) })
	r.mu.Lock()
	r.list = append([]*Steer{s}, r.list...)
	r.mu.Unlock()
}

// samePaths returns the newest running instance that serves the same policy paths as s.
func (r *registry) samePaths(s *Steer) *Steer {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, x := range r.list {
		if x != s && slices.Equal(x.cfg.Paths, s.cfg.Paths) {
			return x
		}
	}
	return nil
}

func (r *registry) remove(s *Steer) {
	r.mu.Lock()
	r.list = slices.DeleteFunc(r.list, func(x *Steer) bool { return x == s })
	r.mu.Unlock()
}

// Describe implements prometheus.Collector.
func (r *registry) Describe(ch chan<- *prometheus.Desc) {
	ch <- endpointUpDesc
	ch <- poolHealthyDesc
	ch <- policyFilesDesc
	ch <- overridesDesc
	ch <- overrideAgeDesc
	ch <- probesInFlightDesc
	ch <- probesLimitedDesc
	ch <- probeFDsDesc
	ch <- probeConnsShedDesc
	ch <- clusterMembersDesc
	ch <- clusterViewDesc
	ch <- gossipMessagesDesc
	ch <- gossipBytesDesc
}

// Collect implements prometheus.Collector. During a Corefile reload two instances may serve
// the same zone; the newest one's values are reported.
func (r *registry) Collect(ch chan<- prometheus.Metric) {
	r.mu.Lock()
	list := slices.Clone(r.list)
	r.mu.Unlock()
	seen := map[string]bool{}
	// A label set is reported once: the same address may stand in two pools of one region.
	emitted := map[string]bool{}
	emit := func(desc *prometheus.Desc, v float64, labels ...string) {
		key := strings.Join(labels, "\x00")
		if desc == endpointUpDesc {
			key = "e\x00" + key
		}
		if emitted[key] {
			return
		}
		emitted[key] = true
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	files := map[string]float64{"loaded": 0, "error": 0}
	seenFile := map[string]bool{}
	for _, s := range list {
		sn := s.snap.Load()
		set := sn.set
		if set == nil {
			continue
		}
		for _, f := range set.Files {
			if seenFile[f.Path] {
				continue
			}
			seenFile[f.Path] = true
			if f.Err != nil {
				files["error"]++
			} else {
				files["loaded"]++
			}
		}
		for _, z := range set.Zones() {
			if seen[z.Origin] {
				continue
			}
			seen[z.Origin] = true
			h := zoneHealth{v: sn.view, slots: sn.zones[z].slots}
			for _, svc := range z.Services {
				name := z.Relative(svc.Name)
				for _, p := range svc.Pools {
					emit(poolHealthyDesc, b2f(h.healthy(p)), z.Origin, name, p.Label)
					for _, ep := range p.Endpoints {
						emit(endpointUpDesc, b2f(h.up(p, ep)), z.Origin, name, p.Label, ep.Address)
					}
				}
			}
		}
	}
	// Overrides: the newest instance's (all instances of a process share them).
	actions := map[string]float64{"drain": 0, "force-up": 0}
	oldest := 0.0
	if len(list) > 0 {
		for _, o := range list[0].View().Overrides() {
			actions[o.Action.String()]++
			oldest = max(oldest, time.Since(o.Created).Seconds())
		}
	}
	for a, n := range actions {
		ch <- prometheus.MustNewConstMetric(overridesDesc, prometheus.GaugeValue, n, a)
	}
	ch <- prometheus.MustNewConstMetric(overrideAgeDesc, prometheus.GaugeValue, oldest)
	if len(list) > 0 {
		c := sharedEngine().Capacity()
		ch <- prometheus.MustNewConstMetric(probesInFlightDesc, prometheus.GaugeValue, float64(c.InFlight), "running")
		ch <- prometheus.MustNewConstMetric(probesInFlightDesc, prometheus.GaugeValue, float64(c.Max), "bound")
		for limit, name := range map[string]string{healthcheck.LimitFDs: "fds", healthcheck.LimitMemory: "memory", healthcheck.LimitOption: "max_in_flight"} {
			ch <- prometheus.MustNewConstMetric(probesLimitedDesc, prometheus.GaugeValue, b2f(c.Limit == limit), name)
		}
		ch <- prometheus.MustNewConstMetric(probeFDsDesc, prometheus.GaugeValue, float64(c.FDsInUse), "in_use")
		ch <- prometheus.MustNewConstMetric(probeFDsDesc, prometheus.GaugeValue, float64(c.Kept), "kept")
		ch <- prometheus.MustNewConstMetric(probeFDsDesc, prometheus.GaugeValue, float64(c.FDs), "budget")
		ch <- prometheus.MustNewConstMetric(probeConnsShedDesc, prometheus.CounterValue, float64(c.Shed))
	}
	for state, n := range files {
		ch <- prometheus.MustNewConstMetric(policyFilesDesc, prometheus.GaugeValue, n, state)
	}
	if members, mode, stats, ok := clusterGauges(); ok {
		for state, n := range members {
			ch <- prometheus.MustNewConstMetric(clusterMembersDesc, prometheus.GaugeValue, n, state)
		}
		ch <- prometheus.MustNewConstMetric(clusterViewDesc, prometheus.GaugeValue, b2f(mode == "cluster"), "cluster")
		ch <- prometheus.MustNewConstMetric(clusterViewDesc, prometheus.GaugeValue, b2f(mode == "local"), "local")
		ch <- prometheus.MustNewConstMetric(gossipMessagesDesc, prometheus.CounterValue, float64(stats.MessagesIn), "in")
		ch <- prometheus.MustNewConstMetric(gossipMessagesDesc, prometheus.CounterValue, float64(stats.MessagesOut), "out")
		ch <- prometheus.MustNewConstMetric(gossipBytesDesc, prometheus.CounterValue, float64(stats.BytesOut))
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
