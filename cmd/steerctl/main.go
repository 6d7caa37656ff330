// Command steerctl is the operator CLI of steerdns. check and probe work on policy files
// offline: check validates them exactly as the steer plugin loads them, probe runs their
// health checks once from this machine. status, explain, history, overrides, drain, force-up
// and undrain talk to the admin API of a running steerdns (package plugin/steer/admin).
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
	exitOK    = 0 // success
	exitFail  = 1 // a finding: an invalid file, a target down, no such name, target or override
	exitUsage = 2 // the command line is wrong, the admin API cannot be reached or answers an error
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
check and probe read policy files; no server is needed. The other commands talk to the admin
API of a running steerdns (the steer plugin's "admin" option):
  --admin URL         default $STEER_ADMIN, else http://127.0.0.1:9480
  --token-file FILE   the bearer token of writes (drain, force-up, undrain); default: the token
                      in $STEER_TOKEN

Exit status:
  0  success
  1  a finding: check or probe found an invalid file, probe found an endpoint down, or the
     server knows no such name, target or override (undrain found nothing to remove)
  2  a usage error; the admin API cannot be reached (10 s timeout), or it answered an error
     other than 404 (its message is printed: 401 is a missing or wrong token)

Run "steerctl help COMMAND" or "steerctl COMMAND --help" for the options of a command.
`

func commands() []*command {
	return []*command{
		{name: "check", summary: "validate zone policy files offline, as the server loads them", help: checkHelp, run: runCheck},
		{name: "probe", summary: "run the health checks of policy files once, from here: a dry run", help: probeHelp, run: runProbe},
		{name: "status", summary: "show zones, services, pools and the state of each endpoint", help: statusHelp, run: runStatus},
		{name: "explain", summary: "show how a query would be answered now, step by step", help: explainHelp, run: runExplain},
		{name: "history", summary: "show the recent changes of endpoint states", help: historyHelp, run: runHistory},
		{name: "overrides", summary: "list the active drain and force-up overrides", help: overridesHelp, run: runOverrides},
		{name: "drain", summary: "take an endpoint, a pool or a region out of the answers", help: drainHelp, run: runDrain},
		{name: "force-up", summary: "keep an endpoint, a pool or a region in the answers", help: forceUpHelp, run: runForceUp},
		{name: "undrain", summary: "remove overrides (by ID or target): health checks decide again", help: undrainHelp, run: runUndrain},
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
		fmt.Fprintf(&b, "  %-10s %s\n", c.name, c.summary)
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
