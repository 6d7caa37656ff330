package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/steerdns/steerdns/zones"
)

const checkHelp = `Usage: steerctl check [--format text|json] FILE|DIR...

Validates zone policy files offline: each file is decoded strictly, validated and compiled
exactly as the steer plugin loads it, without a server and without probing anything. A DIR
stands for its *.yaml and *.yml files; hidden files and editor temporary files are skipped, as
the server skips them. Two files that claim the same zone are an error: the server serves
the zone from one of them only (here, the first named).

Options:
  --format text   (default) every valid file on stdout, as
                    FILE: ok (zone example.com., 2 services, 4 static records)
                  and every problem on stderr, one a line, as
                    FILE:LINE: key.path: message
  --format json   a JSON array on stdout, one object per file:
                    {"file": "...", "zone": "example.com.", "ok": false,
                     "errors": [{"file": "...", "line": 14, "path": "services.www", "message": "..."}]}
                  (line 0 and path "" when a problem has no single place)

Exit status: 0 when every file is valid, 1 when any is not, 2 on a usage error.

Examples:
  steerctl check zones/
  steerctl check --format json zones/example.com.yaml zones/example.org.yaml
`

// result is the outcome of checking one file; it is also the JSON form.
type result struct {
	File   string      `json:"file"`
	Zone   string      `json:"zone"`
	OK     bool        `json:"ok"`
	Errors []jsonError `json:"errors"`

	services, records int
	compiled          *zones.Zone // the file compiled, when it is valid
	order             []string    // its services' names, in file order
}

type jsonError struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Path    string `json:"path"`
	Message string `json:"message"`
}

func (r *result) fail(line int, path, msg string) {
	r.OK = false
	r.Errors = append(r.Errors, jsonError{File: r.File, Line: line, Path: path, Message: msg})
}

func runCheck(c *command, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	format := fs.String("format", "text", "output format: text or json")
	paths, code, done := parseFlags(c, fs, args, stdout, stderr)
	if done {
		return code
	}
	if *format != "text" && *format != "json" {
		fmt.Fprintf(stderr, "steerctl: check: --format is text or json, not %q\n", *format)
		return exitUsage
	}
	if len(paths) == 0 {
		fmt.Fprintln(stderr, "steerctl: check: name at least one policy file or folder")
		fmt.Fprintln(stderr, `Run "steerctl help check" for its usage.`)
		return exitUsage
	}

	results := checkPaths(paths)
	code = exitOK
	for _, r := range results {
		if !r.OK {
			code = exitFail
		}
	}
	if *format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(results); err != nil {
			fmt.Fprintf(stderr, "steerctl: check: %v\n", err)
			return exitFail
		}
		return code
	}
	for _, r := range results {
		if r.OK {
			fmt.Fprintf(stdout, "%s: ok (zone %s, %s, %s)\n", r.File, r.Zone, plural(r.services, "service"), plural(r.records, "static record"))
			continue
		}
		for _, e := range r.Errors {
			fmt.Fprintln(stderr, (&zones.Error{File: e.File, Line: e.Line, Path: e.Path, Msg: e.Message}).Error())
		}
	}
	return code
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// checkPaths checks every policy file named by paths, in order, each file once.
func checkPaths(paths []string) []*result {
	var results []*result
	seen := map[string]bool{}
	add := func(file string) {
		if key := filepath.Clean(file); !seen[key] {
			seen[key] = true
			results = append(results, checkFile(file))
		}
	}
	for _, p := range paths {
		fi, err := os.Stat(p)
		switch {
		case err != nil:
			r := &result{File: p, Errors: []jsonError{}}
			r.fail(0, "", describeErr(err))
			results = append(results, r)
		case fi.IsDir():
			files, err := policyFiles(p)
			if err == nil && len(files) == 0 {
				err = errors.New("no policy files (*.yaml, *.yml) in this folder")
			}
			if err != nil {
				r := &result{File: p, Errors: []jsonError{}}
				r.fail(0, "", describeErr(err))
				results = append(results, r)
			}
			for _, f := range files {
				add(f)
			}
		default:
			add(p)
		}
	}
	sameZone(results)
	return results
}

// policyFiles lists the policy files of a folder as the server does, sorted.
func policyFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, de := range entries {
		if zones.IsPolicyFile(de.Name()) && de.Type()&fs.ModeType&^fs.ModeSymlink == 0 {
			out = append(out, filepath.Join(dir, de.Name()))
		}
	}
	sort.Strings(out)
	return out, nil
}

func describeErr(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	if errors.Is(err, fs.ErrNotExist) {
		return "no such file or folder"
	}
	return err.Error()
}

// checkFile decodes and compiles one policy file.
func checkFile(file string) *result {
	r := &result{File: file, OK: true, Errors: []jsonError{}}
	data, err := os.ReadFile(file)
	if err != nil {
		r.fail(0, "", "cannot read: "+describeErr(err))
		return r
	}
	pf, err := zones.Decode(file, data)
	if err != nil {
		var es zones.Errors
		if !errors.As(err, &es) {
			r.fail(0, "", err.Error())
			return r
		}
		for _, e := range es {
			r.fail(e.Line, e.Path, e.Msg)
		}
		return r
	}
	sum := sha256.Sum256(data)
	r.compiled = zones.Compile(pf, hex.EncodeToString(sum[:]), 1)
	for _, s := range pf.Services {
		r.order = append(r.order, s.Name)
	}
	r.Zone, r.services, r.records = pf.Zone, len(pf.Services), len(pf.Static)
	return r
}

// sameZone marks every valid file that claims the zone of an earlier file.
func sameZone(results []*result) {
	first := map[string]string{}
	for _, r := range results {
		if !r.OK || r.Zone == "" {
			continue
		}
		if f, dup := first[r.Zone]; dup {
			r.fail(zoneLine(r.File), "zone", fmt.Sprintf("zone %s is also in %s; a zone is served from one file only", r.Zone, f))
			continue
		}
		first[r.Zone] = r.File
	}
}

// zoneLine returns the line of the top-level zone key of a file, or 0.
func zoneLine(file string) int {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, len(data)+1)
	for n := 1; sc.Scan(); n++ {
		if rest, ok := strings.CutPrefix(sc.Text(), "zone"); ok && strings.HasPrefix(strings.TrimLeft(rest, " \t"), ":") {
			return n
		}
	}
	return 0
}
