package cluster

import (
	"errors"
	"net"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// transport is memberlist's network transport, counting the bytes this node sends; tests make
// it lose what goes to chosen addresses, as a cut link would.
type transport struct {
	memberlist.Transport
	drop    func(addr string) bool // fixed at Start; tests
	dropOn  atomic.Bool            // drop is applied
	out     atomic.Uint64
	streams chan net.Conn
}

var errDropped = errors.New("cluster: link cut by the test")

func (t *transport) lost(addr string) bool { return t.dropOn.Load() && t.drop != nil && t.drop(addr) }

func (t *transport) WriteTo(b []byte, addr string) (time.Time, error) {
	if t.lost(addr) {
		return time.Now(), nil
	}
	t.out.Add(uint64(len(b)))
	return t.Transport.WriteTo(b, addr)
}

func (t *transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if t.lost(addr) {
		return nil, errDropped
	}
	c, err := t.Transport.DialTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return &countedConn{Conn: c, out: &t.out}, nil
}

// StreamCh hands out the accepted connections, counting what this node writes on them.
func (t *transport) StreamCh() <-chan net.Conn { return t.streams }

// newTransport wraps inner.
func newTransport(inner memberlist.Transport, drop func(string) bool) *transport {
	t := &transport{Transport: inner, drop: drop, streams: make(chan net.Conn)}
	go func() {
		for c := range inner.StreamCh() {
			t.streams <- &countedConn{Conn: c, out: &t.out}
		}
	}()
	return t
}

type countedConn struct {
	net.Conn
	out *atomic.Uint64
}

func (c *countedConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.out.Add(uint64(n))
	return n, err
}
