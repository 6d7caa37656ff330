package test

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/steerdns/steerdns/plugin/steer"
)

// bigChecked is a zone of 1,000 services with 10 checked endpoints each: 10,000 (check, target)
// pairs against a port on loopback where nothing listens. changed picks the one endpoint whose
// address differs.
func bigChecked(port int, changed bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "zone: example.com.\nns: [ns1.example.com.]\nchecks:\n  tcp: {type: tcp, port: %d, interval: 5s, timeout: 1s}\nservices:\n", port)
	for i := range 1000 {
		fmt.Fprintf(&b, "  s%d:\n    check: tcp\n    pools:\n      - endpoints: [", i)
		for j := range 10 {
			if j > 0 {
				b.WriteString(", ")
			}
			n := i*10 + j
			if changed && n == 4242 {
				n = 20000
			}
			fmt.Fprintf(&b, "127.1.%d.%d", n/250, n%250+1)
		}
		b.WriteString("]\n")
	}
	return b.String()
}

// TestReloadKeepsHealthOfUnchangedPairs: a reload of 10,000 endpoints with one endpoint changed
// starts exactly one new probe target and stops one; the others keep their state and schedule.
func TestReloadKeepsHealthOfUnchangedPairs(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close() // nothing listens: every probe is refused at once
	dir := t.TempDir()
	writeFile(t, dir, "example.com.yaml", bigChecked(port, false))
	s := start(t, fmt.Sprintf("example.com:0 {\n bind 127.0.0.1\n steer %s\n}", dir))
	eng := steer.Engine()
	before := eng.Stats()
	writeFile(t, dir, "example.com.yaml", bigChecked(port, true))
	eventually(t, 30*time.Second, "the changed endpoint in the answers", func() bool {
		r := ask(t, "tcp", s.TCP, "s424.example.com.", dns.TypeA)
		return strings.Contains(strings.Join(answers(r), " "), "127.1.80.1")
	})
	after := eng.Stats()
	if started, stopped := after.Started-before.Started, after.Stopped-before.Stopped; started != 1 || stopped != 1 {
		t.Errorf("reload with one endpoint changed: %d targets started, %d stopped; want 1 and 1", started, stopped)
	}
}
