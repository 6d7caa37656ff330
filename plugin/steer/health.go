package steer

import (
	"sync"
	"time"

	"github.com/steerdns/steerdns/healthcheck"
)

var (
	engineOnce sync.Once
	engine     *healthcheck.Engine
)

// sharedEngine returns the process's probe engine. Every plugin instance subscribes to it, so a
// (check, target) pair named by several zones, server blocks or the old and new instance of a
// Corefile reload is probed once and keeps its state.
func sharedEngine() *healthcheck.Engine {
	engineOnce.Do(func() {
		engine = healthcheck.NewEngine(healthcheck.Options{
			OnResult: func(checkType string, d time.Duration, reason string) {
				recordProbe(checkType, d.Seconds(), reason)
			},
			Logf: log.Infof,
		})
	})
	return engine
}

// sharedHealth is the HealthSource of the plugin: a subscription to the shared engine.
func sharedHealth(onChange func(healthcheck.Change)) Health {
	return &engineHealth{sub: sharedEngine().Subscribe(onChange)}
}

// engineHealth is a subscription to the engine, seen as a Health. Its status cells are the
// subscription's (Live asks it), not copied into a map of its own: at 500,000 targets that map
// was 33 MB.
type engineHealth struct {
	sub *healthcheck.Subscription
}

// Hold implements Health.
func (h *engineHealth) Hold(targets []healthcheck.Target) []*healthcheck.Status {
	return h.sub.Hold(targets)
}

// Release implements Health.
func (h *engineHealth) Release(keys []string) { h.sub.Release(keys) }

// Live implements Health.
func (h *engineHealth) Live(key string) (healthcheck.Observation, bool) {
	st := h.sub.Status(key)
	if st == nil {
		return healthcheck.Observation{}, false
	}
	return st.Observation(), true
}

// Ready implements Health.
func (h *engineHealth) Ready() bool { return h.sub.Ready() }

// Close implements Health.
func (h *engineHealth) Close() { h.sub.Close() }

// Engine returns the process's probe engine, for tests and measurements.
func Engine() *healthcheck.Engine { return sharedEngine() }
