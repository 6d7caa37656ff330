package outage

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"reflect"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/steerdns/steerdns/healthcheck"
)

// TestOutage runs the outage benchmark: for each mix, backends in processes of their own pinned
// to CPU 1 (taskset), and the prober, a healthcheck.Engine with default options in a process of
// its own pinned to CPU 0 with GOMAXPROCS=1, as the server runs in test/bench/run.sh. Run as
// root, everything runs in a new network namespace (unshare -n, then ip link set lo up), so that
// no probe can leave the machine and the host's loopback is left alone; every address is a
// loopback address in any case.
//
//	STEER_OUTAGE=1 go test -run '^TestOutage$' -v -timeout 60m ./test/bench/outage
//
// Knobs (environment): STEER_OUTAGE_N targets (30000), STEER_OUTAGE_SECONDS of measurement per
// mix (30), STEER_OUTAGE_MIXES (answering,third,twothirds,hanging,refusing,floor; floor is not
// an engine but the floor of twothirds: see probeFloor), STEER_OUTAGE_NOFILE
// the prober's RLIMIT_NOFILE (default: as inherited), STEER_OUTAGE_OUT a file that gets the table
// too, STEER_OUTAGE_CPUPROFILE and STEER_OUTAGE_HEAPPROFILE files (suffixed with the mix) for
// profiles of the prober over the window (the heap at its end), STEER_OUTAGE_GOROUTINES for its
// goroutines at the end. The targets are HTTP checks with the defaults (interval 5s, timeout 2s, rise and fall 2),
// each with its own path, spread over 32 listeners per kind of backend.
//
// For each mix it reports, over the measured window that starts once every target has had its
// first probe: probes per target per interval (min and median) for the
// answering targets and for all, the longest gap between two probes of an answering target, the
// time of the first round (Sync to Ready), the prober's CPU (of one core; the sampling thread's
// own CPU taken out), peak RSS (VmHWM), goroutines (max) and file descriptors (max).
func TestOutage(t *testing.T) {
	if os.Getenv("STEER_OUTAGE") == "" {
		t.Skip("set STEER_OUTAGE=1 to run the outage benchmark")
	}
	if os.Getenv(envRole) != "" {
		t.Skip("a child process of the benchmark")
	}
	if os.Geteuid() == 0 && os.Getenv(envNetns) == "" {
		if _, err := exec.LookPath("unshare"); err == nil {
			// Again, in a network namespace of its own with only lo, brought up.
			cmd := exec.Command("unshare", "-n", "--", "sh", "-c", `ip link set lo up && exec "$@"`, "sh",
				os.Args[0], "-test.run=^TestOutage$", "-test.v", "-test.timeout=0")
			cmd.Env = append(os.Environ(), envNetns+"=1")
			cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("in a network namespace: %v", err)
			}
			return
		}
		t.Log("unshare not found: running in the host's network namespace, on loopback addresses")
	}
	netns := os.Getenv(envNetns) != ""
	if netns {
		ifs, err := net.Interfaces()
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range ifs {
			if i.Flags&net.FlagLoopback == 0 && i.Flags&net.FlagUp != 0 {
				t.Fatalf("interface %s is up in the benchmark's network namespace", i.Name)
			}
		}
	}
	n := envInt("STEER_OUTAGE_N", 30000)
	seconds := envInt("STEER_OUTAGE_SECONDS", 30)
	mixes := strings.Split(envStr("STEER_OUTAGE_MIXES", "answering,third,twothirds,hanging,refusing,floor"), ",")
	for _, m := range mixes {
		if _, ok := mixHang[m]; !ok {
			t.Fatalf("mix %q: want one of answering, third, twothirds, hanging, refusing, floor", m)
		}
	}
	_, tasksetErr := exec.LookPath("taskset")
	pinned := tasksetErr == nil && runtime.NumCPU() >= 2

	var rl syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
	var head strings.Builder
	fmt.Fprintf(&head, "outage benchmark %s: %s, %d CPUs, %s, kernel %s\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		cpuModel(), runtime.NumCPU(), runtime.Version(), kernel())
	fmt.Fprintf(&head, "%d HTTP targets (interval 5s, timeout 2s), prober: GOMAXPROCS=1 on CPU 0, backends on CPU 1 (pinned: %t), "+
		"network namespace: %t, RLIMIT_NOFILE %s, %ds measured per mix\n", n, pinned, netns, envStr("STEER_OUTAGE_NOFILE", strconv.FormatUint(rl.Cur, 10)), seconds)

	var results []result
	for _, mix := range mixes {
		r, err := runMix(t, mix, n, seconds, pinned)
		if err != nil {
			t.Errorf("%s: %v", mix, err)
			continue
		}
		results = append(results, r)
		fmt.Printf("outage: %s: %s\n", mix, r.line())
	}

	var out strings.Builder
	out.WriteString(head.String())
	out.WriteString(table(results))
	fmt.Print("\n" + out.String())
	if f := os.Getenv("STEER_OUTAGE_OUT"); f != "" {
		if err := os.WriteFile(f, []byte(out.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
}

const (
	envRole  = "STEER_OUTAGE_ROLE"  // answer, hang or probe: the role of a child process
	envNetns = "STEER_OUTAGE_NETNS" // set in the network namespace
	interval = 5 * time.Second      // the default interval, which the targets use
)

// mixHang gives, for each mix, which targets hang (i is the target's index); refusing is apart.
var mixHang = map[string]func(i int) bool{
	"answering": func(int) bool { return false },
	"third":     func(i int) bool { return i%3 == 0 },
	"twothirds": func(i int) bool { return i%3 != 0 },
	"hanging":   func(int) bool { return true },
	"refusing":  func(int) bool { return false },
	"floor":     func(i int) bool { return i%3 != 0 }, // not an engine: see probeFloor
}

// result is what the prober reports for one mix.
type result struct {
	Mix                   string
	Targets, Answering    int
	MinOK, MedOK          float64 // probes per interval of the answering targets
	MinAll, MedAll        float64 // of all targets
	MaxGapOK              float64 // seconds, the longest gap between two probes of an answering target
	FirstRound            float64 // seconds
	CPU                   float64 // % of one core
	PeakRSS, RSS          float64 // MB
	HeapInuse, StackInuse float64 // MB, at the end of the window
	MaxGoroutines         int
	MaxFDs                int
	Reasons               map[string]int64
	ShedPerSec            float64  // kept connections closed for want of descriptors, per second of the window; -1: not counted
	Capacity              string   // Engine.Capacity, where the engine has it
	Logged                []string // the engine's lines about limits
	BackendCPU            float64
	Window, PollerCPUPerc float64
}

func (r result) line() string {
	return fmt.Sprintf("probes/interval answering min %.2f median %.2f (longest gap %.1fs), all min %.2f median %.2f; first round %.1fs; "+
		"CPU %.1f%% (sampler %.1f%% taken out); RSS peak %.0f MB, end %.0f MB (heap %.0f MB, stacks %.0f MB); goroutines max %d; fds max %d; connections shed %.0f/s; results %v; capacity %s; logged %q",
		r.MinOK, r.MedOK, r.MaxGapOK, r.MinAll, r.MedAll, r.FirstRound, r.CPU, r.PollerCPUPerc, r.PeakRSS, r.RSS, r.HeapInuse, r.StackInuse, r.MaxGoroutines,
		r.MaxFDs, r.ShedPerSec, r.Reasons, r.Capacity, r.Logged)
}

func table(rs []result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-10s %14s %14s %9s %12s %7s %9s %11s %7s %7s\n", "mix", "answering p/i", "all p/i", "max gap", "first round",
		"CPU", "peak RSS", "goroutines", "fds", "shed")
	fmt.Fprintf(&b, "%-10s %14s %14s %9s %12s %7s %9s %11s %7s %7s\n", "", "min / median", "min / median", "", "", "", "", "max", "max", "/s")
	for _, r := range rs {
		ok := "-"
		gap := "-"
		if r.Answering > 0 {
			ok = fmt.Sprintf("%.2f / %.2f", r.MinOK, r.MedOK)
			gap = fmt.Sprintf("%.1fs", r.MaxGapOK)
		}
		shed := "-"
		if r.ShedPerSec >= 0 {
			shed = fmt.Sprintf("%.0f", r.ShedPerSec)
		}
		fmt.Fprintf(&b, "%-10s %14s %14s %9s %11.1fs %6.1f%% %6.0f MB %11d %7d %7s\n", r.Mix, ok,
			fmt.Sprintf("%.2f / %.2f", r.MinAll, r.MedAll), gap, r.FirstRound, r.CPU, r.PeakRSS, r.MaxGoroutines, r.MaxFDs, shed)
	}
	b.WriteString("(p/i: probes per target per interval of 5s over the window; CPU of one core; shed: kept connections closed\n" +
		"or not kept for want of file descriptors, per second; floor: the hanging probes of twothirds as plain\n" +
		"net.Dialer connections, no engine, p/i is the rate reached over the rate asked)\n")
	return b.String()
}

// runMix starts the backends of mix, then the prober, and returns the prober's result.
func runMix(t *testing.T, mix string, n, seconds int, pinned bool) (result, error) {
	env := []string{
		"STEER_OUTAGE_MIX=" + mix, "STEER_OUTAGE_N=" + strconv.Itoa(n), "STEER_OUTAGE_SECONDS=" + strconv.Itoa(seconds),
	}
	hangs := mixHang[mix]
	needAnswer, needHang := false, false
	for i := range min(n, 3) {
		needHang = needHang || hangs(i)
		needAnswer = needAnswer || (!hangs(i) && mix != "refusing" && mix != "floor")
	}
	var backends []*backend
	defer func() {
		for _, b := range backends {
			b.stop()
		}
	}()
	for _, role := range []string{"answer", "hang"} {
		if (role == "answer" && !needAnswer) || (role == "hang" && !needHang) {
			continue
		}
		b, err := startBackend(role, pinned)
		if err != nil {
			return result{}, err
		}
		backends = append(backends, b)
		env = append(env, "STEER_OUTAGE_"+strings.ToUpper(role)+"="+strings.Join(b.addrs, ","))
	}
	if mix == "refusing" {
		env = append(env, "STEER_OUTAGE_REFUSE="+strings.Join(refusedAddrs(t), ","))
	}

	args := []string{os.Args[0], "-test.run=^TestOutageProbe$", "-test.v", "-test.timeout=0"}
	if pinned {
		args = append([]string{"taskset", "-c", "0"}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(append(os.Environ(), envRole+"=probe", "GOMAXPROCS=1"), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.MultiWriter(&out, prefixed("  probe: ")), os.Stderr
	if err := cmd.Run(); err != nil {
		return result{}, fmt.Errorf("prober: %v", err)
	}
	var r result
	for _, l := range strings.Split(out.String(), "\n") {
		if j, ok := strings.CutPrefix(l, "result "); ok {
			if err := json.Unmarshal([]byte(j), &r); err != nil {
				return result{}, err
			}
			for _, b := range backends {
				b.stop()
				r.BackendCPU += b.cpu()
			}
			backends = nil
			return r, nil
		}
	}
	return result{}, errors.New("the prober gave no result")
}

// backend is a backend process.
type backend struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	addrs []string
}

func startBackend(role string, pinned bool) (*backend, error) {
	args := []string{os.Args[0], "-test.run=^TestOutageBackend$", "-test.timeout=0"}
	if pinned {
		args = append([]string{"taskset", "-c", "1"}, args...)
	}
	b := &backend{cmd: exec.Command(args[0], args[1:]...)}
	b.cmd.Env = append(os.Environ(), envRole+"="+role, "GOMAXPROCS=1")
	b.cmd.Stderr = os.Stderr
	b.stdin, _ = b.cmd.StdinPipe()
	stdout, _ := b.cmd.StdoutPipe()
	if err := b.cmd.Start(); err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && sc.Text() != "ready" {
		if a, ok := strings.CutPrefix(sc.Text(), "listen "); ok {
			b.addrs = append(b.addrs, a)
		}
	}
	go io.Copy(io.Discard, stdout)
	if len(b.addrs) == 0 {
		b.stop()
		return nil, fmt.Errorf("backend %s: no listener", role)
	}
	return b, nil
}

func (b *backend) stop() {
	if b.cmd.ProcessState == nil {
		b.stdin.Close()
		b.cmd.Wait()
	}
}

// cpu returns the CPU seconds the backend used in all, once it has stopped.
func (b *backend) cpu() float64 {
	if b.cmd.ProcessState == nil {
		return 0
	}
	return (b.cmd.ProcessState.UserTime() + b.cmd.ProcessState.SystemTime()).Seconds()
}

// refusedAddrs returns loopback addresses and ports where nothing listens.
func refusedAddrs(t *testing.T) []string {
	var out []string
	for i := 1; i <= 32; i++ {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.3.%d:0", i))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, l.Addr().String())
		l.Close()
	}
	return out
}

// TestOutageBackend is a backend of TestOutage: "answer" answers every HTTP request with 200 ok
// on a kept connection (as common servers do), "hang" accepts connections and never answers, on
// 32 listeners. It prints "listen ADDR" for each, then "ready", and serves until its stdin closes.
func TestOutageBackend(t *testing.T) {
	role := os.Getenv(envRole)
	if role != "answer" && role != "hang" {
		t.Skip("run by TestOutage")
	}
	raiseNofile(1 << 20) // root only: a backend holds a connection per target
	third := map[string]int{"answer": 1, "hang": 2}[role]
	var lns []net.Listener
	for i := 1; i <= 16; i++ {
		for range 2 {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.%d.%d:0", third, i))
			if err != nil {
				t.Fatal(err)
			}
			lns = append(lns, l)
			fmt.Println("listen", l.Addr())
			go accept(l, role == "answer")
		}
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	for _, l := range lns {
		l.Close()
	}
}

func accept(l net.Listener, answer bool) {
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // EMFILE and the like
			continue
		}
		if answer {
			go serve(c)
		} else {
			go func() { io.Copy(io.Discard, c); c.Close() }() // until the prober gives up
		}
	}
}

var response = []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok")

// serve answers each request head on c with 200 ok, until c closes or is idle for a minute.
func serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReaderSize(c, 4096)
	for {
		c.SetDeadline(time.Now().Add(time.Minute))
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				return
			}
			if len(bytes.TrimRight(line, "\r\n")) == 0 {
				break
			}
		}
		if _, err := c.Write(response); err != nil {
			return
		}
	}
}

// TestOutageProbe is the measured process of TestOutage: it probes the targets of one mix with
// an Engine of default options and prints "result JSON".
func TestOutageProbe(t *testing.T) {
	if os.Getenv(envRole) != "probe" {
		t.Skip("run by TestOutage")
	}
	if v := envInt("STEER_OUTAGE_NOFILE", 0); v > 0 {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: uint64(v), Max: uint64(v)}); err != nil {
			t.Fatalf("RLIMIT_NOFILE %d: %v", v, err)
		}
	}
	mix, n, seconds := os.Getenv("STEER_OUTAGE_MIX"), envInt("STEER_OUTAGE_N", 0), envInt("STEER_OUTAGE_SECONDS", 30)
	lists := map[string][]string{}
	for _, k := range []string{"ANSWER", "HANG", "REFUSE"} {
		if v := os.Getenv("STEER_OUTAGE_" + k); v != "" {
			lists[k] = strings.Split(v, ",")
		}
	}
	if mix == "floor" {
		probeFloor(t, n, seconds, lists["HANG"])
		return
	}
	targets := make([]healthcheck.Target, n)
	answering := make([]bool, n)
	for i := range targets {
		kind := "ANSWER"
		switch {
		case mix == "refusing":
			kind = "REFUSE"
		case mixHang[mix](i):
			kind = "HANG"
		}
		answering[i] = kind == "ANSWER"
		list := lists[kind]
		if len(list) == 0 {
			t.Fatalf("no %s addresses", kind)
		}
		host, port, err := net.SplitHostPort(list[i%len(list)])
		if err != nil {
			t.Fatal(err)
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			t.Fatalf("%s is not a loopback address", host) // never probe beyond this machine
		}
		p, _ := strconv.Atoi(port)
		c := healthcheck.Config{Type: healthcheck.TypeHTTP, Port: p, Path: "/t/" + strconv.Itoa(i), ExpectBody: "ok"}.Normalize()
		targets[i] = healthcheck.NewTarget("web", c, host)
	}

	reasons := map[string]*atomic.Int64{}
	for _, r := range []string{"", healthcheck.ReasonTimeout, healthcheck.ReasonRefused, healthcheck.ReasonReset,
		healthcheck.ReasonStatus, healthcheck.ReasonBody, healthcheck.ReasonOther} {
		reasons[r] = new(atomic.Int64)
	}
	var logMu sync.Mutex
	var limitLog []string
	e := healthcheck.NewEngine(healthcheck.Options{
		OnResult: func(_ string, _ time.Duration, reason string) {
			if c := reasons[reason]; c != nil {
				c.Add(1)
			}
		},
		Logf: func(format string, args ...any) {
			if l := fmt.Sprintf(format, args...); strings.HasPrefix(l, "health checks:") { // not the targets' changes
				logMu.Lock()
				limitLog = append(limitLog, l)
				logMu.Unlock()
			}
		},
	})
	defer e.Close()
	sub := e.Subscribe(nil)

	// The sampling below runs on a thread of its own, so that its CPU can be taken out.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start := time.Now()
	st := sub.Sync(targets)
	for !sub.Ready() {
		if time.Since(start) > 5*time.Minute {
			t.Fatal("the first round took more than 5 minutes")
		}
		time.Sleep(10 * time.Millisecond)
	}
	firstRound := time.Since(start)

	// The window: count each target's probes (a new Checked time) by sampling every 500ms;
	// every probe of a target is at least fast_interval (1s) after the last. Intervals are
	// measured between the probes' starts (Checked - Latency): a hanging target's probes take
	// 2s on a new connection and microseconds on a held one (see healthcheck's hungLooks).
	type seen struct {
		last     time.Time // the last Checked time
		from, to time.Time // the first and last starts
		count    int
	}
	began := func(o healthcheck.Observation) time.Time { return o.Checked.Add(-o.Latency) }
	s := make([]seen, n)
	for i := range s {
		s[i].last = st[i].Observation().Checked
	}
	for _, c := range reasons {
		c.Store(0)
	}
	if f := os.Getenv("STEER_OUTAGE_CPUPROFILE"); f != "" {
		out, err := os.Create(f + "." + mix)
		if err != nil {
			t.Fatal(err)
		}
		defer out.Close()
		pprof.StartCPUProfile(out)
	}
	shed0 := shed(e)
	self0, thr0, t0 := rusage(syscall.RUSAGE_SELF), rusage(1 /* RUSAGE_THREAD */), time.Now()
	maxG, maxFD := 0, 0
	end := t0.Add(time.Duration(seconds) * time.Second)
	for tick := 0; time.Now().Before(end); tick++ {
		time.Sleep(500 * time.Millisecond)
		for i := range s {
			if o := st[i].Observation(); !o.Checked.Equal(s[i].last) {
				if s[i].count == 0 {
					s[i].from = began(o)
				}
				s[i].last, s[i].to = o.Checked, began(o)
				s[i].count++
			}
		}
		maxG = max(maxG, runtime.NumGoroutine())
		if tick%4 == 0 {
			maxFD = max(maxFD, countFDs())
		}
	}
	wall := time.Since(t0)
	self1, thr1 := rusage(syscall.RUSAGE_SELF), rusage(1)
	if os.Getenv("STEER_OUTAGE_CPUPROFILE") != "" {
		pprof.StopCPUProfile()
	}
	if f := os.Getenv("STEER_OUTAGE_GOROUTINES"); f != "" {
		if out, err := os.Create(f + "." + mix); err == nil {
			pprof.Lookup("goroutine").WriteTo(out, 1)
			out.Close()
		}
	}
	if f := os.Getenv("STEER_OUTAGE_HEAPPROFILE"); f != "" {
		if out, err := os.Create(f + "." + mix); err == nil {
			pprof.Lookup("heap").WriteTo(out, 0)
			out.Close()
		}
	}
	cpu := func(r syscall.Rusage) time.Duration { return time.Duration(r.Utime.Nano() + r.Stime.Nano()) }
	poller := cpu(thr1) - cpu(thr0)

	perInterval := func(x seen) float64 {
		if x.count >= 2 && x.to.After(x.from) {
			return float64(x.count-1) * interval.Seconds() / x.to.Sub(x.from).Seconds()
		}
		return float64(x.count) * interval.Seconds() / wall.Seconds()
	}
	var ok, all []float64
	maxGap := 0.0
	for i, x := range s {
		v := perInterval(x)
		all = append(all, v)
		if answering[i] {
			ok = append(ok, v)
			if x.count >= 2 {
				maxGap = max(maxGap, x.to.Sub(x.from).Seconds()/float64(x.count-1))
			}
			if x.count < 2 {
				maxGap = max(maxGap, wall.Seconds())
			}
		}
	}
	r := result{
		Mix: mix, Targets: n, Answering: len(ok), MaxGapOK: maxGap, FirstRound: firstRound.Seconds(),
		CPU:           100 * (cpu(self1) - cpu(self0) - poller).Seconds() / wall.Seconds(),
		PollerCPUPerc: 100 * poller.Seconds() / wall.Seconds(), Window: wall.Seconds(),
		PeakRSS: procStatusMB("VmHWM"), RSS: procStatusMB("VmRSS"), MaxGoroutines: maxG, MaxFDs: maxFD,
		Reasons: map[string]int64{}, Capacity: capacity(e), ShedPerSec: -1,
	}
	if shed0 >= 0 {
		r.ShedPerSec = (shed(e) - shed0) / wall.Seconds()
	}
	logMu.Lock()
	r.Logged = slices.Clone(limitLog)
	logMu.Unlock()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r.HeapInuse, r.StackInuse = float64(ms.HeapInuse)/(1<<20), float64(ms.StackInuse)/(1<<20)
	r.MinOK, r.MedOK = minMedian(ok)
	r.MinAll, r.MedAll = minMedian(all)
	for k, c := range reasons {
		if v := c.Load(); v > 0 {
			if k == "" {
				k = "ok"
			}
			r.Reasons[k] = v
		}
	}
	j, _ := json.Marshal(r)
	fmt.Printf("result %s\n", j)
}

// probeFloor is the floor of the two-thirds mix: the probes of its hanging targets, as many a
// second (two thirds of n every interval), each a plain net.Dialer connection that sends the
// request, waits for the 2s timeout and closes with a reset, in a goroutine of its own; no engine,
// no answering target, nothing kept. What it costs, an engine cannot save while it dials anew
// for every probe of a target that hangs.
func probeFloor(t *testing.T, n, seconds int, addrs []string) {
	rate := n * 2 / 3 / int(interval/time.Second)
	req := []byte("GET /t/1 HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: steerdns-healthcheck\r\n\r\n")
	d := &net.Dialer{KeepAlive: -1}
	var probes atomic.Int64
	probe := func(addr string) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return
		}
		c.(*net.TCPConn).SetLinger(0)
		c.SetDeadline(time.Now().Add(2 * time.Second))
		c.Write(req)
		var b [512]byte
		c.Read(b[:])
		c.Close()
		probes.Add(1)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	stop := make(chan struct{})
	go func() { // 100 batches a second
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			for range rate / 100 {
				go probe(addrs[i%len(addrs)])
				i++
			}
		}
	}()
	defer close(stop)
	// To the steady state: the first probes have timed out (2s), so that a full 2s of probes is
	// in flight from now on.
	warm := time.Now()
	for probes.Load() < int64(rate) {
		if time.Since(warm) > 30*time.Second {
			t.Fatalf("the floor's dialer finished %d probes in 30s, want %d", probes.Load(), rate)
		}
		time.Sleep(10 * time.Millisecond)
	}
	self0, thr0, t0 := rusage(syscall.RUSAGE_SELF), rusage(1), time.Now()
	p0 := probes.Load()
	maxG, maxFD := 0, 0
	for tick := 0; time.Since(t0) < time.Duration(seconds)*time.Second; tick++ {
		time.Sleep(500 * time.Millisecond)
		maxG = max(maxG, runtime.NumGoroutine())
		if tick%4 == 0 {
			maxFD = max(maxFD, countFDs())
		}
	}
	wall := time.Since(t0)
	self1, thr1 := rusage(syscall.RUSAGE_SELF), rusage(1)
	cpu := func(r syscall.Rusage) time.Duration { return time.Duration(r.Utime.Nano() + r.Stime.Nano()) }
	poller := cpu(thr1) - cpu(thr0)
	r := result{
		Mix: "floor", Targets: n * 2 / 3, ShedPerSec: -1, CPU: 100 * (cpu(self1) - cpu(self0) - poller).Seconds() / wall.Seconds(),
		PollerCPUPerc: 100 * poller.Seconds() / wall.Seconds(), Window: wall.Seconds(),
		PeakRSS: procStatusMB("VmHWM"), RSS: procStatusMB("VmRSS"), MaxGoroutines: maxG, MaxFDs: maxFD,
		Reasons:  map[string]int64{"timeout": probes.Load() - p0},
		Capacity: fmt.Sprintf("plain net.Dialer, %d probes/s", rate),
	}
	r.MinAll = float64(probes.Load()-p0) / wall.Seconds() / float64(rate)
	r.MedAll = r.MinAll
	j, _ := json.Marshal(r)
	fmt.Printf("result %s\n", j)
}

// capacityOf returns what the engine's Capacity method returns, and false for engines (of older
// code) that have none: reflection, so that the benchmark runs against those too.
func capacityOf(e *healthcheck.Engine) (reflect.Value, bool) {
	m := reflect.ValueOf(e).MethodByName("Capacity")
	if !m.IsValid() {
		return reflect.Value{}, false
	}
	return m.Call(nil)[0], true
}

// capacity returns what the engine's Capacity method says, for engines that have one.
func capacity(e *healthcheck.Engine) string {
	c, ok := capacityOf(e)
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%+v", c.Interface())
}

// shed returns Engine.Capacity's Shed, or -1 for engines that do not count it.
func shed(e *healthcheck.Engine) float64 {
	c, ok := capacityOf(e)
	if !ok || !c.FieldByName("Shed").IsValid() {
		return -1
	}
	return float64(c.FieldByName("Shed").Uint())
}

func minMedian(v []float64) (float64, float64) {
	if len(v) == 0 {
		return 0, 0
	}
	slices.Sort(v)
	return v[0], v[len(v)/2]
}

func rusage(who int) syscall.Rusage {
	var ru syscall.Rusage
	syscall.Getrusage(who, &ru)
	return ru
}

func countFDs() int {
	f, err := os.Open("/proc/self/fd")
	if err != nil {
		return 0
	}
	defer f.Close()
	names, _ := f.Readdirnames(-1)
	return len(names) - 1 // the one open to read it
}

// procStatusMB returns a field of /proc/self/status given in kB, in MB.
func procStatusMB(field string) float64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

func raiseNofile(n uint64) {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil && rl.Cur < n {
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: n, Max: max(n, rl.Max)}) != nil {
			syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: rl.Max, Max: rl.Max})
		}
	}
}

func envInt(k string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil {
		return v
	}
	return def
}

func envStr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return "unknown CPU"
}

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}

// prefixed returns a writer that writes lines to stdout with a prefix.
func prefixed(p string) io.Writer {
	r, w := io.Pipe()
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if !strings.HasPrefix(sc.Text(), "result ") {
				fmt.Println(p + sc.Text())
			}
		}
	}()
	return w
}
