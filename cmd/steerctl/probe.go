package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/steerdns/steerdns/healthcheck"
	"github.com/steerdns/steerdns/zones"
)

const probeHelp = `Usage: steerctl probe [--service NAME] [--source ADDR] [--json] FILE|DIR...

Runs the health checks of policy files once, from this machine, against their endpoints, and
prints each result: a dry run before deploying. The files are read as "steerctl check" reads
them (a DIR stands for its policy files); an invalid file is reported as check reports it and
not probed. Each distinct (check, endpoint) pair is probed once, however many services name
it, with at most 64 probes at once; each probe takes at most its check's timeout. No server
is needed, and nothing is sent to one.

The table has a row per endpoint of each service and pool: service, pool, endpoint, check,
result (up, down, or "not checked" for check none), the reason of a failure (timeout, refused,
reset, status, body, tls, dns, grpc, other), the probe's latency and the error in full.

Options:
  --service NAME   only the endpoints of this service: its name relative to its zone
                   ("www", "@" for the apex) or fully qualified ("www.example.com.")
  --source ADDR    send every probe from ADDR, an IP address of this machine, as the
                   Corefile's probe_source does (default: the kernel's choice); an
                   endpoint of the other IP family is down, reason other
  --json           a JSON array on stdout, one object per endpoint:
                     {"zone": "example.com.", "service": "www.example.com.", "pool": "us-east",
                      "endpoint": "192.0.2.10", "check": "web", "checked": true, "up": false,
                      "reason": "refused", "error": "...", "latency_ms": 0.2}

Exit status: 0 when every endpoint probed is up; 1 when any is down or any file is invalid; 2
on a usage error.

Examples:
  steerctl probe zones/
  steerctl probe --service www zones/example.com.yaml
  steerctl probe --source 192.0.2.53 zones/
`

// probeParallel bounds the probes in flight.
const probeParallel = 64

// probeRow is one endpoint's result; it is also the JSON form.
type probeRow struct {
	Zone      string   `json:"zone"`
	Service   string   `json:"service"`
	Pool      string   `json:"pool"`
	Endpoint  string   `json:"endpoint"`
	Check     string   `json:"check"`
	Checked   bool     `json:"checked"`
	Up        bool     `json:"up"`
	Reason    string   `json:"reason,omitempty"`
	Error     string   `json:"error,omitempty"`
	LatencyMs *float64 `json:"latency_ms,omitempty"`

	key string // the target probed
}

func runProbe(c *command, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	service := fs.String("service", "", "")
	sourceArg := fs.String("source", "", "")
	asJSON := fs.Bool("json", false, "")
	paths, code, done := parseFlags(c, fs, args, stdout, stderr)
	if done {
		return code
	}
	if len(paths) == 0 {
		return usageErr(c, stderr, "name at least one policy file or folder")
	}
	var source netip.Addr
	if *sourceArg != "" {
		var err error
		if source, err = netip.ParseAddr(*sourceArg); err != nil {
			return usageErr(c, stderr, "--source %q is not an IP address", *sourceArg)
		}
		// Once, before any probe: an address that is not this machine's would fail them all.
		if err := healthcheck.CheckSource(source); err != nil {
			return usageErr(c, stderr, "--source %s: %v", source, err)
		}
	}

	results := checkPaths(paths)
	invalid := 0
	for _, r := range results {
		if r.OK {
			continue
		}
		invalid++
		for _, e := range r.Errors {
			fmt.Fprintln(stderr, (&zones.Error{File: e.File, Line: e.Line, Path: e.Path, Msg: e.Message}).Error())
		}
	}

	rows, targets, known := probeRows(results, *service)
	if *service != "" && len(rows) == 0 && invalid == 0 {
		sort.Strings(known)
		if len(known) == 0 {
			known = []string{"none"}
		}
		return usageErr(c, stderr, "no service %q in these files (services: %s)", *service, strings.Join(known, ", "))
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	got := probeAll(ctx, targets, source)

	up, down, unchecked := 0, 0, 0
	for _, res := range got {
		if res.OK {
			up++
		} else {
			down++
		}
	}
	for i := range rows {
		r := &rows[i]
		if !r.Checked {
			unchecked++
			continue
		}
		res := got[r.key]
		if r.Up = res.OK; !res.OK {
			r.Reason = res.Reason
			if res.Err != nil {
				r.Error = res.Err.Error()
			}
		}
		ms := float64(res.Duration) / float64(time.Millisecond)
		r.LatencyMs = &ms
	}

	code = exitOK
	if down > 0 || invalid > 0 {
		code = exitFail
	}
	if *asJSON {
		if rows == nil {
			rows = []probeRow{}
		}
		if err := newJSONEncoder(stdout).Encode(rows); err != nil {
			fmt.Fprintf(stderr, "steerctl: probe: %v\n", err)
			return exitFail
		}
		return code
	}
	if len(rows) > 0 {
		t := newTable(stdout, "SERVICE", "POOL", "ENDPOINT", "CHECK", "RESULT", "REASON", "LATENCY", "ERROR")
		for _, r := range rows {
			result, lat := "not checked", ""
			switch {
			case !r.Checked:
			case r.Up:
				result = "up"
			default:
				result = "down"
			}
			if r.LatencyMs != nil {
				lat = millis(r.LatencyMs)
			}
			t.row(r.Service, r.Pool, r.Endpoint, r.Check, result, r.Reason, lat, r.Error)
		}
		t.flush()
	}
	summary := fmt.Sprintf("%s probed: %d up, %d down", plural(len(targets), "target"), up, down)
	if unchecked > 0 {
		summary += fmt.Sprintf("; %s not checked (check none)", plural(unchecked, "endpoint"))
	}
	if invalid > 0 {
		summary += fmt.Sprintf("; %s not valid, not probed", plural(invalid, "file"))
	}
	fmt.Fprintln(stdout, summary)
	return code
}

// probeRows lists the endpoints of the valid files (of service only, when it is set) in file
// order and the distinct targets they name; known lists the services, for a service that
// matches none.
func probeRows(results []*result, service string) (rows []probeRow, targets map[string]healthcheck.Target, known []string) {
	targets = map[string]healthcheck.Target{}
	want := strings.ToLower(service)
	for _, res := range results {
		if !res.OK || res.compiled == nil {
			continue
		}
		z := res.compiled
		for _, name := range res.order {
			rel := z.Relative(name)
			known = append(known, name)
			if service != "" && want != rel && want != name && want+"." != name {
				continue
			}
			svc := z.Services[name]
			for _, p := range svc.Pools {
				for _, ep := range p.Endpoints {
					r := probeRow{Zone: z.Origin, Service: name, Pool: p.Label, Endpoint: ep.Address, Check: ep.Check}
					if ep.Target != zones.NoTarget {
						t := z.Targets[ep.Target]
						r.Checked, r.key = true, t.Key
						targets[t.Key] = t
					}
					rows = append(rows, r)
				}
			}
		}
	}
	return rows, targets, known
}

// probeAll probes every target once from source (the zero Addr: the kernel's choice),
// probeParallel at a time, and returns the results by key.
func probeAll(ctx context.Context, targets map[string]healthcheck.Target, source netip.Addr) map[string]healthcheck.Result {
	out := make(map[string]healthcheck.Result, len(targets))
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		slot = make(chan struct{}, probeParallel)
	)
	for key, t := range targets {
		slot <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slot; wg.Done() }()
			r := healthcheck.ProbeFrom(ctx, t, source)
			mu.Lock()
			out[key] = r
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}
