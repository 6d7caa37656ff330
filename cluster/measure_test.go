package cluster

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Measurements of the cluster, run by hand (they take minutes):
//
//	STEER_MEASURE=1 go test -run TestMeasure -v -timeout 30m ./cluster
//
// Nodes run in this process on 127.0.0.1, each with memberlist's real UDP and TCP transport.

func measuring(t *testing.T) {
	if os.Getenv("STEER_MEASURE") == "" {
		t.Skip("a measurement: STEER_MEASURE=1 runs it")
	}
}

// arrivals records, per node, when OnChange first named each key.
type arrivals struct {
	mu   sync.Mutex
	seen map[uint64]time.Time
	all  time.Time // the last change of every key
}

func (a *arrivals) onChange(ch Change) {
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if ch.All {
		a.all = now
	}
	for _, k := range ch.Keys {
		if _, ok := a.seen[k]; !ok {
			a.seen[k] = now
		}
	}
}

// at returns when OnChange named k, or said every key changed, after since.
func (a *arrivals) at(k uint64, since time.Time) (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if t, ok := a.seen[k]; ok {
		return t, true
	}
	return a.all, a.all.After(since)
}

// startMany starts n nodes joined to the first; each records arrivals.
func startMany(t *testing.T, n int) ([]*Node, []*arrivals) {
	var nodes []*Node
	var arr []*arrivals
	for i := range n {
		a := &arrivals{seen: map[uint64]time.Time{}}
		cfg := Config{Name: fmt.Sprintf("n%02d", i), Bind: "127.0.0.1:0", Logf: func(string, ...any) {}, OnChange: a.onChange}
		if i > 0 {
			cfg.Join = []string{nodes[0].Addr()}
		}
		node, err := Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(node.Close)
		nodes, arr = append(nodes, node), append(arr, a)
	}
	for _, node := range nodes {
		eventually(t, 30*time.Second, node.Name()+" sees every member", alive(node, n))
	}
	// Every node has every other's state: each observes a key, and waits for all of them.
	var warm []uint64
	for _, node := range nodes {
		key := "warm-up " + node.Name()
		node.Observe(key, false, time.Now(), time.Second)
		warm = append(warm, KeyHash(key))
	}
	for _, node := range nodes {
		eventually(t, 30*time.Second, node.Name()+" has every node's state", func() bool {
			out := make([]Verdict, len(warm))
			node.Verdicts(warm, make([]int, len(warm)), out)
			for _, v := range out {
				if v.Observers != 1 {
					return false
				}
			}
			return true
		})
	}
	return nodes, arr
}

func percentile(d []time.Duration, p float64) time.Duration {
	slices.Sort(d)
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

// TestMeasurePropagation: the time from a node's Observe until every other node's OnChange
// names the target, which is when the plugin re-computes its verdict.
func TestMeasurePropagation(t *testing.T) {
	measuring(t)
	for _, size := range []int{3, 10} {
		nodes, arr := startMany(t, size)
		var all []time.Duration
		var worst []time.Duration // per change, the slowest node
		for i := range 200 {
			key := fmt.Sprintf("propagation-%d-%d", size, i)
			h := KeyHash(key)
			src := nodes[i%size]
			at := time.Now()
			src.Observe(key, i%2 == 0, at, time.Second)
			var slowest time.Duration
			for j, a := range arr {
				if nodes[j] == src {
					continue
				}
				var got time.Time
				eventually(t, 10*time.Second, "arrival", func() bool {
					var ok bool
					got, ok = a.at(h, at)
					return ok
				})
				d := got.Sub(at)
				all = append(all, d)
				slowest = max(slowest, d)
			}
			worst = append(worst, slowest)
			time.Sleep(20 * time.Millisecond) // changes come one at a time, as probes' do
		}
		t.Logf("%d nodes: an observation reaches a node's plugin in p50 %v, p99 %v; reaches every node in p50 %v, p99 %v (max %v)",
			size, percentile(all, .5).Round(time.Microsecond), percentile(all, .99).Round(time.Microsecond),
			percentile(worst, .5).Round(time.Microsecond), percentile(worst, .99).Round(time.Microsecond), percentile(worst, 1).Round(time.Microsecond))
		for _, n := range nodes {
			n.Close()
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestMeasureBandwidth: bytes each node sends per second (memberlist's own traffic included)
// and the CPU of the gossip, with every node observing the same targets: steady (nothing
// changes) and with churn (1% of the targets change state every 5 s interval).
func TestMeasureBandwidth(t *testing.T) {
	measuring(t)
	window := 30 * time.Second
	if s := os.Getenv("STEER_MEASURE_WINDOW"); s != "" {
		window, _ = time.ParseDuration(s)
	}
	sizes := []int{3, 10}
	counts := []int{10_000, 100_000}
	if s := os.Getenv("STEER_MEASURE_TARGETS"); s != "" {
		n, _ := strconv.Atoi(s)
		counts = []int{n}
	}
	for _, targets := range counts {
		for _, size := range sizes {
			nodes, _ := startMany(t, size)
			keys := make([]string, targets)
			for i := range keys {
				keys[i] = fmt.Sprintf("http|80|/healthz|||@10.%d.%d.%d", i>>16, (i>>8)&255, i&255)
			}
			start := time.Now()
			for _, n := range nodes {
				for _, k := range keys {
					n.Observe(k, false, start, 5*time.Second)
				}
			}
			probe := []uint64{KeyHash(keys[0]), KeyHash(keys[targets-1])}
			for _, n := range nodes {
				eventually(t, 2*time.Minute, n.Name()+" has every node's state", func() bool {
					out := make([]Verdict, 2)
					n.Verdicts(probe, []int{Majority, Majority}, out)
					return out[0].Observers == size && out[1].Observers == size
				})
			}
			synced := time.Since(start)
			for _, churn := range []bool{false, true} {
				stop := make(chan struct{})
				var wg sync.WaitGroup
				if churn {
					// 1% of the targets per 5 s, spread over the nodes: each flip is one node's.
					perSecond := targets / 100 / 5
					wg.Add(1)
					go func() {
						defer wg.Done()
						tick := time.NewTicker(100 * time.Millisecond)
						defer tick.Stop()
						i := 0
						for {
							select {
							case <-stop:
								return
							case <-tick.C:
							}
							for range max(1, perSecond/10) {
								n := nodes[i%size]
								n.Observe(keys[(i*7919)%targets], i%2 == 0, time.Now(), 5*time.Second)
								i++
							}
						}
					}()
				}
				before := make([]uint64, size)
				for i, n := range nodes {
					before[i] = n.Stats().BytesOut
				}
				cpu0, t0 := cpuTime(), time.Now()
				time.Sleep(window)
				cpu, el := cpuTime()-cpu0, time.Since(t0)
				close(stop)
				wg.Wait()
				var total uint64
				var most float64
				for i, n := range nodes {
					d := n.Stats().BytesOut - before[i]
					total += d
					most = max(most, float64(d)/el.Seconds())
				}
				mode := "steady"
				if churn {
					mode = fmt.Sprintf("churn %d changes/s", max(10, targets/100/5))
				}
				t.Logf("%d targets, %d nodes, %s: %.0f B/s sent per node on average (%.0f at most); CPU %.2f%% of a core per node; first full sync %v",
					targets, size, mode, float64(total)/float64(size)/el.Seconds(), most,
					100*cpu.Seconds()/el.Seconds()/float64(size), synced.Round(time.Millisecond))
			}
			for _, n := range nodes {
				n.Close()
			}
		}
	}
}
