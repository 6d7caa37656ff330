package healthcheck

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// stallServer is an HTTP/1.1 backend on loopback that answers 200, or, while hanging, reads each
// request and never answers it: a black-holed region. It counts the connections it accepts, the
// ones the prober closed, and requests that came on a connection whose request was unanswered
// (which a prober must never send).
type stallServer struct {
	port                int
	hanging             atomic.Bool
	conns, closed, reqs counter
	secondOnStalled     counter
	mu                  sync.Mutex
	stalled             map[net.Conn]bool
}

func newStallServer(t *testing.T) *stallServer {
	s := &stallServer{stalled: map[net.Conn]bool{}}
	l := listen(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var all []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.conns.add(1)
			mu.Lock()
			all = append(all, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range all {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	s.port = portOf(t, l.Addr().String())
	return s
}

const okResponse = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"

func (s *stallServer) serve(c net.Conn) {
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			s.closed.add(1) // the prober closed (or reset) the connection
			c.Close()
			return
		}
		io.Copy(io.Discard, req.Body)
		s.reqs.add(1)
		s.mu.Lock()
		if s.stalled[c] {
			s.secondOnStalled.add(1)
		}
		if s.hanging.Load() {
			s.stalled[c] = true
			s.mu.Unlock()
			continue // never answered; the next read waits for the prober's close
		}
		s.mu.Unlock()
		if _, err := io.WriteString(c, okResponse); err != nil {
			c.Close()
			return
		}
	}
}

// stalledConns returns how many connections hold an unanswered request.
func (s *stallServer) stalledConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.stalled)
}

// wake ends the stall of every connection: with answer, each gets its (late) answer, as when a
// stuck backend resumes; otherwise each is closed, as when it restarts.
func (s *stallServer) wake(answer bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.stalled {
		if answer {
			io.WriteString(c, okResponse)
		} else {
			c.Close()
		}
		delete(s.stalled, c)
	}
}

// result is one probe's result as the engine reports it.
type result struct {
	d      time.Duration
	reason string
}

// probed starts an engine probing tg and returns its probes' results so far and its changes.
func probed(t *testing.T, tg Target) (func() []result, chan Change) {
	var mu sync.Mutex
	var rs []result
	e := NewEngine(Options{OnResult: func(_ string, d time.Duration, reason string) {
		mu.Lock()
		rs = append(rs, result{d, reason})
		mu.Unlock()
	}})
	t.Cleanup(e.Close)
	on, ch := changes()
	e.Subscribe(on).Sync([]Target{tg})
	return func() []result {
		mu.Lock()
		defer mu.Unlock()
		return append([]result(nil), rs...)
	}, ch
}

// A target that hangs is judged on its held connection once it is down: of its probes after
// the fall, only every (hungLooks+1)-th dials; the others fail at once, with reason timeout. A
// held connection never carries a second request, and the fall probes each have their own.
func TestHangingTargetHeld(t *testing.T) {
	s := newStallServer(t)
	s.hanging.Store(true)
	const fall = 2
	results, ch := probed(t, quick(TypeHTTP, s.port, func(c *Config) { c.Fall = fall }))
	if c := next(t, ch); c.To != Down || c.Reason != ReasonTimeout {
		t.Fatalf("first change %+v, want down, timeout", c)
	}
	eventually(t, 10*time.Second, "20 probes", func() bool { return len(results()) >= 20 })
	conns := s.conns.get()
	rs := results()
	// The fall probes dial (a first failure takes an unknown target down at once, so there may
	// be only one), then one probe in hungLooks+1; one more may be dialling now.
	after := len(rs) + 1 - fall
	want := fall + (after+hungLooks)/(hungLooks+1)
	if conns > want || conns < (len(rs)-fall)/(hungLooks+1) {
		t.Errorf("%d probes dialled %d connections, want %d", len(rs), conns, want)
	}
	looked := 0
	for i, r := range rs {
		if r.reason != ReasonTimeout {
			t.Errorf("probe %d: reason %q, want timeout", i, r.reason)
		}
		if r.d < testTimeout/4 {
			looked++
		}
	}
	if wantQuick := (len(rs) - fall) * hungLooks / (hungLooks + 1); looked < wantQuick-1 {
		t.Errorf("%d of %d probes were judged on the held connection, want %d", looked, len(rs), wantQuick)
	}
	if n := s.secondOnStalled.get(); n != 0 {
		t.Errorf("%d requests sent on a connection whose request was unanswered", n)
	}
	// Held connections are closed, not leaked: at most one is open at a time, plus the one of
	// a probe in flight.
	if open := s.conns.get() - s.closed.get(); open > 2 {
		t.Errorf("%d connections open, want at most 2", open)
	}
}

// A hanging gRPC target is held the same way.
func TestHangingGRPCTargetHeld(t *testing.T) {
	b := newCountedGRPC(t)
	b.hang.Store(true)
	results, ch := probed(t, quick(TypeGRPC, b.port, func(c *Config) { c.Fall = 2 }))
	if c := next(t, ch); c.To != Down || c.Reason != ReasonTimeout {
		t.Fatalf("first change %+v, want down, timeout", c)
	}
	eventually(t, 10*time.Second, "20 probes", func() bool { return len(results()) >= 20 })
	conns, calls := b.conns.get(), b.calls.get()
	n := len(results())
	if want := 2 + (n-2+hungLooks+1)/(hungLooks+1); conns > want || calls > want {
		t.Errorf("%d probes made %d calls on %d connections, want at most %d", n, calls, conns, want)
	}
}

// An up target, or one with a change pending, never counts a held request twice: from the
// first timeout on, each fall probe sends its request on a connection of its own.
func TestFallProbesOwnConnections(t *testing.T) {
	s := newStallServer(t)
	const fall = 3
	_, ch := probed(t, quick(TypeHTTP, s.port, func(c *Config) { c.Fall, c.Rise = fall, 1 }))
	if c := next(t, ch); c.To != Up {
		t.Fatalf("first change %+v, want up", c)
	}
	eventually(t, 5*time.Second, "a reused connection", func() bool { return s.reqs.get() >= 3 })
	before := s.conns.get()
	s.hanging.Store(true)
	if c := next(t, ch); c.To != Down || c.Reason != ReasonTimeout {
		t.Fatalf("hanging: %+v, want down, timeout", c)
	}
	// The first fall probe used the kept connection; the others each dialled.
	if n := s.conns.get() - before; n < fall-1 {
		t.Errorf("%d fall probes on %d new connections, want %d", fall, n, fall-1)
	}
	if n := s.secondOnStalled.get(); n != 0 {
		t.Errorf("%d requests sent on a connection whose request was unanswered", n)
	}
}

// A hanging target recovers: at once when the backend answers or closes the held connection
// (the stall ended, the process restarted), and at the latest at the next probe that dials when
// it answers new connections only.
func TestHeldConnectionRecovery(t *testing.T) {
	const rise = 2
	for _, tc := range []struct {
		name string
		wake func(*stallServer)
		max  int // probes after the wake until up, at most
	}{
		{"late answer", func(s *stallServer) { s.wake(true) }, rise + 1},
		{"restart", func(s *stallServer) { s.wake(false) }, rise + 1},
		{"new connections only", func(*stallServer) {}, hungLooks + 1 + rise + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStallServer(t)
			s.hanging.Store(true)
			results, ch := probed(t, quick(TypeHTTP, s.port, func(c *Config) { c.Fall, c.Rise = 2, rise }))
			if c := next(t, ch); c.To != Down {
				t.Fatalf("first change %+v, want down", c)
			}
			// Wait until a probe has been judged on a held connection.
			eventually(t, 5*time.Second, "a look at a held connection", func() bool {
				for _, r := range results() {
					if r.d < testTimeout/4 {
						return true
					}
				}
				return false
			})
			s.hanging.Store(false)
			n := len(results())
			tc.wake(s)
			if c := next(t, ch); c.To != Up {
				t.Fatalf("after the stall: %+v, want up", c)
			}
			if took := len(results()) - n; took > tc.max {
				t.Errorf("up after %d probes, want at most %d", took, tc.max)
			}
		})
	}
}

// A dropped target closes its held connection.
func TestHeldConnectionClosed(t *testing.T) {
	s := newStallServer(t)
	s.hanging.Store(true)
	e := NewEngine(Options{})
	t.Cleanup(e.Close)
	on, ch := changes()
	sub := e.Subscribe(on)
	sub.Sync([]Target{quick(TypeHTTP, s.port, nil)})
	if c := next(t, ch); c.To != Down {
		t.Fatalf("first change %+v, want down", c)
	}
	eventually(t, 5*time.Second, "a held connection", func() bool { return s.stalledConns() > 0 })
	sub.Sync(nil)
	eventually(t, 5*time.Second, "every connection closed", func() bool { return s.closed.get() == s.conns.get() })
}

// A target released while its change is being delivered (its probe has ended, it is not
// queued) closes its connection too.
func TestReleasedDuringChangeClosed(t *testing.T) {
	s := newStallServer(t)
	s.hanging.Store(true)
	e := NewEngine(Options{})
	t.Cleanup(e.Close)
	var sub atomic.Pointer[Subscription]
	released := make(chan struct{})
	sub.Store(e.Subscribe(func(c Change) {
		if c.To == Down {
			sub.Load().Sync(nil) // from the delivery itself: the probe's entry is neither queued nor probing
			close(released)
		}
	}))
	sub.Load().Sync([]Target{quick(TypeHTTP, s.port, func(c *Config) { c.Fall = 1 })})
	select {
	case <-released:
	case <-time.After(5 * time.Second):
		t.Fatal("no change to down within 5s")
	}
	eventually(t, 5*time.Second, "every connection closed", func() bool { return s.conns.get() > 0 && s.closed.get() == s.conns.get() })
}
