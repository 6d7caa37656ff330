package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
)

const explainHelp = `Usage: steerctl explain [--client ADDR|PREFIX] [--json] NAME [TYPE]

Shows how a running steerdns would answer a query for NAME of TYPE (A by default) now, and why,
step by step (GET /v1/explain of the admin API): where the client is and from what, each pool
the policy considered and its health, the choice, the TTL and the ECS scope; then the answer.
The server computes it with the same code as its answers.

Options:
  --client ADDR     the query comes from ADDR (its source address)
  --client PREFIX   the query carries ECS with PREFIX, such as 192.0.2.0/24
                    (default: no client location)
  --json            print the API's JSON answer as it is

` + adminHelp + `
` + adminExit + `
Examples:
  steerctl explain www.example.com
  steerctl explain www.example.com AAAA --client 2001:db8:e0::/48
`

// explanation is what steerctl reads of the plugin's Explanation (GET /v1/explain).
type explanation struct {
	Name   string `json:"name"`
	Type   string `json:"type"`
	Zone   string `json:"zone"`
	Rcode  string `json:"rcode"`
	Client struct {
		Address   string   `json:"address"`
		Prefix    string   `json:"prefix"`
		From      string   `json:"from"`
		Country   string   `json:"country"`
		Continent string   `json:"continent"`
		Latitude  *float64 `json:"latitude"`
		Longitude *float64 `json:"longitude"`
	} `json:"client"`
	Services []struct {
		Name    string `json:"name"`
		Policy  string `json:"policy"`
		Chosen  string `json:"chosen"`
		Outcome string `json:"outcome"`
	} `json:"services"`
	Scope  *int     `json:"scope"`
	Answer []string `json:"answer"`
	TTL    *uint32  `json:"ttl"`
	Steps  []string `json:"steps"`
}

func runExplain(c *command, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	clientSpec := fs.String("client", "", "")
	asJSON := fs.Bool("json", false, "")
	cl, rest, code, done := adminArgs(c, fs, args, stdout, stderr)
	if done {
		return code
	}
	switch {
	case len(rest) == 0:
		return usageErr(c, stderr, "name the query: NAME [TYPE]")
	case len(rest) > 2:
		return usageErr(c, stderr, "NAME [TYPE] at most (%q is one too many)", rest[2])
	}
	q := url.Values{"name": {rest[0]}}
	if len(rest) == 2 {
		q.Set("type", strings.ToUpper(rest[1]))
	}
	if *clientSpec != "" {
		q.Set("client", *clientSpec)
	}
	var ex explanation
	data, err := cl.get(context.Background(), "/v1/explain", q, &ex)
	if err != nil {
		return cl.fail(err)
	}
	if *asJSON {
		stdout.Write(data)
		return exitOK
	}
	printExplanation(stdout, &ex)
	return exitOK
}

func printExplanation(w io.Writer, ex *explanation) {
	fmt.Fprintf(w, "%s %s: %s", ex.Name, ex.Type, ex.Rcode)
	if ex.Zone != "" {
		fmt.Fprintf(w, " (zone %s)", ex.Zone)
	}
	fmt.Fprintln(w)

	cli := ex.Client
	var where []string
	switch cli.From {
	case "ecs":
		where = append(where, cli.Prefix+" (ECS)")
	case "source":
		where = append(where, cli.Address+" (source address)")
	default:
		where = append(where, "not located")
	}
	if cli.Country != "" {
		where = append(where, "country "+cli.Country)
	}
	if cli.Continent != "" {
		where = append(where, "continent "+cli.Continent)
	}
	if cli.Latitude != nil && cli.Longitude != nil {
		where = append(where, fmt.Sprintf("at %.2f, %.2f", *cli.Latitude, *cli.Longitude))
	}
	fmt.Fprintf(w, "client: %s\n", strings.Join(where, ", "))

	// The server indents the steps of each pool under its service: kept as they come.
	fmt.Fprintln(w, "\nsteps:")
	for _, s := range ex.Steps {
		fmt.Fprintf(w, "  %s\n", s)
	}

	var about []string
	if ex.TTL != nil {
		about = append(about, fmt.Sprintf("TTL %d", *ex.TTL))
	}
	if ex.Scope != nil {
		about = append(about, fmt.Sprintf("ECS scope /%d", *ex.Scope))
	}
	for _, s := range ex.Services {
		if s.Outcome != "" {
			about = append(about, fmt.Sprintf("%s: %s", s.Name, s.Outcome))
		}
	}
	head := "\nanswer"
	if len(about) > 0 {
		head += " (" + strings.Join(about, ", ") + ")"
	}
	if len(ex.Answer) == 0 {
		fmt.Fprintf(w, "%s: none, %s\n", head, ex.Rcode)
		return
	}
	fmt.Fprintf(w, "%s:\n", head)
	for _, rr := range ex.Answer {
		fmt.Fprintf(w, "  %s\n", rr)
	}
}
