package test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func TestGRPCCheck(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	hs.SetServingStatus("app", healthpb.HealthCheckResponse_SERVING)
	go gs.Serve(l)
	t.Cleanup(gs.Stop)

	s := startHealth(t, "grpc", l.Addr().(*net.TCPAddr).Port, "    service: app", "all", "none")
	waitAnswer(t, s, "127.0.0.1")
	hs.SetServingStatus("app", healthpb.HealthCheckResponse_NOT_SERVING)
	waitAnswer(t, s, "127.0.0.2")
	hs.SetServingStatus("app", healthpb.HealthCheckResponse_SERVING)
	waitAnswer(t, s, "127.0.0.1")
	gs.Stop()
	waitAnswer(t, s, "127.0.0.2")
}

func TestHTTPSCheck(t *testing.T) {
	// httptest's certificate is not trusted by the system: with insecure_tls it is up, and
	// without it the certificate fails the check.
	for _, c := range []struct {
		insecure bool
		want     string
	}{{true, "127.0.0.1"}, {false, "127.0.0.2"}} {
		t.Run(fmt.Sprintf("insecure_tls=%v", c.insecure), func(t *testing.T) {
			hits := make(chan struct{}, 100)
			ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				select {
				case hits <- struct{}{}:
				default:
				}
				io.WriteString(w, "healthy")
			}))
			t.Cleanup(ts.Close)
			port := ts.Listener.Addr().(*net.TCPAddr).Port
			s := startHealth(t, "https", port, fmt.Sprintf("    insecure_tls: %v\n    expect_body: healthy", c.insecure), "all", "none")
			waitAnswer(t, s, c.want)
			if c.insecure {
				ts.Close()
				waitAnswer(t, s, "127.0.0.2")
			}
		})
	}
}

func httpGet(url string) (int, string) {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestReadyAfterFirstChecks: the ready plugin reports steer not ready until every check has
// run once. The backend accepts and never answers, so the first result is the timeout.
func TestReadyAfterFirstChecks(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	dir := t.TempDir()
	writeFile(t, dir, "example.com.yaml", fmt.Sprintf(`zone: example.com.
ns: [ns1.example.com.]
checks:
  web: {type: http, port: %d, interval: 5s, timeout: 1500ms}
services:
  www:
    pools:
      - endpoints: [{address: 127.0.0.1, check: web}]
      - endpoints: [127.0.0.2]
`, l.Addr().(*net.TCPAddr).Port))
	readyPort, metricsPort := freePort(t), freePort(t)
	begin := time.Now()
	s := start(t, fmt.Sprintf("example.com:0 {\n bind 127.0.0.1\n steer %s\n ready 127.0.0.1:%d\n prometheus 127.0.0.1:%d\n}", dir, readyPort, metricsPort))
	url := fmt.Sprintf("http://127.0.0.1:%d/ready", readyPort)
	code, body := httpGet(url)
	if time.Since(begin) < time.Second && code == http.StatusOK {
		t.Fatalf("ready before the first check ended: %d %s", code, body)
	}
	// Unknown counts as up meanwhile: the primary answers.
	waitAnswer(t, s, "127.0.0.1")
	eventually(t, 10*time.Second, "ready after the first check", func() bool {
		code, _ = httpGet(url)
		return code == http.StatusOK
	})
	waitAnswer(t, s, "127.0.0.2")

	// The metrics of health state name the policy file's things.
	_, metrics := httpGet(fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort))
	for _, want := range []string{
		`coredns_steer_endpoint_up{endpoint="127.0.0.1",region="pools[0]",service="www",zone="example.com."} 0`,
		`coredns_steer_endpoint_up{endpoint="127.0.0.2",region="pools[1]",service="www",zone="example.com."} 1`,
		`coredns_steer_pool_healthy{region="pools[0]",service="www",zone="example.com."} 0`,
		`coredns_steer_pool_healthy{region="pools[1]",service="www",zone="example.com."} 1`,
		`coredns_steer_check_failures_total{reason="timeout",type="http"}`,
		`coredns_steer_policy_files{state="loaded"} 1`,
		`coredns_steer_transitions_total{region="pools[0]",to="down",zone="example.com."}`,
		`coredns_steer_answers_total{outcome="failover",service="www",zone="example.com."}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if t.Failed() {
		var steer []string
		for _, line := range strings.Split(metrics, "\n") {
			if strings.HasPrefix(line, "coredns_steer_") {
				steer = append(steer, line)
			}
		}
		t.Logf("steer metrics:\n%s", strings.Join(steer, "\n"))
	}
}

// TestNameEndpointChecked: a name endpoint is answered as a CNAME and checked at that name.
func TestNameEndpointChecked(t *testing.T) {
	b := newBackend(t)
	dir := t.TempDir()
	writeFile(t, dir, "example.com.yaml", fmt.Sprintf(`zone: example.com.
ns: [ns1.example.com.]
checks:
  web: {type: http, port: %d, interval: 200ms, timeout: 100ms, fast_interval: 50ms}
services:
  cdn:
    check: web
    pools:
      - endpoints: [localhost.]
      - endpoints: [{address: backup.example.net., check: none}]
`, b.Port))
	s := start(t, fmt.Sprintf("example.com:0 {\n bind 127.0.0.1\n steer %s\n}", dir))
	eventually(t, 5*time.Second, "two probes of localhost", func() bool { return b.Hits() >= 2 })
	want := func(target string) {
		t.Helper()
		eventually(t, 5*time.Second, "cdn CNAME "+target, func() bool {
			got := answers(ask(t, "udp", s.UDP, "cdn.example.com.", 1))
			return len(got) == 1 && got[0] == "CNAME "+target
		})
	}
	want("localhost.")
	b.Stop()
	want("backup.example.net.")
	b.Start()
	want("localhost.")
}
