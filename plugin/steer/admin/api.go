// Package admin is the admin HTTP API and status page of the steer plugin: the wire types
// (which steerctl decodes too), the server with its limits and its token, and the page. It
// knows the plugin only through Backend.
package admin

import (
	"context"
	"errors"
	"time"
)

// Backend is what the admin API asks of the plugin.
type Backend interface {
	// Status returns what the node believes now. Filter narrows it.
	Status(f Filter) *Status
	// Explain answers name and qtype (a type name such as "A") as a query from client would
	// be answered, step by step; client is "", an address or a prefix.
	Explain(ctx context.Context, name, qtype, client string) (any, error)
	// History returns the recorded transitions, oldest first, at or after since (zero: all),
	// of endpoint (empty: every endpoint).
	History(since time.Time, endpoint string) []Transition
	// Overrides returns the active overrides, newest first.
	Overrides() []Override
	// AddOverride sets an override; ErrNotFound (with the list of what exists) when its
	// target names nothing served, ErrBadRequest when it is malformed.
	AddOverride(r OverrideRequest) (Override, error)
	// DeleteOverride removes the override with id; ErrNotFound when there is none.
	DeleteOverride(id string) (Override, error)
}

// Errors a Backend returns; the API maps them to 404 and 400.
var (
	ErrNotFound   = errors.New("not found")
	ErrBadRequest = errors.New("bad request")
)

// Filter narrows a status.
type Filter struct {
	Zone    string // a zone origin; empty: every zone
	Service string // a service name relative to its zone; empty: every service
	State   string // only endpoints in this effective state (up, down, unknown, drained, forced-up, restored); empty: all
}

// Status is GET /v1/status: what this node believes, and why.
type Status struct {
	Node      string       `json:"node"`
	Time      time.Time    `json:"time"`
	Version   uint64       `json:"view_version"`
	Ready     bool         `json:"ready"`
	Zones     []Zone       `json:"zones"`
	Overrides []Override   `json:"overrides"`
	Files     []PolicyFile `json:"policy_files"`
	// Counts sums the endpoints by effective state, over the whole view (not only the filter).
	Counts map[string]int `json:"endpoint_counts"`
	// StateDir says where state is kept and the last error writing it.
	StateDir *StateDir `json:"state_dir,omitempty"`
	// Cluster lists the members and the view's mode; absent when the node runs alone.
	Cluster *Cluster `json:"cluster,omitempty"`
}

// Cluster is the cluster as this node sees it.
type Cluster struct {
	// Mode is cluster (the quorum of fresh observations decides) or local (this node sees
	// fewer than half of the members it knows, and serves from its own probes).
	Mode  string `json:"mode"`
	Alive int    `json:"alive"` // members seen alive, this node included
	Known int    `json:"known"` // members it knows (alive, suspect, or dead for less than 10 minutes)
	// Members are this node first, then the others by name.
	Members []Member `json:"members"`
	// Differ names the members whose policy files differ from this node's.
	Differ []string `json:"differ,omitempty"`
}

// Member is one node of the cluster.
type Member struct {
	Name      string     `json:"name"`
	Address   string     `json:"address"`
	State     string     `json:"state"` // alive, suspect, dead or left
	Self      bool       `json:"self,omitempty"`
	FilesHash string     `json:"files_hash,omitempty"` // of its policy files' contents
	Differs   bool       `json:"differs,omitempty"`    // its files differ from this node's
	Heard     *time.Time `json:"heard,omitempty"`      // when a message from it last came
	Targets   int        `json:"targets"`              // targets it observes
}

// NodeObservation is one node's observation of an endpoint's target.
type NodeObservation struct {
	Node  string    `json:"node"`
	State string    `json:"state"` // up or down
	Since time.Time `json:"since"`
	Fresh bool      `json:"fresh"` // it counts in the quorum
}

// Zone is one served zone.
type Zone struct {
	Origin   string    `json:"origin"`
	File     string    `json:"file"`
	Serial   uint32    `json:"serial"`
	Services []Service `json:"services"`
}

// Service is one steered name.
type Service struct {
	Name   string `json:"name"` // relative to the zone, "@" for the apex
	Policy string `json:"policy"`
	Pools  []Pool `json:"pools"`
}

// Pool is one pool of a service.
type Pool struct {
	Region     string     `json:"region"`
	Healthy    bool       `json:"healthy"`
	MinHealthy int        `json:"min_healthy"`
	Endpoints  []Endpoint `json:"endpoints"`
}

// Endpoint is one endpoint with its effective state and what it comes from.
type Endpoint struct {
	Address string `json:"address"`
	Check   string `json:"check"`
	// State is the effective state: up, down, unknown, drained or forced-up.
	State string `json:"state"`
	// Source says what decided State: override, probe, restored (the last state saved before
	// a restart, not confirmed by a probe yet), cluster, or none (check none: always up).
	Source     string     `json:"source"`
	Override   string     `json:"override,omitempty"` // the ID of the override that decided it
	Since      *time.Time `json:"since,omitempty"`
	Reason     string     `json:"reason,omitempty"` // of the last change to down
	Error      string     `json:"error,omitempty"`
	LastProbe  *time.Time `json:"last_probe,omitempty"`
	LastResult string     `json:"last_result,omitempty"` // ok, or the failure reason
	LatencyMs  *float64   `json:"latency_ms,omitempty"`
	Successes  int        `json:"consecutive_successes"`
	Failures   int        `json:"consecutive_failures"`
	// Quorum is the cluster's count, such as "1 of 3 down, 2 needed"; Nodes each node's
	// observation. Absent when the node runs alone.
	Quorum string            `json:"quorum,omitempty"`
	Nodes  []NodeObservation `json:"nodes,omitempty"`
}

// PolicyFile is one policy file and what became of it.
type PolicyFile struct {
	Path   string    `json:"path"`
	Zone   string    `json:"zone,omitempty"`
	Hash   string    `json:"hash,omitempty"`
	Serial uint32    `json:"serial,omitempty"`
	Loaded time.Time `json:"loaded,omitzero"`
	Error  string    `json:"error,omitempty"`
}

// StateDir is the state folder and its health.
type StateDir struct {
	Path      string     `json:"path"`
	LastSave  *time.Time `json:"last_save,omitempty"`
	LastError string     `json:"last_error,omitempty"`
	Restored  int        `json:"restored_targets"`
}

// Transition is one change of a target's state: GET /v1/history.
type Transition struct {
	Time      time.Time `json:"time"`
	Endpoint  string    `json:"endpoint"`
	Check     string    `json:"check"`
	From      string    `json:"from"`
	To        string    `json:"to"`
	Reason    string    `json:"reason,omitempty"`
	Node      string    `json:"node"`
	Zones     []string  `json:"zones,omitempty"` // the zones that hold the endpoint
	LatencyMs *float64  `json:"latency_ms,omitempty"`
}

// OverrideRequest is the body of POST /v1/overrides.
type OverrideRequest struct {
	// Target is "endpoint:ADDR", "pool:ZONE/SERVICE/REGION" or "region:NAME".
	Target string `json:"target"`
	// Action is "drain" or "force-up".
	Action string `json:"action"`
	// TTL is how long it lasts, as a Go duration ("30m"); empty: until deleted.
	TTL    string `json:"ttl,omitempty"`
	Reason string `json:"reason,omitempty"`
	By     string `json:"by,omitempty"`
}

// Override is an active override.
type Override struct {
	ID      string     `json:"id"`
	Target  string     `json:"target"`
	Action  string     `json:"action"`
	Created time.Time  `json:"created"`
	Expires *time.Time `json:"expires,omitempty"`
	Reason  string     `json:"reason,omitempty"`
	By      string     `json:"by,omitempty"`
}

// Error is the body of every error answer.
type Error struct {
	Error string `json:"error"`
	// Known lists what exists, when the request named something that does not.
	Known []string `json:"known,omitempty"`
}

// NotFound is the error of a request that names something that does not exist; Known lists
// what does. errors.Is(err, ErrNotFound) holds.
type NotFound struct {
	Msg   string
	Known []string
}

func (e *NotFound) Error() string        { return e.Msg }
func (e *NotFound) Is(target error) bool { return target == ErrNotFound }
