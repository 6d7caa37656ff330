package healthcheck_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"

	"github.com/steerdns/steerdns/healthcheck"
)

// A backend to check.
func backend() (*httptest.Server, string, int) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	host, port, _ := net.SplitHostPort(s.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	return s, host, p
}

func ExampleEngine() {
	s, host, port := backend()
	defer s.Close()

	e := healthcheck.NewEngine(healthcheck.Options{})
	defer e.Close()
	changes := make(chan healthcheck.Change, 1)
	sub := e.Subscribe(func(c healthcheck.Change) { changes <- c })
	defer sub.Close()

	web := healthcheck.Config{Type: healthcheck.TypeHTTP, Port: port, Path: "/healthz", ExpectBody: "ok"}.Normalize()
	st := sub.Sync([]healthcheck.Target{healthcheck.NewTarget("web", web, host)})
	c := <-changes
	fmt.Println(c.Target.Name, c.From, "->", c.To, st[0].State(), sub.Ready())
	// Output: web unknown -> up up true
}

func ExampleProbe() {
	s, host, port := backend()
	defer s.Close()

	web := healthcheck.Config{Type: healthcheck.TypeHTTP, Port: port, ExpectStatus: []healthcheck.StatusRange{{Lo: 500, Hi: 599}}}
	r := healthcheck.Probe(context.Background(), healthcheck.NewTarget("web", web.Normalize(), host))
	fmt.Println(r.OK, r.Reason, r.Err)
	// Output: false status status 200, want 500-599
}
