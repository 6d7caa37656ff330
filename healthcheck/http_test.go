package healthcheck

import (
	"bufio"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestProbeHTTP(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []*http.Request
	_, port := httpBackend(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r)
		mu.Unlock()
		switch r.URL.Path {
		case "/ok":
			w.Write([]byte("all ok"))
		case "/fail":
			http.Error(w, "broken", http.StatusServiceUnavailable)
		case "/redirect":
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		case "/elsewhere":
			w.Write([]byte("moved here"))
		case "/large":
			w.Write([]byte(strings.Repeat("x", maxBody) + "ok"))
		case "/early-hints":
			w.WriteHeader(http.StatusEarlyHints)
			w.Write([]byte("ok"))
		default:
			http.NotFound(w, r)
		}
	})
	tests := []struct {
		name   string
		mod    func(*Config)
		reason string
	}{
		{"ok", func(c *Config) { c.Path = "/ok" }, ""},
		{"body found", func(c *Config) { c.Path = "/ok"; c.ExpectBody = "ok" }, ""},
		{"body missing", func(c *Config) { c.Path = "/ok"; c.ExpectBody = "healthy" }, ReasonBody},
		{"body beyond 64 KiB", func(c *Config) { c.Path = "/large"; c.ExpectBody = "ok" }, ReasonBody},
		{"head has no body", func(c *Config) { c.Path = "/ok"; c.Method = "HEAD"; c.ExpectBody = "ok" }, ReasonBody},
		{"wrong status", func(c *Config) { c.Path = "/fail" }, ReasonStatus},
		{"not found", func(c *Config) { c.Path = "/nothing" }, ReasonStatus},
		{"status accepted", func(c *Config) { c.Path = "/fail"; c.ExpectStatus = []StatusRange{{200, 299}, {503, 503}} }, ""},
		{"redirect judged by status", func(c *Config) { c.Path = "/redirect" }, ""},
		{"redirect not followed", func(c *Config) { c.Path = "/redirect"; c.ExpectStatus = []StatusRange{{200, 200}} }, ReasonStatus},
		{"redirect body not followed", func(c *Config) { c.Path = "/redirect"; c.ExpectBody = "moved here" }, ReasonBody},
		{"interim response skipped", func(c *Config) { c.Path = "/early-hints"; c.ExpectBody = "ok" }, ""},
		{"bad path", func(c *Config) { c.Path = "no-slash" }, ReasonOther},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantReason(t, probe(t, testTarget(TypeHTTP, port, tc.mod)), tc.reason)
		})
	}
	mu.Lock()
	defer mu.Unlock()
	for _, r := range seen {
		if r.URL.Path == "/elsewhere" {
			t.Errorf("a redirect was followed")
		}
	}
}

func TestProbeHTTPRequest(t *testing.T) {
	t.Parallel()
	got := make(chan *http.Request, 1)
	_, port := httpBackend(t, func(w http.ResponseWriter, r *http.Request) { got <- r })
	tg := testTarget(TypeHTTP, port, func(c *Config) {
		c.Path = "/healthz?full=1"
		c.Method = "HEAD"
		c.Host = "www.example.test"
		c.Headers = map[string]string{"X-Check": "steer", "User-Agent": "probe/1"}
	})
	wantReason(t, probe(t, tg), "")
	r := <-got
	if r.Method != "HEAD" || r.URL.Path != "/healthz" || r.URL.RawQuery != "full=1" || r.Host != "www.example.test" ||
		r.Header.Get("X-Check") != "steer" || r.UserAgent() != "probe/1" || !r.Close {
		t.Errorf("request: %s %s host %q headers %v close %t", r.Method, r.URL, r.Host, r.Header, r.Close)
	}

	// Defaults: the address (and port) as Host, our User-Agent.
	wantReason(t, probe(t, testTarget(TypeHTTP, port, nil)), "")
	r = <-got
	if want := "127.0.0.1:" + strconv.Itoa(port); r.Host != want || r.UserAgent() != userAgent {
		t.Errorf("default Host %q, User-Agent %q; want %q, %q", r.Host, r.UserAgent(), want, userAgent)
	}
}

func TestProbeHTTPIPv6(t *testing.T) {
	// No IPv6 listener in tests: check what would go on the wire.
	c := Config{Type: TypeHTTP, Port: 8080}.Normalize()
	req, err := newRequest(c, "2001:db8::10", true)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	req.Write(&b)
	if !strings.Contains(b.String(), "Host: [2001:db8::10]:8080\r\n") {
		t.Errorf("request:\n%s", b.String())
	}
	if got := hostHeader(Config{Type: TypeHTTPS, Port: 443}, "2001:db8::10"); got != "[2001:db8::10]" {
		t.Errorf("hostHeader = %q", got)
	}
	if got := hostPort("2001:db8::10", 53); got != "[2001:db8::10]:53" {
		t.Errorf("hostPort = %q", got)
	}
}

func TestProbeHTTPFailures(t *testing.T) {
	t.Parallel()
	silent, _ := silentPort(t)
	_, trickle := httpBackend(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		for {
			w.Write([]byte("x"))
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
	endless, _ := serveConns(t, func(c net.Conn) {
		go func() {
			bw := bufio.NewWriter(c)
			bw.WriteString("HTTP/1.1 200 OK\r\nX-Long: ")
			for {
				if _, err := bw.WriteString(strings.Repeat("a", 1024)); err != nil {
					return
				}
			}
		}()
	})
	tests := []struct {
		name   string
		tg     Target
		reason string
	}{
		{"refused", testTarget(TypeHTTP, refusedPort(t), nil), ReasonRefused},
		{"reset", testTarget(TypeHTTP, resetPort(t), nil), ReasonReset},
		{"never answers", testTarget(TypeHTTP, silent, nil), ReasonTimeout},
		{"never answers tls", testTarget(TypeHTTPS, silent, nil), ReasonTimeout},
		{"trickling body", testTarget(TypeHTTP, trickle, func(c *Config) { c.ExpectBody = "ok" }), ReasonTimeout},
		{"trickling body not read", testTarget(TypeHTTP, trickle, nil), ""},
		{"endless headers", testTarget(TypeHTTP, endless, nil), ReasonOther},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			wantReason(t, probe(t, tc.tg), tc.reason)
		})
	}
}

func TestProbeHTTPS(t *testing.T) {
	t.Parallel()
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("secure ok")) }))
	s.Config.ErrorLog = log.New(io.Discard, "", 0) // failed handshakes are the point
	s.StartTLS()
	t.Cleanup(s.Close)
	port := portOf(t, s.Listener.Addr().String())

	// httptest's certificate is for 127.0.0.1 and example.com, signed by a CA nobody trusts.
	// The first verification loads the system's roots: give it time.
	wantReason(t, probe(t, testTarget(TypeHTTPS, port, func(c *Config) { c.Timeout = 3 * time.Second; c.Interval = 5 * time.Second })), ReasonTLS)
	wantReason(t, probe(t, testTarget(TypeHTTPS, port, func(c *Config) { c.InsecureTLS = true; c.ExpectBody = "ok" })), "")
	wantReason(t, probe(t, testTarget(TypeHTTPS, port, func(c *Config) { c.InsecureTLS = true; c.Host = "example.com" })), "")
	// Plain HTTP to a TLS port: the server answers 400.
	wantReason(t, probe(t, testTarget(TypeHTTP, port, nil)), ReasonStatus)
}

func TestBodyContains(t *testing.T) {
	tests := []struct {
		body, want string
		found      bool
	}{
		{"hello ok", "ok", true},
		{"", "ok", false},
		{strings.Repeat("x", maxBody-2) + "ok", "ok", true},
		{strings.Repeat("x", maxBody-1) + "ok", "ok", false},
	}
	for _, tc := range tests {
		// A reader that returns one byte at a time finds a string across reads.
		found, err := new(buffer).bodyContains(&oneByteReader{strings.NewReader(tc.body)}, tc.want)
		if err != nil || found != tc.found {
			t.Errorf("bodyContains(%d bytes, %q) = %t, %v; want %t", len(tc.body), tc.want, found, err, tc.found)
		}
	}
}

type oneByteReader struct{ r *strings.Reader }

func (o *oneByteReader) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return o.r.Read(p)
}
