package steer

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/steerdns/steerdns/plugin/steer/admin"
	"github.com/steerdns/steerdns/zones"
)

// maxKnown bounds the list of what exists in an error about an override's target.
const maxKnown = 50

// AddOverride sets an operator's drain or force-up from the admin API's request: the next
// query answers by it. A target that names nothing served is refused with what exists.
func (s *Steer) AddOverride(r admin.OverrideRequest) (admin.Override, error) {
	o := &Override{Reason: r.Reason, By: r.By, Created: time.Now()}
	switch r.Action {
	case "drain":
		o.Action = ActionDrain
	case "force-up":
		o.Action = ActionForceUp
	default:
		return admin.Override{}, fmt.Errorf("%w: action %q is not drain or force-up", admin.ErrBadRequest, r.Action)
	}
	if r.TTL != "" {
		d, err := time.ParseDuration(r.TTL)
		if err != nil || d <= 0 {
			return admin.Override{}, fmt.Errorf("%w: ttl %q is not a positive duration such as 30m", admin.ErrBadRequest, r.TTL)
		}
		o.Expires = o.Created.Add(d)
	}
	if len(r.Reason) > 1024 || len(r.By) > 256 {
		return admin.Override{}, fmt.Errorf("%w: reason is at most 1024 bytes and by 256", admin.ErrBadRequest)
	}
	if err := parseOverrideTarget(s.Set(), r.Target, o); err != nil {
		return admin.Override{}, err
	}
	var id [6]byte
	rand.Read(id[:])
	o.ID = hex.EncodeToString(id[:])

	if s.cluster != nil {
		// The cluster's records are the overrides: every node takes them from there.
		s.cluster.node.Put(overrideRecord(o))
		s.syncOverrides()
		log.Infof("override %s (sent to the cluster): %s %s until %s (by %q: %s)", o.ID, o.Action, overrideTarget(o), expiry(o), o.By, o.Reason)
		return toAdmin(o), nil
	}
	s.pub.Lock()
	s.overrides = append(s.overrides, o)
	s.republish()
	s.pub.Unlock()
	log.Infof("override %s: %s %s until %s (by %q: %s)", o.ID, o.Action, overrideTarget(o), expiry(o), o.By, o.Reason)
	s.saveOverrides()
	return toAdmin(o), nil
}

// DeleteOverride removes the override with id: health checks decide again.
func (s *Steer) DeleteOverride(id string) (admin.Override, error) {
	s.pub.Lock()
	i := slices.IndexFunc(s.overrides, func(o *Override) bool { return o.ID == id })
	if i < 0 {
		known := make([]string, 0, len(s.overrides))
		for _, o := range s.overrides {
			known = append(known, o.ID)
		}
		s.pub.Unlock()
		return admin.Override{}, &admin.NotFound{Msg: fmt.Sprintf("no active override %q", id), Known: known}
	}
	o := s.overrides[i]
	if s.cluster != nil {
		s.pub.Unlock()
		s.cluster.node.Delete(id)
		s.syncOverrides()
		log.Infof("override %s removed (in the cluster): %s %s", o.ID, o.Action, overrideTarget(o))
		return toAdmin(o), nil
	}
	s.overrides = slices.Delete(slices.Clone(s.overrides), i, i+1)
	s.republish()
	s.pub.Unlock()
	log.Infof("override %s removed: %s %s", o.ID, o.Action, overrideTarget(o))
	s.saveOverrides()
	return toAdmin(o), nil
}

// OverridesList returns the active overrides, newest first, for the admin API.
func (s *Steer) OverridesList() []admin.Override {
	list := s.View().Overrides()
	out := make([]admin.Override, 0, len(list))
	for _, o := range list {
		out = append(out, toAdmin(o))
	}
	return out
}

func toAdmin(o *Override) admin.Override {
	a := admin.Override{ID: o.ID, Target: overrideTarget(o), Action: o.Action.String(), Created: o.Created, Reason: o.Reason, By: o.By}
	if !o.Expires.IsZero() {
		e := o.Expires
		a.Expires = &e
	}
	return a
}

func expiry(o *Override) string {
	if o.Expires.IsZero() {
		return "removed"
	}
	return o.Expires.Format(time.RFC3339)
}

// overrideTarget is the target of o as the API writes it.
func overrideTarget(o *Override) string {
	switch o.Scope {
	case ScopeEndpoint:
		return "endpoint:" + o.Address
	case ScopePool:
		return "pool:" + o.Zone + "/" + o.Service + "/" + o.Region
	}
	return "region:" + o.Region
}

// parseOverrideTarget fills o's scope from target, checking that it names something set
// serves.
func parseOverrideTarget(set *zones.Set, target string, o *Override) error {
	kind, name, ok := strings.Cut(target, ":")
	if !ok || name == "" {
		return fmt.Errorf("%w: target %q is not endpoint:ADDRESS, pool:ZONE/SERVICE/REGION or region:NAME", admin.ErrBadRequest, target)
	}
	switch kind {
	case "endpoint":
		o.Scope = ScopeEndpoint
		o.Address = name
		if a, err := netip.ParseAddr(name); err == nil {
			o.Address = a.String() // the form compiled endpoints have
		} else if !strings.HasSuffix(name, ".") {
			o.Address = strings.ToLower(name) + "."
		}
		var known []string
		found := false
		eachPool(set, func(_ *zones.Zone, _ *zones.Service, p *zones.Pool) bool {
			for _, ep := range p.Endpoints {
				if ep.Address == o.Address {
					found = true
					return false
				}
				if len(known) < maxKnown && !slices.Contains(known, ep.Address) {
					known = append(known, ep.Address)
				}
			}
			return true
		})
		if !found {
			sort.Strings(known)
			return &admin.NotFound{Msg: fmt.Sprintf("no endpoint %s is served", name), Known: known}
		}
	case "pool":
		parts := strings.Split(name, "/")
		if len(parts) != 3 {
			return fmt.Errorf("%w: pool target %q is not pool:ZONE/SERVICE/REGION", admin.ErrBadRequest, target)
		}
		o.Scope, o.Zone, o.Service, o.Region = ScopePool, strings.ToLower(parts[0]), strings.ToLower(parts[1]), parts[2]
		if !strings.HasSuffix(o.Zone, ".") {
			o.Zone += "."
		}
		if strings.HasSuffix(o.Service, "."+o.Zone) {
			o.Service = strings.TrimSuffix(o.Service, "."+o.Zone)
		}
		if findPool(set, o.Zone, o.Service, o.Region) == nil {
			var known []string
			eachPool(set, func(z *zones.Zone, svc *zones.Service, p *zones.Pool) bool {
				known = append(known, z.Origin+"/"+z.Relative(svc.Name)+"/"+p.Label)
				return len(known) < maxKnown
			})
			sort.Strings(known)
			return &admin.NotFound{Msg: fmt.Sprintf("no pool %s/%s/%s is served", o.Zone, o.Service, o.Region), Known: known}
		}
	case "region":
		o.Scope, o.Region = ScopeRegion, name
		var known []string
		found := false
		eachPool(set, func(_ *zones.Zone, _ *zones.Service, p *zones.Pool) bool {
			if p.Region == name {
				found = true
				return false
			}
			if p.Region != "" && !slices.Contains(known, p.Region) {
				known = append(known, p.Region)
			}
			return true
		})
		if !found {
			sort.Strings(known)
			return &admin.NotFound{Msg: fmt.Sprintf("no pool of region %q is served", name), Known: known}
		}
	default:
		return fmt.Errorf("%w: target %q is not endpoint:ADDRESS, pool:ZONE/SERVICE/REGION or region:NAME", admin.ErrBadRequest, target)
	}
	return nil
}

// eachPool calls f for every pool served, in a stable order, until f returns false.
func eachPool(set *zones.Set, f func(*zones.Zone, *zones.Service, *zones.Pool) bool) {
	if set == nil {
		return
	}
	zs := set.Zones()
	for _, z := range zs {
		names := make([]string, 0, len(z.Services))
		for n := range z.Services {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			svc := z.Services[n]
			for _, p := range svc.Pools {
				if !f(z, svc, p) {
					return
				}
			}
		}
	}
}
