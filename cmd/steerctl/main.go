// Command steerctl is the operator CLI of steerdns. `steerctl check` validates zone policy
// files offline, exactly as the steer plugin loads them; status, explain, drain and undrain
// will talk to the plugin's admin API, which is not built yet.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// Exit codes.
const (
	exitOK    = 0 // success; for check, every file is valid
	exitFail  = 1 // check found a problem
	exitUsage = 2 // the command line is wrong, or the command is not built yet
)

// command is one subcommand of steerctl.
type command struct {
	name    string
	summary string // one line for the command list
	help    string // the full text of `steerctl help NAME`
	run     func(c *command, args []string, stdout, stderr io.Writer) int
}

const usage = `steerctl is the operator CLI of steerdns, the DNS server that answers each name from the
endpoints that are healthy now.

Usage:
  steerctl COMMAND [OPTIONS] [ARGUMENTS]

Commands:
%s
Exit status: 0 on success, 1 when check finds a problem, 2 on a usage error.

status, explain, drain and undrain talk to the admin API of a running steerdns (the steer
plugin's "admin" option). That API is not built yet: these commands only say so, and exit 2.

Run "steerctl help COMMAND" or "steerctl COMMAND --help" for the options of a command.
`

func commands() []*command {
	return []*command{
		{name: "check", summary: "validate zone policy files offline, as the server loads them", help: checkHelp, run: runCheck},
		{name: "status", summary: "show zones, services, pools and endpoint health (admin API: not built yet)", help: statusHelp, run: runAdmin},
		{name: "explain", summary: "show how a query would be answered, step by step (admin API: not built yet)", help: explainHelp, run: runAdmin},
		{name: "drain", summary: "take an endpoint, a pool or a region out of the answers (admin API: not built yet)", help: drainHelp, run: runAdmin},
		{name: "undrain", summary: "remove a drain or force-up override (admin API: not built yet)", help: undrainHelp, run: runAdmin},
		{name: "help", summary: "show this text, or the help of a command", help: "Usage: steerctl help [COMMAND]\n\nShows the list of commands, or the help of COMMAND.\n", run: runHelp},
	}
}

func lookup(name string) *command {
	for _, c := range commands() {
		if c.name == name {
			return c
		}
	}
	return nil
}

func printUsage(w io.Writer) {
	var b strings.Builder
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, usage, b.String())
}

// run is steerctl with its arguments (without the program name); it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		printUsage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help":
		printUsage(stdout)
		return exitOK
	}
	c := lookup(args[0])
	if c == nil {
		if strings.HasPrefix(args[0], "-") {
			fmt.Fprintf(stderr, "steerctl: unknown option %s before the command\n", args[0])
		} else {
			fmt.Fprintf(stderr, "steerctl: unknown command %q\n", args[0])
		}
		fmt.Fprintln(stderr, `Run "steerctl help" for the list of commands.`)
		return exitUsage
	}
	return c.run(c, args[1:], stdout, stderr)
}

func runHelp(c *command, args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) == 0:
		printUsage(stdout)
		return exitOK
	case len(args) > 1:
		fmt.Fprintln(stderr, "steerctl: help: one command at most")
		return exitUsage
	}
	target := lookup(args[0])
	if target == nil {
		fmt.Fprintf(stderr, "steerctl: help: unknown command %q\n", args[0])
		return exitUsage
	}
	fmt.Fprint(stdout, target.help)
	return exitOK
}

// parseFlags parses the options of a command, which may come before, between or after its
// arguments ("--" ends the options); it returns the arguments. -h and --help print the
// command's help: then code is set and the caller returns it.
func parseFlags(c *command, fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (rest []string, code int, done bool) {
	fs.SetOutput(io.Discard)
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, c.help)
			return nil, exitOK, true
		}
		if err != nil {
			fmt.Fprintf(stderr, "steerctl: %s: %v\n", c.name, err)
			fmt.Fprintf(stderr, "Run \"steerctl help %s\" for its usage.\n", c.name)
			return nil, exitUsage, true
		}
		left := fs.Args()
		if len(left) == 0 {
			return rest, exitOK, false
		}
		if n := len(args) - len(left); n > 0 && args[n-1] == "--" {
			return append(rest, left...), exitOK, false
		}
		rest = append(rest, left[0])
		args = left[1:]
	}
}

const statusHelp = `Usage: steerctl status [--admin ADDR] [ZONE...]

Shows the zones a running steerdns serves: services, pools, endpoints, their health state, the
last change and the last error of each policy file (GET /v1/status of the admin API).

Not built yet: the admin API does not exist yet, so this command exits 2.
`

const explainHelp = `Usage: steerctl explain [--admin ADDR] [--client IP] NAME [TYPE]

Shows how a running steerdns would answer a query for NAME (type A by default) from a client
at IP: the service, its policy, each pool's health and the answer, step by step
(GET /v1/explain of the admin API).

Not built yet: the admin API does not exist yet, so this command exits 2.
`

const drainHelp = `Usage: steerctl drain [--admin ADDR] [--token-file FILE] ZONE SERVICE [POOL|ENDPOINT]
       steerctl drain [--admin ADDR] [--token-file FILE] --region REGION

Takes an endpoint, a pool or a whole region out of the answers at once, as if it were down,
without touching the policy file. The override is kept across restarts (POST /v1/overrides
of the admin API).

Not built yet: the admin API does not exist yet, so this command exits 2.
`

const undrainHelp = `Usage: steerctl undrain [--admin ADDR] [--token-file FILE] OVERRIDE-ID

Removes a drain or force-up override; health checks decide again (DELETE /v1/overrides/{id}
of the admin API).

Not built yet: the admin API does not exist yet, so this command exits 2.
`

// runAdmin stands for the commands of the admin API until it exists.
func runAdmin(c *command, args []string, stdout, stderr io.Writer) int {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "-help" || a == "--help" {
			fmt.Fprint(stdout, c.help)
			return exitOK
		}
	}
	fmt.Fprintf(stderr, "steerctl: %s: the admin API is not built yet\n", c.name)
	return exitUsage
}
