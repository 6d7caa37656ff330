package healthcheck

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestScale measures the engine with many HTTP targets at a 5s interval against loopback
// listeners, and reports CPU, memory, goroutines and probes per second:
//
//	STEER_SCALE=1 go test -run '^TestScale$' -v ./healthcheck
//
// STEER_SCALE_N lists the sizes (default 10000,30000), STEER_SCALE_SECONDS the measured time
// (default 20), STEER_SCALE_CPUPROFILE a file for a CPU profile of that time. Each size runs in a
// process of its own, and the backends in another, so that the figures are the engine's alone
// (but on loopback the kernel charges the prober for much of the backends' TCP work too).
func TestScale(t *testing.T) {
	if os.Getenv("STEER_SCALE") == "" {
		t.Skip("set STEER_SCALE=1 to measure the engine at scale")
	}
	sizes := os.Getenv("STEER_SCALE_N")
	if sizes == "" {
		sizes = "10000,30000"
	}
	for _, n := range strings.Split(sizes, ",") {
		cmd := exec.Command(os.Args[0], "-test.run=^TestScaleRun$", "-test.v", "-test.timeout=10m")
		cmd.Env = append(os.Environ(), "STEER_SCALE_RUN="+strings.TrimSpace(n))
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			t.Errorf("%s targets: %v", n, err)
		}
	}
}

// TestScaleRun is one measurement of TestScale, in a process of its own.
func TestScaleRun(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("STEER_SCALE_RUN"))
	if n == 0 {
		t.Skip("run by TestScale")
	}
	seconds, _ := strconv.Atoi(os.Getenv("STEER_SCALE_SECONDS"))
	if seconds == 0 {
		seconds = 20
	}

	// The backends: another process, so that their CPU is not counted here.
	backend := exec.Command(os.Args[0], "-test.run=^TestScaleBackend$")
	backend.Env = append(os.Environ(), "STEER_SCALE_BACKEND=1")
	stdin, _ := backend.StdinPipe()
	stdout, _ := backend.StdoutPipe()
	backend.Stderr = os.Stderr
	if err := backend.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		backend.Wait()
		if u, ok := backend.ProcessState.SysUsage().(*syscall.Rusage); ok {
			cpu := time.Duration(u.Utime.Nano() + u.Stime.Nano())
			fmt.Printf("scale: %d: the backends used %.1fs of CPU in all\n", n, cpu.Seconds())
		}
	}()
	var addrs []string
	for sc := bufio.NewScanner(stdout); sc.Scan() && sc.Text() != "ready"; {
		if a, ok := strings.CutPrefix(sc.Text(), "listen "); ok {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		t.Fatal("no backend listeners")
	}
	go io.Copy(io.Discard, stdout)

	targets := make([]Target, n)
	for i := range targets {
		host, port, _ := net.SplitHostPort(addrs[i%len(addrs)])
		p, _ := strconv.Atoi(port)
		c := Config{Type: TypeHTTP, Port: p, Path: "/h/" + strconv.Itoa(i), ExpectBody: "ok"}.Normalize()
		targets[i] = NewTarget("web", c, host)
	}

	var probes, nanos atomic.Int64
	var mu sync.Mutex
	reasons := map[string]int{}
	e := NewEngine(Options{OnResult: func(_ string, d time.Duration, reason string) {
		probes.Add(1)
		nanos.Add(int64(d))
		if reason != "" {
			mu.Lock()
			reasons[reason]++
			mu.Unlock()
		}
	}})
	defer e.Close()
	sub := e.Subscribe(nil)
	start := time.Now()
	sub.Sync(targets)
	for !sub.Ready() {
		time.Sleep(100 * time.Millisecond)
	}
	ready := time.Since(start)

	// Measure from here: every target is on its steady schedule.
	if f := os.Getenv("STEER_SCALE_CPUPROFILE"); f != "" {
		out, err := os.Create(f)
		if err != nil {
			t.Fatal(err)
		}
		defer out.Close()
		pprof.StartCPUProfile(out)
	}
	ru0, t0, p0, n0, st0 := rusage(t), time.Now(), probes.Load(), nanos.Load(), procStat()
	maxG, sumG, samples := 0, 0, 0
	for end := t0.Add(time.Duration(seconds) * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		g := runtime.NumGoroutine()
		maxG, sumG, samples = max(maxG, g), sumG+g, samples+1
	}
	ru1, wall, st1 := rusage(t), time.Since(t0), procStat()
	if f := os.Getenv("STEER_SCALE_CPUPROFILE"); f != "" {
		pprof.StopCPUProfile()
	}
	dp := probes.Load() - p0
	cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)

	mu.Lock()
	var failed []string
	for r, c := range reasons {
		failed = append(failed, fmt.Sprintf("%s=%d", r, c))
	}
	mu.Unlock()
	sort.Strings(failed)
	fmt.Printf("scale: %d http targets on %d listeners, interval 5s: all probed once after %.1fs\n", n, len(addrs), ready.Seconds())
	fmt.Printf("scale: %d: %.0f probes/s (%.0f expected), mean probe %.2fms, failures %v\n",
		n, float64(dp)/wall.Seconds(), float64(n)/5, float64(nanos.Load()-n0)/float64(max(dp, 1))/1e6, failed)
	fmt.Printf("scale: %d: user %.1f%% system %.1f%%\n", n, 100*float64(ru1.Utime.Nano()-ru0.Utime.Nano())/float64(wall),
		100*float64(ru1.Stime.Nano()-ru0.Stime.Nano())/float64(wall))
	if st0 != nil && st1 != nil {
		// Fields of /proc/stat's cpu line, in USER_HZ (100/s): user nice system idle iowait irq softirq.
		tick := func(i int) float64 { return float64(st1[i]-st0[i]) / 100 / wall.Seconds() * 100 }
		fmt.Printf("scale: %d: the machine (%d CPUs, all processes): user %.0f%% system %.0f%% softirq %.0f%% idle %.0f%% of one core\n",
			n, runtime.NumCPU(), tick(0)+tick(1), tick(2), tick(6), tick(3))
	}
	fmt.Printf("scale: %d: CPU %.1f%% of one core over %.0fs, max RSS %.0f MB, heap in use %.0f MB, goroutines max %d mean %d, GOMAXPROCS %d\n",
		n, 100*cpu.Seconds()/wall.Seconds(), wall.Seconds(), float64(ru1.Maxrss)/1024, float64(ms.HeapInuse)/(1<<20),
		maxG, sumG/max(samples, 1), runtime.GOMAXPROCS(0))
}

// procStat returns the numbers of the cpu line of /proc/stat, or nil.
func procStat() []int64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil
	}
	line, _, _ := strings.Cut(string(b), "\n")
	var v []int64
	for _, f := range strings.Fields(line)[1:] {
		n, _ := strconv.ParseInt(f, 10, 64)
		v = append(v, n)
	}
	if len(v) < 7 {
		return nil
	}
	return v
}

func rusage(t *testing.T) syscall.Rusage {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return ru
}

// TestScaleBackend serves TestScaleRun's targets: HTTP listeners on 127.0.0.1 to 127.0.0.8, two
// ports each, answering "ok". It prints "listen ADDR" for each, then "ready", and serves until
// its stdin closes.
func TestScaleBackend(t *testing.T) {
	if os.Getenv("STEER_SCALE_BACKEND") == "" {
		t.Skip("run by TestScaleRun")
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })}
	for i := 1; i <= 8; i++ {
		for range 2 {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.%d:0", i))
			if err != nil {
				t.Fatal(err)
			}
			fmt.Println("listen", l.Addr())
			go srv.Serve(l)
		}
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	srv.Close()
}

// BenchmarkProbeHTTP measures one HTTP probe against a loopback backend in the same process:
// "new" on a new connection each time (Probe), "reused" on the connection the last probe left
// (as the Engine does); cpu-µs/op counts the CPU of both ends.
func BenchmarkProbeHTTP(b *testing.B) {
	_, port := httpBackend(b, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	tg := NewTarget("web", Config{Type: TypeHTTP, Port: port, ExpectBody: "ok"}.Normalize(), "127.0.0.1")
	for _, reuse := range []bool{false, true} {
		name := map[bool]string{false: "new", true: "reused"}[reuse]
		b.Run(name, func(b *testing.B) {
			var k *keeper
			var s *slot // as the Engine runs it, with a keeper
			if reuse {
				k, s = new(keeper), new(slot)
				defer k.close()
			}
			var ru0, ru1 syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
			b.ReportAllocs()
			for b.Loop() {
				if r := probeWith(context.Background(), tg, k, s, nil, false); !r.OK {
					b.Fatal(r.Err)
				}
			}
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
			cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}
