package test

import (
	"fmt"
	"os"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestSteerAwayTimes measures how long a dead backend stays in the answers and how long a
// recovered one takes to return, at interval 1s, fall 2, rise 2, timeout 500ms (fast_interval
// 250ms by default). It is a measurement, run with STEER_MEASURE=1 (make measure); it reports
// figures and asserts only that the answers move.
func TestSteerAwayTimes(t *testing.T) {
	if os.Getenv("STEER_MEASURE") == "" {
		t.Skip("a measurement of about two minutes: set STEER_MEASURE=1 to run it")
	}
	const trials = 20
	for _, mode := range []string{"refused", "hanging"} {
		t.Run(mode, func(t *testing.T) {
			b := newBackend(t)
			dir := t.TempDir()
			writeFile(t, dir, "example.com.yaml", fmt.Sprintf(`zone: example.com.
ns: [ns1.example.com.]
checks:
  web: {type: http, port: %d, interval: 1s, timeout: 500ms, rise: 2, fall: 2}
services:
  www:
    pools:
      - endpoints: [{address: 127.0.0.1, check: web}]
      - endpoints: [127.0.0.2]
`, b.Port))
			s := start(t, fmt.Sprintf("example.com:0 {\n bind 127.0.0.1\n steer %s\n}", dir))
			eventually(t, 5*time.Second, "two probes", func() bool { return b.Hits() >= 2 })
			var away, back []time.Duration
			until := func(want string) time.Duration {
				begin := time.Now()
				eventually(t, 10*time.Second, "answer "+want, func() bool {
					return slices.Equal(answers(ask(t, "udp", s.UDP, "www.example.com.", dns.TypeA)), []string{want})
				})
				return time.Since(begin)
			}
			for range trials {
				until("127.0.0.1")
				// Start the clock at a random phase of the probe schedule.
				time.Sleep(time.Duration(time.Now().UnixNano()%1000) * time.Millisecond)
				if mode == "refused" {
					b.Stop()
				} else {
					b.mu.Lock()
					b.Hang = true
					b.mu.Unlock()
				}
				away = append(away, until("127.0.0.2"))
				if mode == "refused" {
					b.Start()
				} else {
					b.mu.Lock()
					b.Hang = false
					b.mu.Unlock()
				}
				back = append(back, until("127.0.0.1"))
			}
			report := func(what string, d []time.Duration) {
				sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
				t.Logf("%s %s over %d trials: median %v, worst %v", mode, what, len(d), d[len(d)/2].Round(time.Millisecond), d[len(d)-1].Round(time.Millisecond))
			}
			report("steer-away", away)
			report("return", back)
		})
	}
}
