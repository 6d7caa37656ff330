package test

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// TestCorefileReload reloads the Corefile 20 times: health state carries over to the new
// instance, and the old instances' watchers and probes stop.
func TestCorefileReload(t *testing.T) {
	b := newBackend(t)
	dir := t.TempDir()
	writeFile(t, dir, "example.com.yaml", fmt.Sprintf(healthPolicy, "http", b.Port, "", "all", "", "none"))
	corefile := fmt.Sprintf("example.com:0 {\n bind 127.0.0.1\n steer %s\n}", dir)
	s := start(t, corefile)
	eventually(t, 5*time.Second, "two probes", func() bool { return b.Hits() >= 2 })
	b.Stop()
	waitAnswer(t, s, "127.0.0.2")

	s.restart(t, corefile)
	// The new instance shares the old one's targets: the backend is still known down, so the
	// first answer after the reload is already the backup, not the fail-open primary.
	waitAnswer(t, s, "127.0.0.2")
	if got := answers(ask(t, "udp", s.UDP, "www.example.com.", 1)); len(got) != 1 || got[0] != "127.0.0.2" {
		t.Fatalf("after a Corefile reload: %v", got)
	}
	settle := func() int {
		runtime.GC()
		return runtime.NumGoroutine()
	}
	b.Start()
	waitAnswer(t, s, "127.0.0.1")
	base := settle()
	for range 20 {
		s.restart(t, corefile)
	}
	waitAnswer(t, s, "127.0.0.1")
	var n int
	eventuallyDump(t, 5*time.Second, "the goroutine count to return to its level after one reload", func() bool {
		n = settle()
		return n <= base
	}, func() string {
		buf := make([]byte, 1<<20)
		return fmt.Sprintf("base %d now %d\n%s", base, n, buf[:runtime.Stack(buf, true)])
	})
	t.Logf("goroutines after 1 reload: %d, after 21: %d", base, n)
}
