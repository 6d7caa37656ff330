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
	return engineHealth{sharedEngine().Subscribe(onChange)}
}

// engineHealth is a subscription to the engine, seen as a Health.
type engineHealth struct{ *healthcheck.Subscription }

// Hold implements Health.
func (h engineHealth) Hold(targets []healthcheck.Target) []healthcheck.Observation {
	statuses := h.Subscription.Hold(targets)
	out := make([]healthcheck.Observation, len(statuses))
	for i, st := range statuses {
		out[i] = st.Observation()
	}
	return out
}

// Engine returns the process's probe engine, for tests and measurements.
func Engine() *healthcheck.Engine { return sharedEngine() }
