package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/steerdns/steerdns/plugin/steer/admin"
)

const overridesHelp = `Usage: steerctl overrides [--json]

Lists the active overrides, newest first (GET /v1/overrides of the admin API): ID, action,
target, when it was set, when it expires, who set it and why.

Options:
  --json   print the API's JSON answer as it is

` + adminHelp + `
` + adminExit

const targetHelp = `TARGET is one of
  endpoint:ADDR                 every endpoint with this address (an IP, or a name of a
                                CNAME endpoint); a bare IP address means endpoint:IP
  pool:ZONE/SERVICE/REGION      one pool of a service, such as pool:example.com/www/eu-west
                                (REGION is pools[N] for a pool without a region)
  region:NAME                   every pool of region NAME, in every zone
The most specific override of an endpoint wins (endpoint, then pool, then region); at one
scope the newest. Overrides apply to the very next query, are kept across restarts when the
server has a state_dir, and never change a policy file.
`

// overrideOptions are the options of drain and force-up.
const overrideOptions = `Options:
  --ttl DURATION   the override expires after DURATION, such as 30m or 2h (default: never;
                   it lasts until undrain)
  --reason TEXT    why, for whoever looks at it next
  --by WHO         who set it (default: $USER@hostname)
  --json           print the API's JSON answer as it is
`

const drainHelp = `Usage: steerctl drain [--ttl DURATION] [--reason TEXT] [--by WHO] [--json] TARGET

Takes TARGET out of the answers at once, as if it were down, whatever the health checks say
(POST /v1/overrides of the admin API, action drain). Prints the override, with the ID that
"steerctl undrain ID" takes.

` + targetHelp + `
` + overrideOptions + `
` + adminHelp + `
` + adminExit + `
Examples:
  steerctl drain region:eu-west --ttl 30m --reason "network maintenance"
  steerctl drain 192.0.2.10 --reason "disk failing"
`

const forceUpHelp = `Usage: steerctl force-up [--ttl DURATION] [--reason TEXT] [--by WHO] [--json] TARGET

Keeps TARGET in the answers as if it were up, whatever the health checks say (POST
/v1/overrides of the admin API, action force-up): for a backend that is healthy although its
check fails. Prints the override, with the ID that "steerctl undrain ID" takes.

` + targetHelp + `
` + overrideOptions + `
` + adminHelp + `
` + adminExit + `
Example:
  steerctl force-up pool:example.com/www/us-east --ttl 1h --reason "check endpoint broken, app fine"
`

const undrainHelp = `Usage: steerctl undrain [--json] ID|TARGET

Removes overrides, so that health checks decide again (DELETE /v1/overrides/{id} of the admin
API). With an ID (as drain, force-up and overrides print it), that override; with a TARGET
(endpoint:ADDR, pool:ZONE/SERVICE/REGION, region:NAME or a bare IP address), every active
override of that target, drain or force-up. Prints each override removed.

Options:
  --json   print the removed overrides as a JSON array

` + adminHelp + `
Exit status: 0 when an override was removed; 1 when there is no such override (no active
override has that ID or target); 2 on a usage error, when the admin API cannot be reached, or
when it answers any other error (its message is printed).

Examples:
  steerctl undrain 3f2a9c01d4e5
  steerctl undrain region:eu-west
`

func runOverrides(c *command, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "")
	cl, rest, code, done := adminArgs(c, fs, args, stdout, stderr)
	if done {
		return code
	}
	if len(rest) > 0 {
		return usageErr(c, stderr, "no arguments, only options (%q is one too many)", rest[0])
	}
	list, data, err := cl.overrides(context.Background())
	if err != nil {
		return cl.fail(err)
	}
	if *asJSON {
		stdout.Write(data)
		return exitOK
	}
	if len(list) == 0 {
		fmt.Fprintln(stdout, "no active overrides")
		return exitOK
	}
	printOverrides(stdout, list)
	return exitOK
}

func (cl *client) overrides(ctx context.Context) ([]admin.Override, []byte, error) {
	var l struct {
		Overrides []admin.Override `json:"overrides"`
	}
	data, err := cl.get(ctx, "/v1/overrides", nil, &l)
	return l.Overrides, data, err
}

func printOverrides(w io.Writer, list []admin.Override) {
	t := newTable(w, "ID", "ACTION", "TARGET", "CREATED", "EXPIRES", "BY", "REASON")
	for _, o := range list {
		t.row(o.ID, o.Action, o.Target, stamp(o.Created), expires(o), o.By, o.Reason)
	}
	t.flush()
}

// expires says when o ends: never, or its time and how far off it is.
func expires(o admin.Override) string {
	if o.Expires == nil {
		return "never"
	}
	return fmt.Sprintf("%s (in %s)", stamp(*o.Expires), age(time.Until(*o.Expires)))
}

// describe is one override in a sentence.
func describe(o admin.Override) string {
	s := fmt.Sprintf("override %s: %s %s", o.ID, o.Action, o.Target)
	if o.Expires == nil {
		s += ", until removed"
	} else {
		s += fmt.Sprintf(", until %s (in %s)", stamp(*o.Expires), age(time.Until(*o.Expires)))
	}
	if o.By != "" {
		s += ", by " + o.By
	}
	if o.Reason != "" {
		s += ": " + o.Reason
	}
	return s
}

func runDrain(c *command, args []string, stdout, stderr io.Writer) int {
	return setOverride(c, "drain", args, stdout, stderr)
}

func runForceUp(c *command, args []string, stdout, stderr io.Writer) int {
	return setOverride(c, "force-up", args, stdout, stderr)
}

// setOverride is drain and force-up.
func setOverride(c *command, action string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	ttl := fs.String("ttl", "", "")
	reason := fs.String("reason", "", "")
	by := fs.String("by", "", "")
	asJSON := fs.Bool("json", false, "")
	cl, rest, code, done := adminArgs(c, fs, args, stdout, stderr)
	if done {
		return code
	}
	switch {
	case len(rest) == 0:
		return usageErr(c, stderr, "name the TARGET: endpoint:ADDR, pool:ZONE/SERVICE/REGION or region:NAME")
	case len(rest) > 1:
		return usageErr(c, stderr, "one TARGET at a time (%q is one too many)", rest[1])
	}
	target, err := parseTarget(rest[0])
	if err != nil {
		return usageErr(c, stderr, "%v", err)
	}
	if *ttl != "" {
		if d, err := time.ParseDuration(*ttl); err != nil || d <= 0 {
			return usageErr(c, stderr, "--ttl %q is not a positive duration such as 30m or 2h", *ttl)
		}
	}
	if *by == "" {
		*by = whoami()
	}
	req := admin.OverrideRequest{Target: target, Action: action, TTL: *ttl, Reason: *reason, By: *by}
	data, err := cl.call(context.Background(), http.MethodPost, "/v1/overrides", nil, req)
	if err != nil {
		return cl.fail(err)
	}
	var o admin.Override
	if err := cl.decode(data, &o); err != nil {
		return cl.fail(err)
	}
	if *asJSON {
		stdout.Write(data)
		return exitOK
	}
	fmt.Fprintln(stdout, describe(o))
	fmt.Fprintf(stdout, "undo: steerctl undrain %s\n", o.ID)
	return exitOK
}

func runUndrain(c *command, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "")
	cl, rest, code, done := adminArgs(c, fs, args, stdout, stderr)
	if done {
		return code
	}
	switch {
	case len(rest) == 0:
		return usageErr(c, stderr, "name an override ID, or a TARGET (endpoint:ADDR, pool:ZONE/SERVICE/REGION, region:NAME)")
	case len(rest) > 1:
		return usageErr(c, stderr, "one ID or TARGET at a time (%q is one too many)", rest[1])
	}
	ctx := context.Background()
	arg := rest[0]
	ids := []string{arg}
	if isTarget(arg) {
		target, err := parseTarget(arg)
		if err != nil {
			return usageErr(c, stderr, "%v", err)
		}
		list, _, err := cl.overrides(ctx)
		if err != nil {
			return cl.fail(err)
		}
		ids = ids[:0]
		var active []string
		for _, o := range list {
			if canonicalTarget(o.Target) == canonicalTarget(target) {
				ids = append(ids, o.ID)
			} else {
				active = append(active, o.Target)
			}
		}
		if len(ids) == 0 {
			fmt.Fprintf(stderr, "steerctl: undrain: no active override of %s\n", target)
			if len(active) > 0 {
				fmt.Fprintf(stderr, "active: %s\n", strings.Join(active, ", "))
			}
			return exitFail
		}
	}

	removed := []admin.Override{}
	code = exitOK
	for _, id := range ids {
		data, err := cl.call(ctx, http.MethodDelete, "/v1/overrides/"+url.PathEscape(id), nil, nil)
		var o admin.Override
		if err == nil {
			err = cl.decode(data, &o)
		}
		if err != nil {
			var ae *apiError
			if len(ids) > 1 && errors.As(err, &ae) && ae.status == http.StatusNotFound {
				// Expired or removed since the list: what was asked holds.
				fmt.Fprintf(stderr, "steerctl: undrain: override %s is gone already\n", id)
				continue
			}
			code = max(code, cl.fail(err))
			continue
		}
		removed = append(removed, o)
		if !*asJSON {
			fmt.Fprintln(stdout, "removed "+describe(o))
		}
	}
	if *asJSON {
		enc := newJSONEncoder(stdout)
		enc.Encode(removed)
	}
	return code
}

// isTarget says whether undrain's argument is a target rather than an override ID.
func isTarget(s string) bool {
	if strings.Contains(s, ":") {
		return true
	}
	_, err := netip.ParseAddr(s)
	return err == nil
}

// parseTarget checks the form of an override target and returns it as the API takes it; a
// bare IP address is endpoint:IP.
func parseTarget(s string) (string, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return "endpoint:" + a.String(), nil
	}
	kind, name, _ := strings.Cut(s, ":")
	switch {
	case name == "":
	case kind == "endpoint", kind == "region":
		return s, nil
	case kind == "pool":
		if p := strings.Split(name, "/"); len(p) == 3 && p[0] != "" && p[1] != "" && p[2] != "" {
			return s, nil
		}
		return "", fmt.Errorf("pool target %q is not pool:ZONE/SERVICE/REGION, such as pool:example.com/www/eu-west", s)
	}
	return "", fmt.Errorf("target %q is not endpoint:ADDR, pool:ZONE/SERVICE/REGION, region:NAME or an IP address", s)
}

// canonicalTarget writes a target as the API lists it: an endpoint's IP address in its
// canonical form, a name endpoint and a pool's zone lower case and fully qualified, a pool's
// service relative to its zone.
func canonicalTarget(t string) string {
	kind, name, _ := strings.Cut(t, ":")
	switch kind {
	case "endpoint":
		if a, err := netip.ParseAddr(name); err == nil {
			return kind + ":" + a.String()
		}
		name = strings.ToLower(name)
		if !strings.HasSuffix(name, ".") {
			name += "."
		}
		return kind + ":" + name
	case "pool":
		p := strings.Split(name, "/")
		if len(p) != 3 {
			return t
		}
		zone, svc := strings.ToLower(p[0]), strings.ToLower(p[1])
		if !strings.HasSuffix(zone, ".") {
			zone += "."
		}
		svc = strings.TrimSuffix(svc, "."+zone)
		return kind + ":" + zone + "/" + svc + "/" + p[2]
	}
	return t
}

// whoami is the default of --by: $USER@hostname.
func whoami() string {
	name := os.Getenv("USER")
	if name == "" {
		name = os.Getenv("LOGNAME")
	}
	if name == "" {
		if u, err := user.Current(); err == nil {
			name = u.Username
		}
	}
	host, _ := os.Hostname()
	switch {
	case name == "":
		return host
	case host == "":
		return name
	}
	return name + "@" + host
}
