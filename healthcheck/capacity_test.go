package healthcheck

import (
	"fmt"
	"io"
	"net"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// hangingPort returns the port of a listener that accepts connections and never answers; it
// closes each when the prober does.
func hangingPort(t *testing.T) int {
	return portOfListener(t, func(c net.Conn) {
		go func() {
			io.Copy(io.Discard, c)
			c.Close()
		}()
	})
}

// portOfListener serves a new listener on 127.0.0.1 with handle, which must not block.
func portOfListener(t *testing.T, handle func(net.Conn)) int {
	l := listen(t)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			handle(c)
		}
	}()
	return portOf(t, l.Addr().String())
}

// outage is a set of targets probed every 300ms with a timeout of 150ms: hanging ones, which
// take their whole timeout, and answering ones.
type outage struct {
	targets   []Target
	answering int // the first answering targets are answering, the rest hang
}

func newOutage(t *testing.T, answering, hanging int) outage {
	timing := func(c *Config) { c.Interval, c.Timeout = 300*time.Millisecond, 150*time.Millisecond }
	b := newSwitchable(t)
	var o outage
	for i := range answering {
		o.targets = append(o.targets, b.target(fmt.Sprintf("/ok/%d", i), timing))
	}
	ports := []int{hangingPort(t), hangingPort(t), hangingPort(t), hangingPort(t)}
	for i := range hanging {
		o.targets = append(o.targets, testTarget(TypeHTTP, ports[i%len(ports)], func(c *Config) {
			timing(c)
			c.Path = fmt.Sprintf("/hang/%d", i)
		}))
	}
	o.answering = answering
	return o
}

// count probes the targets of o with e and returns the number of probes of each target over a
// window of 10 intervals that starts once every target has had its first probe.
func (o outage) count(t *testing.T, e *Engine) []int {
	sub := e.Subscribe(nil)
	st := sub.Sync(o.targets)
	eventually(t, 10*time.Second, "every target probed once", sub.Ready)
	last := make([]time.Time, len(st))
	for i, s := range st {
		last[i] = s.Observation().Checked
	}
	// Two probes of a target are at least 300ms apart: polling every 10ms sees each.
	n := make([]int, len(st))
	for end := time.Now().Add(10 * o.targets[0].Config.Interval); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		for i, s := range st {
			if c := s.Observation().Checked; !c.Equal(last[i]) {
				last[i] = c
				n[i]++
			}
		}
	}
	return n
}

// minMedian returns the least and the median of v.
func minMedian(v []int) (int, int) {
	v = slices.Sorted(slices.Values(v))
	return v[0], v[len(v)/2]
}

// A hanging majority starves no one: 200 targets that hang until their timeout and 20 that
// answer, all every 300ms, need 110 probes in flight; each answering target is still probed
// about once an interval, because the bound on probes in flight follows from that need. With a
// constant bound below it (as the default of 1,024 was below 30,000 targets), every target's
// probes wait their turn and the answering ones are probed a fraction as often: the control
// shows that the count catches it.
func TestHangingMajorityStarvesNone(t *testing.T) {
	t.Parallel()
	t.Run("bound from the work", func(t *testing.T) {
		t.Parallel()
		o := newOutage(t, 20, 200)
		e := NewEngine(Options{})
		defer e.Close()
		n := o.count(t, e)
		lo, med := minMedian(n[:o.answering])
		c := e.Capacity()
		t.Logf("answering targets: %d to %d probes in 10 intervals (median %d); %+v", lo, slices.Max(n[:o.answering]), med, c)
		if lo < 7 {
			t.Errorf("an answering target was probed %d times in 10 intervals, while 200 others hung", lo)
		}
		if c.Need != 110 || c.Max < c.Need || c.Limit != "" {
			t.Errorf("capacity %+v: want Need 110, Max above it, no limit", c)
		}
	})
	t.Run("a constant bound starves", func(t *testing.T) {
		t.Parallel()
		o := newOutage(t, 20, 200)
		var mu sync.Mutex
		var limits []string
		e := NewEngine(Options{MaxInFlight: 16, OnLimit: func(c Capacity) {
			mu.Lock()
			limits = append(limits, c.Limit)
			mu.Unlock()
		}})
		defer e.Close()
		n := o.count(t, e)
		lo, med := minMedian(n[:o.answering])
		t.Logf("answering targets: %d to %d probes in 10 intervals (median %d)", lo, slices.Max(n[:o.answering]), med)
		if med > 4 {
			t.Errorf("with 16 probes in flight for a need of 110, answering targets were probed %d times in 10 intervals (median)", med)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(limits) == 0 || limits[0] != LimitOption {
			t.Errorf("OnLimit calls %q, want %q first", limits, LimitOption)
		}
	})
}

// When the file descriptor limit holds probes back, it is logged once and reported, the probes
// hold no more descriptors than their share, and every target is late alike: none is starved.
// Not parallel: file descriptors are counted over the process.
func TestFileDescriptorLimit(t *testing.T) {
	o := newOutage(t, 10, 200)
	var mu sync.Mutex
	var logs, limits []string
	maxInUse := 0
	e := NewEngine(Options{
		fdLimit: 90, // 45 for probes (half, as the limit is low), and 105 needed in flight
		Logf: func(format string, args ...any) {
			mu.Lock()
			logs = append(logs, fmt.Sprintf(format, args...))
			mu.Unlock()
		},
		OnLimit: func(c Capacity) {
			mu.Lock()
			limits = append(limits, c.Limit)
			mu.Unlock()
		},
	})
	defer e.Close()
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
			c := e.Capacity()
			mu.Lock()
			maxInUse = max(maxInUse, c.FDsInUse)
			mu.Unlock()
		}
	}()
	n := o.count(t, e)
	close(done)
	c := e.Capacity()
	lo, med := minMedian(n)
	loOK, _ := minMedian(n[:o.answering])
	t.Logf("targets: %d to %d probes in 10 intervals (median %d), answering ones from %d; %+v", lo, slices.Max(n), med, loOK, c)

	mu.Lock()
	defer mu.Unlock()
	if c.FDs != 45 || maxInUse > c.FDs+1 { // + 1: a probe's count and its kept connection's cross
		t.Errorf("the probes held up to %d file descriptors, of %d", maxInUse, c.FDs)
	}
	if c.Limit != LimitFDs || len(limits) == 0 || limits[0] != LimitFDs {
		t.Errorf("limit %q, OnLimit calls %q: want %q", c.Limit, limits, LimitFDs)
	}
	var told []string
	for _, l := range logs {
		if strings.Contains(l, "wait for file descriptors") {
			told = append(told, l)
		}
	}
	if len(told) != 1 {
		t.Errorf("logged %q, want one line of the file descriptor limit", told)
	}
	if med >= 10 || lo < med/2 || loOK < med/2 {
		t.Errorf("%d to %d probes per target (median %d), answering ones from %d: want fewer than 10, all alike", lo, slices.Max(n), med, loOK)
	}
}

// When the probes' file descriptors run out for the connections they keep (40 answering
// targets, 30 descriptors), connections are closed or not kept: no probe waits and every target
// keeps its interval, but it is counted (Capacity.Shed), logged once, and the kept connections
// stay within the budget. With descriptors enough, none is shed and nothing is logged. Not
// parallel: file descriptors are counted over the process.
func TestKeptConnectionsShed(t *testing.T) {
	for _, c := range []struct {
		name    string
		fdLimit int
		shed    bool
	}{{"descriptors enough", 0, false}, {"30 descriptors for 40 targets", 60, true}} {
		t.Run(c.name, func(t *testing.T) {
			o := newOutage(t, 40, 0)
			var mu sync.Mutex
			var told []string
			e := NewEngine(Options{fdLimit: c.fdLimit, Logf: func(format string, args ...any) {
				mu.Lock()
				defer mu.Unlock()
				if l := fmt.Sprintf(format, args...); strings.Contains(l, "for want of file descriptors") {
					told = append(told, l)
				}
			}})
			defer e.Close()
			shed0 := e.Capacity().Shed
			n := o.count(t, e)
			capa := e.Capacity()
			lo, med := minMedian(n)
			t.Logf("%d to %d probes in 10 intervals (median %d); %+v", lo, slices.Max(n), med, capa)
			if lo < 8 {
				t.Errorf("a target was probed %d times in 10 intervals, want about 10", lo)
			}
			if capa.Kept > capa.FDs {
				t.Errorf("%d connections kept, over the probes' %d descriptors", capa.Kept, capa.FDs)
			}
			mu.Lock()
			defer mu.Unlock()
			if shed := capa.Shed - shed0; (shed > 0) != c.shed {
				t.Errorf("%d connections shed, want them shed: %t", shed, c.shed)
			}
			if want := map[bool]int{false: 0, true: 1}[c.shed]; len(told) != want {
				t.Errorf("logged %q, want %d line", told, want)
			}
			if c.shed && len(told) == 1 && !strings.Contains(told[0], "LimitNOFILE") {
				t.Errorf("logged %q: it does not say what to raise", told[0])
			}
		})
	}
}

// A Go memory limit lowers the bound on probes in flight, and says so. Not parallel: the limit
// is the process's.
func TestMemoryLimit(t *testing.T) {
	old := debug.SetMemoryLimit(8 * 4 * probeMemory) // room for 8 probes in flight
	defer debug.SetMemoryLimit(old)
	port := hangingPort(t)
	var targets []Target
	for i := range 40 {
		targets = append(targets, testTarget(TypeHTTP, port, func(c *Config) {
			c.Path = fmt.Sprintf("/%d", i)
			c.Interval, c.Timeout = 400*time.Millisecond, 200*time.Millisecond
		}))
	}
	limits := make(chan string, 10)
	e := NewEngine(Options{OnLimit: func(c Capacity) { limits <- c.Limit }})
	defer e.Close()
	e.Subscribe(nil).Sync(targets)
	select {
	case l := <-limits:
		if l != LimitMemory {
			t.Errorf("limit %q, want %q", l, LimitMemory)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no limit reported within 5s")
	}
	if c := e.Capacity(); c.Max != 8 || c.Need != 20 || c.InFlight > 8 {
		t.Errorf("capacity %+v: want Max 8 for a Need of 20, at most 8 in flight", c)
	}
}
