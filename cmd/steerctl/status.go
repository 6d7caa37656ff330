package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/steerdns/steerdns/plugin/steer/admin"
)

const statusHelp = `Usage: steerctl status [--zone ZONE] [--service NAME] [--state STATE] [--json]

Shows what a running steerdns believes now (GET /v1/status of the admin API): a table per
zone, one row per endpoint of each service and pool, with the endpoint's effective state, what
decided it (probe, override ID, restored: the state saved before a restart and not confirmed
by a probe yet, cluster, or none: check none, always up), how long it has been so, the reason
of its last change to down, the last probe's latency and error. A pool with fewer healthy
endpoints than min_healthy is marked "(unhealthy)". Then the active overrides, the policy
files that failed to load, and the state folder's last error.

With a cluster, the cluster comes first, after the counts: the mode (cluster: the quorum of
the nodes' fresh observations decides; local: this node sees fewer than half of the members
it knows and serves from its own probes), how many members it sees, and a table of the
members: name, gossip address, state (alive, suspect, dead, left), the hash of its policy
files ("(differs)" when they are not this node's), when it was last heard from, and how many
targets it observes. The members whose files differ are named. The endpoint tables then have
two more columns: QUORUM, the cluster's count ("1 of 3 down, 2 needed"), and NODES, each
node's observation ("a:up b:down c:up(stale)"; a stale observation is too old to count).

Options:
  --zone ZONE      only this zone
  --service NAME   only this service (its name relative to the zone, "@" for the apex)
  --state STATE    only endpoints in this state: up, down, unknown, drained, forced-up, restored
  --json           print the API's JSON answer as it is

` + adminHelp + `
` + adminExit + `
Examples:
  steerctl status
  steerctl status --state down
  steerctl status --zone example.com --service www --json
`

// states are the effective states an endpoint can be in.
var states = []string{"up", "down", "unknown", "drained", "forced-up", "restored"}

func runStatus(c *command, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	zone := fs.String("zone", "", "")
	service := fs.String("service", "", "")
	state := fs.String("state", "", "")
	asJSON := fs.Bool("json", false, "")
	cl, rest, code, done := adminArgs(c, fs, args, stdout, stderr)
	if done {
		return code
	}
	if len(rest) > 0 {
		return usageErr(c, stderr, "no arguments, only options (%q is one too many)", rest[0])
	}
	if *state != "" && !slices.Contains(states, *state) {
		return usageErr(c, stderr, "--state is one of %s, not %q", strings.Join(states, ", "), *state)
	}
	q := url.Values{}
	for k, v := range map[string]string{"zone": *zone, "service": *service, "state": *state} {
		if v != "" {
			q.Set(k, v)
		}
	}
	var st admin.Status
	data, err := cl.get(context.Background(), "/v1/status", q, &st)
	if err != nil {
		return cl.fail(err)
	}
	if *asJSON {
		stdout.Write(data)
		return exitOK
	}
	printStatus(stdout, &st)
	return exitOK
}

func printStatus(w io.Writer, st *admin.Status) {
	ready := "ready"
	if !st.Ready {
		ready = "not ready"
	}
	fmt.Fprintf(w, "node %s, %s, view %d, at %s\n", st.Node, ready, st.Version, stamp(st.Time))
	fmt.Fprintf(w, "endpoints: %s\n", counts(st.Counts))
	if st.Cluster != nil {
		printCluster(w, st)
	}

	// The quorum columns, when there is a cluster (or an endpoint has a quorum anyway).
	quorum := st.Cluster != nil
	for _, z := range st.Zones {
		for _, s := range z.Services {
			for _, p := range s.Pools {
				for _, e := range p.Endpoints {
					quorum = quorum || e.Quorum != "" || len(e.Nodes) > 0
				}
			}
		}
	}
	header := []string{"SERVICE", "POLICY", "POOL", "ENDPOINT", "CHECK", "STATE", "SOURCE", "SINCE", "REASON", "LATENCY", "ERROR"}
	if quorum {
		header = slices.Insert(header, len(header)-1, "QUORUM", "NODES")
	}

	rows := 0
	for _, z := range st.Zones {
		fmt.Fprintf(w, "\nzone %s (%s, serial %d)\n", z.Origin, z.File, z.Serial)
		t := newTable(w, header...)
		for _, s := range z.Services {
			for i, p := range s.Pools {
				pool := p.Region
				if pool == "" {
					pool = fmt.Sprintf("pools[%d]", i)
				}
				if !p.Healthy {
					pool += " (unhealthy)"
				}
				for _, e := range p.Endpoints {
					source := e.Source
					if e.Override != "" {
						source += " " + e.Override
					}
					since := ""
					if e.Since != nil {
						since = age(st.Time.Sub(*e.Since))
					}
					reason := e.Reason
					if reason == "" && e.LastResult != "" && e.LastResult != "ok" {
						reason = e.LastResult
					}
					cells := []string{s.Name, s.Policy, pool, e.Address, e.Check, e.State, source, since, reason, millis(e.LatencyMs), e.Error}
					if quorum {
						cells = slices.Insert(cells, len(cells)-1, e.Quorum, nodes(e.Nodes))
					}
					t.row(cells...)
					rows++
				}
			}
		}
		t.flush()
	}
	if rows == 0 {
		fmt.Fprintln(w, "\nno endpoints match")
	}
	if len(st.Overrides) > 0 {
		fmt.Fprintf(w, "\noverrides:\n")
		printOverrides(w, st.Overrides)
	}
	for _, f := range st.Files {
		if f.Error != "" {
			fmt.Fprintf(w, "\npolicy file %s: not loaded: %s\n", f.Path, f.Error)
		}
	}
	if d := st.StateDir; d != nil && d.LastError != "" {
		fmt.Fprintf(w, "\nstate_dir %s: last error: %s\n", d.Path, d.LastError)
	}
}

// printCluster writes the cluster as this node sees it: its mode, its members, and those
// whose policy files differ.
func printCluster(w io.Writer, st *admin.Status) {
	c := st.Cluster
	switch c.Mode {
	case "local":
		fmt.Fprintf(w, "\ncluster: mode local, sees %d of %d members: fewer than half, so it serves from its own probes\n", c.Alive, c.Known)
	default:
		fmt.Fprintf(w, "\ncluster: mode %s, sees %d of %d members\n", c.Mode, c.Alive, c.Known)
	}
	t := newTable(w, "MEMBER", "ADDRESS", "STATE", "FILES", "HEARD", "TARGETS")
	for _, m := range c.Members {
		name := m.Name
		if m.Self {
			name += " (self)"
		}
		files := m.FilesHash
		if m.Differs {
			files += " (differs)"
		}
		heard := ""
		if m.Heard != nil {
			heard = age(st.Time.Sub(*m.Heard)) + " ago"
		}
		t.row(name, m.Address, m.State, files, heard, strconv.Itoa(m.Targets))
	}
	t.flush()
	if len(c.Differ) > 0 {
		fmt.Fprintf(w, "policy files differ from this node's on: %s\n", strings.Join(c.Differ, ", "))
	}
}

// nodes writes each node's observation of an endpoint briefly: "a:up b:down c:up(stale)".
func nodes(obs []admin.NodeObservation) string {
	parts := make([]string, 0, len(obs))
	for _, o := range obs {
		p := o.Node + ":" + o.State
		if !o.Fresh {
			p += "(stale)"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, " ")
}

// counts writes the endpoint counts, the known states first in their order.
func counts(m map[string]int) string {
	var parts []string
	for _, s := range states {
		if n, ok := m[s]; ok {
			parts = append(parts, fmt.Sprintf("%d %s", n, s))
		}
	}
	var other []string
	for s := range m {
		if !slices.Contains(states, s) {
			other = append(other, s)
		}
	}
	sort.Strings(other)
	for _, s := range other {
		parts = append(parts, fmt.Sprintf("%d %s", m[s], s))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
