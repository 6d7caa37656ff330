package test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// reloadPolicy serves www.<zone> from one address; each change rewrites the address.
func reloadPolicy(zone, addr string) string {
	return fmt.Sprintf(`zone: %s
ns: [ns1.%s]
records: |
  ns1 A 192.0.2.53
services:
  www:
    pools:
      - endpoints: [%s]
`, zone, zone, addr)
}

// querier asks a question in a loop until stopped and counts what went wrong.
type querier struct {
	stop   chan struct{}
	done   chan struct{}
	total  atomic.Int64
	failed atomic.Int64
	mu     sync.Mutex
	errs   []string
}

func startQuerier(t *testing.T, addr, name string) *querier {
	q := &querier{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(q.done)
		c := &dns.Client{Net: "udp", Timeout: time.Second}
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		for {
			select {
			case <-q.stop:
				return
			default:
			}
			r, _, err := c.Exchange(m, addr)
			q.total.Add(1)
			if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
				q.failed.Add(1)
				q.mu.Lock()
				if len(q.errs) < 5 {
					q.errs = append(q.errs, fmt.Sprintf("err=%v reply=%v", err, r))
				}
				q.mu.Unlock()
			}
		}
	}()
	t.Cleanup(q.finish)
	return q
}

func (q *querier) finish() {
	select {
	case <-q.stop:
	default:
		close(q.stop)
	}
	<-q.done
}

// check stops the querier and fails the test if any query failed.
func (q *querier) check(t *testing.T) {
	t.Helper()
	q.finish()
	if q.total.Load() == 0 {
		t.Fatal("the querier asked nothing")
	}
	if n := q.failed.Load(); n > 0 {
		t.Errorf("%d of %d queries failed during reloads: %v", n, q.total.Load(), q.errs)
	}
	t.Logf("%d queries during the reloads, %d failed", q.total.Load(), q.failed.Load())
}

// changer applies one kind of change to the policy of example.com. in dir.
type changer func(t testing.TB, dir, content string)

// writeInPlace truncates and writes the file, as most editors and tools do.
func writeInPlace(t testing.TB, dir, content string) {
	if err := os.WriteFile(filepath.Join(dir, "example.com.yaml"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

var renameSeq atomic.Int64

// atomicRename writes a temporary file and renames it over the policy file.
func atomicRename(t testing.TB, dir, content string) {
	tmp := filepath.Join(dir, fmt.Sprintf(".example.com.yaml.tmp%d", renameSeq.Add(1)))
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "example.com.yaml")); err != nil {
		t.Fatal(err)
	}
}

// symlinkSwap updates the folder as the kubelet updates a ConfigMap volume: a new timestamped
// folder, a ..data_tmp link to it renamed over ..data; example.com.yaml -> ..data/example.com.yaml.
func symlinkSwap(t testing.TB, dir, content string) {
	ts := fmt.Sprintf("..%d", renameSeq.Add(1))
	if err := os.Mkdir(filepath.Join(dir, ts), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ts, "example.com.yaml"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	old, _ := os.Readlink(filepath.Join(dir, "..data"))
	if err := os.Symlink(ts, filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "example.com.yaml")
	if _, err := os.Lstat(link); err != nil {
		if err := os.Symlink("..data/example.com.yaml", link); err != nil {
			t.Fatal(err)
		}
	}
	if old != "" {
		os.RemoveAll(filepath.Join(dir, old))
	}
}

func startReload(t *testing.T, kind changer, addr string) (*server, string) {
	dir := t.TempDir()
	kind(t, dir, reloadPolicy("example.com.", addr))
	writeFile(t, dir, "example.net.yaml", reloadPolicy("example.net.", "192.0.2.200"))
	return start(t, fmt.Sprintf(". {\n bind 127.0.0.1\n steer %s\n}", dir)), dir
}

func wwwAnswer(t testing.TB, s *server, zone string) []string {
	return answers(ask(t, "udp", s.UDP, "www."+zone, dns.TypeA))
}

func TestReloadKinds(t *testing.T) {
	for _, k := range []struct {
		name string
		fn   changer
	}{{"write", writeInPlace}, {"rename", atomicRename}, {"symlink", symlinkSwap}} {
		t.Run(k.name, func(t *testing.T) {
			s, dir := startReload(t, k.fn, "192.0.2.1")
			if got := wwwAnswer(t, s, "example.com."); !slices.Equal(got, []string{"192.0.2.1"}) {
				t.Fatalf("start: %v", got)
			}
			q := startQuerier(t, s.UDP, "www.example.com.")
			for i := 2; i <= 6; i++ {
				want := fmt.Sprintf("192.0.2.%d", i)
				k.fn(t, dir, reloadPolicy("example.com.", want))
				eventually(t, 2*time.Second, "the new answer "+want, func() bool {
					return slices.Equal(wwwAnswer(t, s, "example.com."), []string{want})
				})
			}
			q.check(t)
		})
	}
}

func TestReloadAddRemoveBrokenFixed(t *testing.T) {
	s, dir := startReload(t, writeInPlace, "192.0.2.1")
	q := startQuerier(t, s.UDP, "www.example.com.")

	// A new file adds its zone.
	writeFile(t, dir, "example.org.yaml", reloadPolicy("example.org.", "192.0.2.77"))
	eventually(t, 2*time.Second, "the added zone", func() bool {
		return slices.Equal(wwwAnswer(t, s, "example.org."), []string{"192.0.2.77"})
	})
	serial := func() uint32 {
		r := ask(t, "udp", s.UDP, "example.org.", dns.TypeSOA)
		if len(r.Answer) != 1 {
			t.Fatalf("SOA: %v", r)
		}
		return r.Answer[0].(*dns.SOA).Serial
	}
	first := serial()

	// A broken version changes nothing; the other zones never notice.
	writeFile(t, dir, "example.org.yaml", "zone: example.org.\nns: [ns1.example.org.]\nservices:\n  www:\n    pools:\n      - endpoints: [not-an-address]\n")
	// A later valid change elsewhere proves the broken file has been read by then.
	writeInPlace(t, dir, reloadPolicy("example.com.", "192.0.2.9"))
	eventually(t, 2*time.Second, "the change next to the broken file", func() bool {
		return slices.Equal(wwwAnswer(t, s, "example.com."), []string{"192.0.2.9"})
	})
	if got := wwwAnswer(t, s, "example.org."); !slices.Equal(got, []string{"192.0.2.77"}) {
		t.Fatalf("a broken file changed its zone's answers: %v", got)
	}
	if serial() != first {
		t.Error("a rejected file changed the serial")
	}

	// Fixing it recovers, with a higher serial.
	writeFile(t, dir, "example.org.yaml", reloadPolicy("example.org.", "192.0.2.78"))
	eventually(t, 2*time.Second, "the fixed file", func() bool {
		return slices.Equal(wwwAnswer(t, s, "example.org."), []string{"192.0.2.78"})
	})
	if second := serial(); second <= first {
		t.Errorf("serial %d after a reload, was %d", second, first)
	}

	// A second file for the same zone is refused; the first keeps serving.
	writeFile(t, dir, "zz-dup.yaml", reloadPolicy("example.org.", "192.0.2.99"))
	writeInPlace(t, dir, reloadPolicy("example.com.", "192.0.2.10"))
	eventually(t, 2*time.Second, "the change next to the duplicate", func() bool {
		return slices.Equal(wwwAnswer(t, s, "example.com."), []string{"192.0.2.10"})
	})
	if got := wwwAnswer(t, s, "example.org."); !slices.Equal(got, []string{"192.0.2.78"}) {
		t.Errorf("the duplicate took over: %v", got)
	}
	os.Remove(filepath.Join(dir, "zz-dup.yaml"))

	// A removed file removes its zone.
	os.Remove(filepath.Join(dir, "example.org.yaml"))
	eventually(t, 2*time.Second, "REFUSED for the removed zone", func() bool {
		return ask(t, "udp", s.UDP, "www.example.org.", dns.TypeA).Rcode == dns.RcodeRefused
	})
	q.check(t)
}

// TestReloadLatency measures change on disk -> first new answer and reports it (a measurement,
// not an assertion on time). Set STEER_RELOAD_N to the number of changes per kind (default 5).
func TestReloadLatency(t *testing.T) {
	n := 5
	if v, err := strconv.Atoi(os.Getenv("STEER_RELOAD_N")); err == nil && v > 0 {
		n = v
	}
	for _, k := range []struct {
		name string
		fn   changer
	}{{"write", writeInPlace}, {"rename", atomicRename}, {"symlink", symlinkSwap}} {
		t.Run(k.name, func(t *testing.T) {
			s, dir := startReload(t, k.fn, "192.0.2.1")
			q := startQuerier(t, s.UDP, "www.example.net.")
			var lat []time.Duration
			for i := range n {
				want := fmt.Sprintf("192.0.%d.%d", 3+i/250, 1+i%250)
				begin := time.Now()
				k.fn(t, dir, reloadPolicy("example.com.", want))
				eventually(t, 3*time.Second, "the new answer", func() bool {
					return slices.Equal(wwwAnswer(t, s, "example.com."), []string{want})
				})
				lat = append(lat, time.Since(begin))
			}
			q.check(t)
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			p99 := lat[min(len(lat)-1, (len(lat)*99+99)/100-1)]
			t.Logf("%s: %d changes, median %v, p99 %v, max %v", k.name, n, lat[len(lat)/2], p99, lat[len(lat)-1])
		})
	}
}
