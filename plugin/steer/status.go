package steer

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/steerdns/steerdns/plugin/steer/admin"
	"github.com/steerdns/steerdns/zones"
)

// nodeName is this node's name: the host name.
func nodeName() string {
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "steerdns"
}

// Status builds what the admin API shows, from one snapshot: every decision it shows comes
// from the same view.
func (s *Steer) Status(f admin.Filter) *admin.Status {
	sn := s.snap.Load()
	st := &admin.Status{Node: s.node, Time: time.Now(), Version: sn.view.Version, Ready: s.Ready(),
		Zones: []admin.Zone{}, Counts: map[string]int{}, StateDir: s.state.status(), Cluster: s.clusterStatus()}
	for _, o := range sn.view.Overrides() {
		st.Overrides = append(st.Overrides, toAdmin(o))
	}
	if st.Overrides == nil {
		st.Overrides = []admin.Override{}
	}
	if sn.set == nil {
		return st
	}
	for _, fs := range sn.set.Files {
		pf := admin.PolicyFile{Path: fs.Path, Zone: fs.Zone, Serial: fs.Serial, Loaded: fs.Loaded}
		if z := sn.set.Zone(fs.Zone); z != nil && z.Path == fs.Path {
			pf.Hash = z.Hash
		}
		if fs.Err != nil {
			pf.Error = fs.Err.Error()
		}
		st.Files = append(st.Files, pf)
	}
	h := s.health
	for _, z := range sn.set.Zones() {
		zs := sn.zones[z]
		zh := zoneHealth{v: sn.view, slots: zs.slots}
		out := admin.Zone{Origin: z.Origin, File: z.Path, Serial: z.Serial, Services: []admin.Service{}}
		names := make([]string, 0, len(z.Services))
		for n := range z.Services {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			svc := z.Services[n]
			rel := z.Relative(svc.Name)
			shown := (f.Zone == "" || f.Zone == z.Origin) && (f.Service == "" || f.Service == rel)
			as := admin.Service{Name: rel, Policy: string(svc.Policy)}
			for _, p := range svc.Pools {
				ap := admin.Pool{Region: p.Label, MinHealthy: p.MinHealthy, Healthy: zh.healthy(p), Endpoints: []admin.Endpoint{}}
				for _, ep := range p.Endpoints {
					ae := endpointStatus(zh, p, ep, z, h)
					if s.cluster != nil && ep.Target != zones.NoTarget && shown {
						ae.Nodes = s.observations(&z.Targets[ep.Target])
					}
					st.Counts[countKey(ae)]++
					if shown && (f.State == "" || f.State == ae.State || (f.State == "restored" && ae.Source == "restored")) {
						ap.Endpoints = append(ap.Endpoints, ae)
					}
				}
				if len(ap.Endpoints) > 0 {
					as.Pools = append(as.Pools, ap)
				}
			}
			if shown && len(as.Pools) > 0 {
				out.Services = append(out.Services, as)
			}
		}
		if len(out.Services) > 0 || (f.State == "" && (f.Zone == "" || f.Zone == z.Origin) && f.Service == "") {
			st.Zones = append(st.Zones, out)
		}
	}
	return st
}

func countKey(e admin.Endpoint) string {
	if e.Source == "restored" {
		return e.State + " (restored)"
	}
	return e.State
}

// endpointStatus is one endpoint as the status shows it.
func endpointStatus(zh zoneHealth, p *zones.Pool, ep *zones.Endpoint, z *zones.Zone, h Health) admin.Endpoint {
	ae := admin.Endpoint{Address: ep.Address, Check: ep.Check}
	state := zh.state(p, ep)
	ae.State = state.String()
	if o := zh.v.overrides; o != nil {
		if x := o.find(p, ep); x != nil {
			ae.Source, ae.Override = "override", x.ID
		}
	}
	if ep.Target == zones.NoTarget {
		if ae.Source == "" {
			ae.Source = "none"
		}
		return ae
	}
	th := zh.v.Target(zh.slots[ep.Target])
	if th != nil {
		if ae.Source == "" {
			switch {
			case th.Restored:
				ae.Source = "restored"
			case th.Cluster != StateUnknown && th.Verdict.Observers > 1:
				ae.Source = "cluster"
			default:
				ae.Source = "probe"
			}
		}
		if !th.Own.Since.IsZero() {
			since := th.Own.Since
			ae.Since = &since
		}
		ae.Reason, ae.Error = th.Own.Reason, th.Own.Err
		if v := th.Verdict; v.Observers > 0 {
			ae.Quorum = fmt.Sprintf("%d of %d down, %d needed", v.Down, v.Observers, v.Need)
		}
	}
	if h != nil {
		if live, ok := h.Live(z.Targets[ep.Target].Key); ok && !live.Checked.IsZero() {
			checked := live.Checked
			ms := float64(live.Latency.Microseconds()) / 1000
			ae.LastProbe, ae.LatencyMs = &checked, &ms
			ae.LastResult = "ok"
			if !live.LastOK {
				ae.LastResult = live.LastReason
			}
			ae.Successes, ae.Failures = live.Successes, live.Failures
		}
	}
	return ae
}

// backend is the plugin as the admin API sees it.
type backend struct{ s *Steer }

func (b backend) Status(f admin.Filter) *admin.Status { return b.s.Status(f) }
func (b backend) History(since time.Time, ep string) []admin.Transition {
	return b.s.History(since, ep)
}
func (b backend) Overrides() []admin.Override { return b.s.OverridesList() }
func (b backend) AddOverride(r admin.OverrideRequest) (admin.Override, error) {
	return b.s.AddOverride(r)
}
func (b backend) DeleteOverride(id string) (admin.Override, error) { return b.s.DeleteOverride(id) }

func (b backend) Explain(ctx context.Context, name, qtype, client string) (any, error) {
	t, ok := dns.StringToType[strings.ToUpper(qtype)]
	if !ok {
		return nil, fmt.Errorf("%w: type %q is not a DNS type such as A or AAAA", admin.ErrBadRequest, qtype)
	}
	if _, ok := dns.IsDomainName(name); !ok {
		return nil, fmt.Errorf("%w: %q is not a domain name", admin.ErrBadRequest, name)
	}
	ex, err := b.s.Explain(ctx, name, t, client)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", admin.ErrBadRequest, err)
	}
	return ex, nil
}

// adminRef is one admin listener, shared by the instances that name its address: on a
// Corefile reload the new instance starts before the old one stops, and takes the listener
// over instead of failing to bind the same port.
type adminRef struct {
	addr    string
	srv     *admin.Server
	mu      sync.Mutex
	holders []*Steer // newest last: the API answers for it
}

var (
	adminMu      sync.Mutex
	adminServers = map[string]*adminRef{}
)

// startAdmin serves the admin API for s on its address, starting the listener or taking
// over the running one.
func startAdmin(s *Steer) (*adminRef, error) {
	adminMu.Lock()
	defer adminMu.Unlock()
	ref := adminServers[s.cfg.Admin]
	if ref == nil {
		ref = &adminRef{addr: s.cfg.Admin}
		h := admin.NewHandler(ref, admin.Options{TokenFunc: ref.token, Logf: log.Infof})
		srv, err := admin.Listen(s.cfg.Admin, h)
		if err != nil {
			return nil, err
		}
		ref.srv = srv
		adminServers[s.cfg.Admin] = ref
		log.Infof("admin API and status page on http://%s/", srv.Addr())
	}
	ref.mu.Lock()
	ref.holders = append(ref.holders, s)
	ref.mu.Unlock()
	return ref, nil
}

// release stops serving s; the last instance closes the listener.
func (r *adminRef) release(s *Steer) {
	adminMu.Lock()
	defer adminMu.Unlock()
	r.mu.Lock()
	for i, h := range r.holders {
		if h == s {
			r.holders = append(r.holders[:i], r.holders[i+1:]...)
			break
		}
	}
	left := len(r.holders)
	r.mu.Unlock()
	if left == 0 {
		r.srv.Close()
		delete(adminServers, r.addr)
	}
}

// AdminAddr returns the address the admin API listens on (for tests that ask for port 0).
func (s *Steer) AdminAddr() string {
	if s.admin == nil {
		return ""
	}
	return s.admin.srv.Addr()
}

// token is the admin token of the newest instance: a Corefile reload may change it.
func (r *adminRef) token() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.holders) == 0 {
		return ""
	}
	return r.holders[len(r.holders)-1].cfg.AdminToken
}

func (r *adminRef) current() backend {
	r.mu.Lock()
	defer r.mu.Unlock()
	return backend{r.holders[len(r.holders)-1]}
}

// adminRef is the API's Backend: the newest instance answers.
func (r *adminRef) Status(f admin.Filter) *admin.Status { return r.current().Status(f) }
func (r *adminRef) History(since time.Time, ep string) []admin.Transition {
	return r.current().History(since, ep)
}
func (r *adminRef) Overrides() []admin.Override { return r.current().Overrides() }
func (r *adminRef) AddOverride(o admin.OverrideRequest) (admin.Override, error) {
	return r.current().AddOverride(o)
}
func (r *adminRef) DeleteOverride(id string) (admin.Override, error) {
	return r.current().DeleteOverride(id)
}
func (r *adminRef) Explain(ctx context.Context, name, qtype, client string) (any, error) {
	return r.current().Explain(ctx, name, qtype, client)
}

var _ admin.Backend = (*adminRef)(nil)
