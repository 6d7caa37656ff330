package steer

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/steerdns/steerdns/healthcheck"
	"github.com/steerdns/steerdns/plugin/steer/admin"
)

// The files of state_dir. Each is written whole: a temporary file, fsync, rename, fsync of the
// folder, so that a crash leaves the old version or the new, never half of one.
const (
	overridesFile = "overrides.json"
	targetsFile   = "targets.json"
	historyFile   = "history.json"
	stateVersion  = 1
)

// saveEvery is how often changed target states and history are written (at most; a write
// that takes long spaces the next ones out); overrides are written at once.
const saveEvery = time.Second

// stateDir keeps a plugin instance's state across restarts.
type stateDir struct {
	path string

	mu       sync.Mutex // serializes writes and guards the fields below
	lastSave time.Time
	lastErr  error
	restored int // targets whose saved state was restored at start-up

	running bool          // the saver was started (OnStartup); OnShutdown stops it
	dirty   chan struct{} // a change to targets or history waits to be written
	stop    chan struct{}
	done    chan struct{}
}

type overridesJSON struct {
	Version   int            `json:"version"`
	Overrides []overrideJSON `json:"overrides"`
}

type overrideJSON struct {
	ID      string    `json:"id"`
	Scope   string    `json:"scope"`
	Action  string    `json:"action"`
	Address string    `json:"address,omitempty"`
	Zone    string    `json:"zone,omitempty"`
	Service string    `json:"service,omitempty"`
	Region  string    `json:"region,omitempty"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires,omitzero"`
	Reason  string    `json:"reason,omitempty"`
	By      string    `json:"by,omitempty"`
}

// toJSON is an override as state_dir and the cluster keep it.
func toJSON(o *Override) overrideJSON {
	return overrideJSON{ID: o.ID, Scope: o.Scope.String(), Action: o.Action.String(), Address: o.Address,
		Zone: o.Zone, Service: o.Service, Region: o.Region, Created: o.Created, Expires: o.Expires, Reason: o.Reason, By: o.By}
}

// fromJSON reads an override back.
func fromJSON(x overrideJSON) *Override {
	o := &Override{ID: x.ID, Address: x.Address, Zone: x.Zone, Service: x.Service, Region: x.Region,
		Created: x.Created, Expires: x.Expires, Reason: x.Reason, By: x.By}
	switch x.Scope {
	case "endpoint":
		o.Scope = ScopeEndpoint
	case "pool":
		o.Scope = ScopePool
	default:
		o.Scope = ScopeRegion
	}
	o.Action = ActionDrain
	if x.Action == "force-up" {
		o.Action = ActionForceUp
	}
	return o
}

type targetsJSON struct {
	Version int          `json:"version"`
	Saved   time.Time    `json:"saved"`
	Targets []targetJSON `json:"targets"`
}

type targetJSON struct {
	Key    string    `json:"key"`
	State  string    `json:"state"`
	Since  time.Time `json:"since"`
	Reason string    `json:"reason,omitempty"`
}

type historyJSON struct {
	Version     int                `json:"version"`
	Transitions []admin.Transition `json:"transitions"`
}

// writeFile writes data to name in the folder atomically and durably.
func (d *stateDir) writeFile(name string, data []byte) error {
	tmp, err := os.CreateTemp(d.path, "."+name+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // gone after the rename; else a failed write's leftover
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(d.path, name)); err != nil {
		return err
	}
	dir, err := os.Open(d.path)
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}

// save encodes v into name, logging and counting a failure; serving goes on either way.
func (d *stateDir) save(name string, v any) {
	data, err := json.MarshalIndent(v, "", " ")
	if err == nil {
		d.mu.Lock()
		err = d.writeFile(name, append(data, '\n'))
		d.mu.Unlock()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		if d.lastErr == nil || d.lastErr.Error() != err.Error() {
			log.Errorf("state_dir: writing %s failed, serving goes on without it: %v", filepath.Join(d.path, name), err)
		}
		d.lastErr = err
		stateErrors.WithLabelValues(name, "write").Inc()
		return
	}
	if d.lastErr != nil {
		log.Infof("state_dir: writing %s works again", filepath.Join(d.path, name))
	}
	d.lastErr, d.lastSave = nil, time.Now()
}

// load decodes name into v. A missing file is no error; a file that cannot be decoded is
// renamed aside (NAME.corrupt-UNIXTIME) and logged, and start-up goes on without it.
func (d *stateDir) load(name string, v any, version func() int) bool {
	p := filepath.Join(d.path, name)
	data, err := os.ReadFile(p)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return false
	case err != nil:
		log.Errorf("state_dir: reading %s failed, starting without it: %v", p, err)
		stateErrors.WithLabelValues(name, "read").Inc()
		return false
	}
	err = json.Unmarshal(data, v)
	if err == nil && version() != stateVersion {
		err = fmt.Errorf("version %d, want %d", version(), stateVersion)
	}
	if err != nil {
		aside := fmt.Sprintf("%s.corrupt-%d", p, time.Now().Unix())
		if rerr := os.Rename(p, aside); rerr != nil {
			log.Errorf("state_dir: %s cannot be read (%v) nor set aside (%v); starting without it", p, err, rerr)
		} else {
			log.Errorf("state_dir: %s cannot be read (%v); set aside as %s, starting without it", p, err, aside)
		}
		stateErrors.WithLabelValues(name, "read").Inc()
		return false
	}
	return true
}

// loadState reads state_dir at start-up: the overrides, the last known state of each target
// and the history. Nothing that goes wrong here stops the server.
func (s *Steer) loadState() {
	d := s.state
	if d == nil {
		return
	}
	if err := os.MkdirAll(d.path, 0o750); err != nil {
		log.Errorf("state_dir %s: %v; state will not be kept", d.path, err)
	}
	var oj overridesJSON
	if d.load(overridesFile, &oj, func() int { return oj.Version }) {
		for _, x := range oj.Overrides {
			s.overrides = append(s.overrides, fromJSON(x))
		}
	}
	var tj targetsJSON
	if d.load(targetsFile, &tj, func() int { return tj.Version }) {
		s.restored = make(map[string]healthcheck.Observation, len(tj.Targets))
		for _, t := range tj.Targets {
			st := healthcheck.Unknown
			switch t.State {
			case "up":
				st = healthcheck.Up
			case "down":
				st = healthcheck.Down
			}
			if st != healthcheck.Unknown {
				s.restored[t.Key] = healthcheck.Observation{State: st, Since: t.Since, Reason: t.Reason}
			}
		}
	}
	var hj historyJSON
	if d.load(historyFile, &hj, func() int { return hj.Version }) {
		for _, t := range hj.Transitions {
			s.history.add(t)
		}
	}
	log.Infof("state_dir %s: %d overrides, %d target states, %d transitions restored", d.path, len(s.overrides), len(s.restored), len(hj.Transitions))
}

// saveOverrides writes the overrides at once: a drain must survive a crash right after the
// API said it was set.
func (s *Steer) saveOverrides() {
	if s.state == nil {
		return
	}
	s.pub.Lock()
	oj := overridesJSON{Version: stateVersion, Overrides: []overrideJSON{}}
	for _, o := range s.overrides {
		oj.Overrides = append(oj.Overrides, toJSON(o))
	}
	s.pub.Unlock()
	s.state.save(overridesFile, oj)
}

// saveHealth writes the targets' states and the history.
func (s *Steer) saveHealth() {
	s.pub.Lock()
	v := s.snap.Load().view
	tj := targetsJSON{Version: stateVersion, Saved: time.Now(), Targets: []targetJSON{}}
	for slot, t := range s.slots.targets {
		if t == nil {
			continue
		}
		th := v.Target(int32(slot))
		if th == nil || th.Own.State == healthcheck.Unknown {
			continue
		}
		tj.Targets = append(tj.Targets, targetJSON{Key: t.Key, State: th.Own.State.String(), Since: th.Own.Since, Reason: th.Own.Reason})
	}
	hj := historyJSON{Version: stateVersion, Transitions: s.history.list(time.Time{}, "")}
	s.pub.Unlock()
	s.state.save(targetsFile, tj)
	s.state.save(historyFile, hj)
}

// changed notes that targets or history changed: the saver writes them within saveEvery.
func (d *stateDir) changed() {
	if d == nil {
		return
	}
	select {
	case d.dirty <- struct{}{}:
	default:
	}
}

// runSaver writes changed state every saveEvery until stop, and once more then.
func (s *Steer) runSaver() {
	d := s.state
	defer close(d.done)
	t := time.NewTicker(saveEvery)
	defer t.Stop()
	pending := false
	var next time.Time // the earliest time of the next write
	for {
		select {
		case <-d.dirty:
			pending = true
		case now := <-t.C:
			if pending && !now.Before(next) {
				start := time.Now()
				s.saveHealth()
				pending = false
				// A large state (82 MB of targets at 500,000) takes seconds to write: write it
				// at most a tenth of the time, so that a flapping outage does not keep a core
				// busy writing.
				next = time.Now().Add(max(saveEvery, 10*time.Since(start)))
			}
		case <-d.stop:
			select {
			case <-d.dirty:
				pending = true
			default:
			}
			if pending {
				s.saveHealth()
			}
			return
		}
	}
}

// stateStatus is state_dir as the status shows it.
func (d *stateDir) status() *admin.StateDir {
	if d == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	sd := &admin.StateDir{Path: d.path, Restored: d.restored}
	if !d.lastSave.IsZero() {
		t := d.lastSave
		sd.LastSave = &t
	}
	if d.lastErr != nil {
		sd.LastError = d.lastErr.Error()
	}
	return sd
}
