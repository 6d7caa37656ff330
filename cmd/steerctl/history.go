package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/steerdns/steerdns/plugin/steer/admin"
)

const historyHelp = `Usage: steerctl history [--since DURATION|TIME] [--endpoint ADDR] [--json]

Shows the recent changes of endpoint states, oldest first (GET /v1/history of the admin API):
time (UTC), endpoint, check, from and to, the reason, the node that saw it and the latency of
the probe that made it.

Options:
  --since DURATION   only changes within DURATION before now, such as 1h or 15m
  --since TIME       only changes at or after TIME, RFC 3339 (2026-01-02T15:04:05Z: the form
                     of the TIME column)
  --endpoint ADDR    only changes of this endpoint
  --json             print the API's JSON answer as it is

` + adminHelp + `
` + adminExit + `
Examples:
  steerctl history --since 1h
  steerctl history --endpoint 192.0.2.10 --json
`

func runHistory(c *command, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	since := fs.String("since", "", "")
	endpoint := fs.String("endpoint", "", "")
	asJSON := fs.Bool("json", false, "")
	cl, rest, code, done := adminArgs(c, fs, args, stdout, stderr)
	if done {
		return code
	}
	if len(rest) > 0 {
		return usageErr(c, stderr, "no arguments, only options (%q is one too many)", rest[0])
	}
	q := url.Values{}
	if *since != "" {
		_, errT := time.Parse(time.RFC3339, *since)
		d, errD := time.ParseDuration(*since)
		if errT != nil && (errD != nil || d < 0) {
			return usageErr(c, stderr, "--since %q is neither a duration (1h) nor an RFC 3339 time (2026-01-02T15:04:05Z)", *since)
		}
		q.Set("since", *since)
	}
	if *endpoint != "" {
		q.Set("endpoint", *endpoint)
	}
	var h struct {
		Transitions []admin.Transition `json:"transitions"`
	}
	data, err := cl.get(context.Background(), "/v1/history", q, &h)
	if err != nil {
		return cl.fail(err)
	}
	if *asJSON {
		stdout.Write(data)
		return exitOK
	}
	if len(h.Transitions) == 0 {
		fmt.Fprintln(stdout, "no state changes recorded")
		return exitOK
	}
	t := newTable(stdout, "TIME", "ENDPOINT", "CHECK", "FROM", "TO", "REASON", "NODE", "LATENCY")
	for _, tr := range h.Transitions {
		t.row(stamp(tr.Time), tr.Endpoint, tr.Check, tr.From, tr.To, tr.Reason, tr.Node, millis(tr.LatencyMs))
	}
	t.flush()
	return exitOK
}
