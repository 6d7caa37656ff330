package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/steerdns/steerdns/plugin/steer/admin"
)

// Defaults of the admin API options.
const (
	defaultAdmin = "http://127.0.0.1:9480"
	httpTimeout  = 10 * time.Second
	maxReply     = 64 << 20 // a status of 100,000 endpoints is some tens of MB
)

// adminHelp is the part of every admin command's help that describes the common options.
const adminHelp = `Admin API options (every command that talks to a running steerdns):
  --admin URL         the admin API (the steer plugin's "admin" option); default $STEER_ADMIN,
                      else ` + defaultAdmin + `; "HOST:PORT" means http://HOST:PORT
  --token-file FILE   read the bearer token of writes from FILE (the server's
                      admin_token_file); default: the token in $STEER_TOKEN, if set
`

// adminExit is the exit status text of the admin commands.
const adminExit = `Exit status: 0 on success; 1 when the server knows no such name, target or override
(404: the message lists what exists); 2 on a usage error, when the admin API cannot be reached,
or when it answers any other error (its message is printed).
`

// adminFlags are the options every admin command takes.
type adminFlags struct {
	url       string
	tokenFile string
}

func (a *adminFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.url, "admin", "", "admin API URL")
	fs.StringVar(&a.tokenFile, "token-file", "", "file that holds the bearer token")
}

// client talks to the admin API for one command.
type client struct {
	cmd    string
	base   string // scheme://host[:port][/prefix], no trailing slash
	token  string
	http   *http.Client
	stderr io.Writer
}

// client makes the API client from the options and the environment. On a usage error it
// prints it and returns exitUsage.
func (a *adminFlags) client(c *command, stderr io.Writer) (*client, int) {
	base := a.url
	if base == "" {
		base = os.Getenv("STEER_ADMIN")
	}
	if base == "" {
		base = defaultAdmin
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		fmt.Fprintf(stderr, "steerctl: %s: the admin URL %q is not http://HOST:PORT or https://HOST:PORT\n", c.name, base)
		return nil, exitUsage
	}
	cl := &client{cmd: c.name, base: strings.TrimSuffix(u.String(), "/"), http: &http.Client{Timeout: httpTimeout}, stderr: stderr}
	switch {
	case a.tokenFile != "":
		b, err := os.ReadFile(a.tokenFile)
		if err != nil {
			fmt.Fprintf(stderr, "steerctl: %s: --token-file: %s: %s\n", c.name, a.tokenFile, describeErr(err))
			return nil, exitUsage
		}
		cl.token = strings.TrimSpace(string(b))
		if cl.token == "" {
			fmt.Fprintf(stderr, "steerctl: %s: --token-file: %s is empty\n", c.name, a.tokenFile)
			return nil, exitUsage
		}
	default:
		cl.token = strings.TrimSpace(os.Getenv("STEER_TOKEN"))
	}
	return cl, exitOK
}

// apiError is an error answer of the API.
type apiError struct {
	status int
	body   admin.Error
}

func (e *apiError) Error() string { return e.body.Error }

// call does one request: body, when not nil, is sent as JSON; the answer's body is returned
// when the status is 2xx, else an *apiError.
func (c *client) call(ctx context.Context, method, path string, query url.Values, body any) ([]byte, error) {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "steerctl")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	// The token goes with writes only, which are the calls that need it.
	if c.token != "" && method != http.MethodGet {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxReply))
	if err != nil {
		return nil, fmt.Errorf("reading the answer of %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 == 2 {
		return data, nil
	}
	e := &apiError{status: resp.StatusCode}
	if json.Unmarshal(data, &e.body) != nil || e.body.Error == "" {
		// Not the admin API's JSON: a proxy, or another server on that port.
		text := strings.TrimSpace(string(data))
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			text = text[:i]
		}
		if len(text) > 200 {
			text = text[:200] + "..."
		}
		e.status = 0 // never a finding: this is not steerdns answering
		e.body.Error = fmt.Sprintf("%s %s answered %s, not as the steerdns admin API does: %q", method, u, resp.Status, text)
	}
	return nil, e
}

// get calls GET path and decodes its answer into out (when not nil); it returns the raw answer.
func (c *client) get(ctx context.Context, path string, query url.Values, out any) ([]byte, error) {
	data, err := c.call(ctx, http.MethodGet, path, query, nil)
	if err != nil {
		return nil, err
	}
	return data, c.decode(data, out)
}

func (c *client) decode(data []byte, out any) error {
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("the answer is not what steerctl expects (a steerctl of another version?): %w", err)
	}
	return nil
}

// fail prints err and returns the exit code for it: 1 for a 404 of the API (the thing named
// does not exist), else 2.
func (c *client) fail(err error) int {
	var ae *apiError
	if !errors.As(err, &ae) {
		var ue *url.Error
		if errors.As(err, &ue) {
			msg := ue.Err.Error()
			if ue.Timeout() {
				msg = fmt.Sprintf("no answer within %s", httpTimeout)
			}
			fmt.Fprintf(c.stderr, "steerctl: %s: cannot reach the admin API at %s: %s\n", c.cmd, c.base, msg)
			fmt.Fprintln(c.stderr, "Is steerdns running with the admin option there? Set --admin URL or STEER_ADMIN.")
			return exitUsage
		}
		fmt.Fprintf(c.stderr, "steerctl: %s: %v\n", c.cmd, err)
		return exitUsage
	}
	fmt.Fprintf(c.stderr, "steerctl: %s: %s\n", c.cmd, ae.body.Error)
	if len(ae.body.Known) > 0 {
		fmt.Fprintf(c.stderr, "known: %s\n", strings.Join(ae.body.Known, ", "))
	}
	switch ae.status {
	case http.StatusNotFound:
		return exitFail
	case http.StatusUnauthorized:
		if c.token == "" {
			fmt.Fprintln(c.stderr, "No token was given: use --token-file FILE or set STEER_TOKEN.")
		} else {
			fmt.Fprintln(c.stderr, "The token given was refused: it must be the content of the server's admin_token_file.")
		}
	}
	return exitUsage
}

// adminArgs parses the options of an admin command (fs holds its own options; the common ones
// are added here) and makes its client. When done is true, the caller returns code.
func adminArgs(c *command, fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (cl *client, rest []string, code int, done bool) {
	var af adminFlags
	af.register(fs)
	rest, code, done = parseFlags(c, fs, args, stdout, stderr)
	if done {
		return nil, nil, code, true
	}
	cl, code = af.client(c, stderr)
	if cl == nil {
		return nil, nil, code, true
	}
	return cl, rest, exitOK, false
}

// usageErr prints a usage error of command c and returns exitUsage.
func usageErr(c *command, stderr io.Writer, format string, args ...any) int {
	fmt.Fprintf(stderr, "steerctl: %s: %s\n", c.name, fmt.Sprintf(format, args...))
	fmt.Fprintf(stderr, "Run \"steerctl help %s\" for its usage.\n", c.name)
	return exitUsage
}

// newJSONEncoder writes JSON as the API does: indented by two spaces.
func newJSONEncoder(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc
}
