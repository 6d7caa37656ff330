package healthcheck

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// keepAliveBackend is an HTTP server on loopback that counts the connections it accepts and the
// requests it serves. handler, when not nil, answers instead of a plain 200.
type keepAliveBackend struct {
	srv                 *httptest.Server
	port                int
	conns, reqs, closed counter
}

func newKeepAliveBackend(t *testing.T, tlsToo bool, configure func(*http.Server), h http.HandlerFunc) *keepAliveBackend {
	b := &keepAliveBackend{}
	b.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.reqs.add(1)
		if h != nil {
			h(w, r)
		}
	}))
	b.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			b.conns.add(1)
		case http.StateClosed:
			b.closed.add(1)
		}
	}
	if configure != nil {
		configure(b.srv.Config)
	}
	if tlsToo {
		b.srv.StartTLS()
	} else {
		b.srv.Start()
	}
	t.Cleanup(b.srv.Close)
	b.port = portOf(t, b.srv.Listener.Addr().String())
	return b
}

// engineOn starts an engine probing tg and returns the reasons of its probes' results and its
// changes.
func engineOn(t *testing.T, tg Target) (func() []string, chan Change) {
	results, ch := probed(t, tg)
	return func() []string {
		var reasons []string
		for _, r := range results() {
			reasons = append(reasons, r.reason)
		}
		return reasons
	}, ch
}

// quick returns a target of type typ on port that is probed every 100ms.
func quick(typ string, port int, mod func(*Config)) Target {
	return testTarget(typ, port, func(c *Config) {
		c.Interval, c.FastInterval, c.Timeout = MinInterval, MinInterval/2, 200*time.Millisecond
		c.InsecureTLS = true
		if mod != nil {
			mod(c)
		}
	})
}

// The engine's HTTP and HTTPS probes of a target reuse one connection.
func TestEngineReusesConnection(t *testing.T) {
	for _, typ := range []string{TypeHTTP, TypeHTTPS} {
		t.Run(typ, func(t *testing.T) {
			b := newKeepAliveBackend(t, typ == TypeHTTPS, nil, nil)
			results, _ := engineOn(t, quick(typ, b.port, nil))
			eventually(t, 5*time.Second, "5 probes", func() bool { return b.reqs.get() >= 5 })
			if n := b.conns.get(); n != 1 {
				t.Errorf("%d requests on %d connections, want 1 connection", b.reqs.get(), n)
			}
			for _, r := range results() {
				if r != "" {
					t.Errorf("a probe failed: %s", r)
				}
			}
		})
	}
}

// A target that no subscription holds any more closes its kept connection, and so does the
// engine's Close.
func TestKeptConnectionClosed(t *testing.T) {
	b := newKeepAliveBackend(t, false, nil, nil)
	e := NewEngine(Options{})
	t.Cleanup(e.Close)
	sub := e.Subscribe(nil)
	sub.Sync([]Target{quick(TypeHTTP, b.port, nil)})
	eventually(t, 5*time.Second, "a kept connection", func() bool { return b.reqs.get() >= 2 })
	if b.closed.get() != 0 {
		t.Fatalf("%d connections closed while the target was probed", b.closed.get())
	}
	sub.Sync(nil)
	eventually(t, 5*time.Second, "the connection of a dropped target closed", func() bool { return b.closed.get() == 1 })

	b = newKeepAliveBackend(t, false, nil, nil)
	e.Subscribe(nil).Sync([]Target{quick(TypeHTTP, b.port, nil)})
	eventually(t, 5*time.Second, "a kept connection", func() bool { return b.reqs.get() >= 2 })
	e.Close()
	eventually(t, 5*time.Second, "the connection closed with the engine", func() bool { return b.closed.get() == 1 })
}

// A response that closes the connection (Connection: close, HTTP/1.0) leaves nothing to reuse,
// and Probe, the function, never reuses.
func TestNoReuse(t *testing.T) {
	b := newKeepAliveBackend(t, false, nil, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
	})
	results, _ := engineOn(t, quick(TypeHTTP, b.port, nil))
	eventually(t, 5*time.Second, "3 probes", func() bool { return len(results()) >= 3 })
	if r, c := b.reqs.get(), b.conns.get(); r != c {
		t.Errorf("Connection: close: %d requests on %d connections, want one each", r, c)
	}

	b = newKeepAliveBackend(t, false, nil, nil)
	for range 3 {
		wantReason(t, probe(t, quick(TypeHTTP, b.port, nil)), "")
	}
	if r, c := b.reqs.get(), b.conns.get(); r != 3 || c != 3 {
		t.Errorf("Probe: %d requests on %d connections, want 3 on 3", r, c)
	}
}

// A server that closes idle connections before the next probe (its idle timeout shorter than
// the interval) fails no probe: the probe finds the connection closed and takes a new one.
func TestStaleConnectionRetried(t *testing.T) {
	b := newKeepAliveBackend(t, false, func(s *http.Server) { s.IdleTimeout = 10 * time.Millisecond }, nil)
	results, _ := engineOn(t, quick(TypeHTTP, b.port, nil))
	eventually(t, 5*time.Second, "5 probes", func() bool { return len(results()) >= 5 })
	for _, r := range results() {
		if r != "" {
			t.Fatalf("a probe failed on a connection the server had closed: %s", r)
		}
	}
	if r, c := b.reqs.get(), b.conns.get(); c < r {
		t.Errorf("%d requests on %d connections: the closed connections were not replaced", r, c)
	}
}

// A server that closes the connection on receiving the second request, without an answer (the
// race of an idle timeout with the request), fails no probe either: the request is sent again,
// once, on a new connection. One that never answers fails.
func TestClosedBeforeAnswerRetried(t *testing.T) {
	const ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	serve := func(answers int) func(net.Conn) {
		return func(c net.Conn) {
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for i := 0; ; i++ {
					req, err := http.ReadRequest(br)
					if err != nil || i == answers {
						return
					}
					req.Body.Close()
					if _, err := c.Write([]byte(ok)); err != nil {
						return
					}
				}
			}()
		}
	}
	port, conns := serveConns(t, serve(1))
	results, _ := engineOn(t, quick(TypeHTTP, port, nil))
	eventually(t, 5*time.Second, "5 probes", func() bool { return len(results()) >= 5 })
	for _, r := range results() {
		if r != "" {
			t.Fatalf("a probe failed when the server closed its reused connection: %s", r)
		}
	}
	if conns.get() < 5 {
		t.Errorf("5 probes on %d connections", conns.get())
	}

	port, conns = serveConns(t, serve(0))
	results, ch := engineOn(t, quick(TypeHTTP, port, nil))
	if c := next(t, ch); c.To != Down || c.Reason != ReasonReset {
		t.Errorf("a server that never answers: %+v, want down, reset", c)
	}
	if n, r := conns.get(), len(results()); n > r {
		t.Errorf("%d connections for %d probes: a fresh connection was retried", n, r)
	}
}

// A backend killed while its connection is kept is refused at the next probe, as without reuse;
// one that hangs on the kept connection times out, and the connection is not used again.
func TestKeptConnectionFailures(t *testing.T) {
	b := newKeepAliveBackend(t, false, nil, nil)
	_, ch := engineOn(t, quick(TypeHTTP, b.port, func(c *Config) { c.Fall = 1 }))
	if c := next(t, ch); c.To != Up {
		t.Fatalf("first change %+v, want up", c)
	}
	eventually(t, 5*time.Second, "a kept connection", func() bool { return b.reqs.get() >= 2 })
	b.srv.Close()
	if c := next(t, ch); c.To != Down || c.Reason != ReasonRefused {
		t.Errorf("killed backend: %+v, want down, refused", c)
	}

	var hangNow atomic.Bool
	hang := make(chan struct{})
	b = newKeepAliveBackend(t, false, nil, func(w http.ResponseWriter, r *http.Request) {
		if hangNow.Load() {
			<-hang
		}
	})
	t.Cleanup(func() { close(hang) }) // before the server's Close, which waits for its handlers
	_, ch = engineOn(t, quick(TypeHTTP, b.port, func(c *Config) { c.Fall = 1 }))
	if c := next(t, ch); c.To != Up {
		t.Fatalf("first change %+v, want up", c)
	}
	eventually(t, 5*time.Second, "a kept connection", func() bool { return b.reqs.get() >= 2 })
	before := b.conns.get() // the probe after the timeout may dial before the change is read
	hangNow.Store(true)
	if c := next(t, ch); c.To != Down || c.Reason != ReasonTimeout {
		t.Errorf("hanging backend: %+v, want down, timeout", c)
	}
	hangNow.Store(false)
	if c := next(t, ch); c.To != Up {
		t.Errorf("backend answering again: %+v, want up", c)
	}
	if b.conns.get() == before {
		t.Errorf("the connection that timed out was used again")
	}
}

// A connection is not reused past MaxConnAge, nor kept beyond the budget.
func TestKeeper(t *testing.T) {
	now := time.Now()
	pipe := func() (*probeConn, net.Conn) {
		a, b := net.Pipe()
		t.Cleanup(func() { a.Close(); b.Close() })
		return &probeConn{raw: a, conn: a, born: now}, a
	}
	closed := func(c net.Conn) bool { return errors.Is(c.SetDeadline(time.Time{}), io.ErrClosedPipe) }
	var k keeper
	pc, raw := pipe()
	k.put(pc, 1<<20)
	if got := k.take(now.Add(MaxConnAge-time.Second), nil); got != pc {
		t.Errorf("a young connection was not reused")
	}
	k.put(pc, 1<<20)
	if got := k.take(now.Add(MaxConnAge), nil); got != nil || !closed(raw) {
		t.Errorf("a connection of MaxConnAge was reused, or not closed")
	}
	before := keptConns.Load()
	pc, raw = pipe()
	k.put(pc, 0)
	if k.idle != nil || !closed(raw) || keptConns.Load() != before {
		t.Errorf("a connection was kept beyond the budget")
	}
	if keepFDs() < 1 {
		t.Errorf("keepFDs() = %d", keepFDs())
	}
}
