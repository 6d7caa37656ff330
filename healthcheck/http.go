package healthcheck

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
)

// maxBody is how much of an HTTP body ExpectBody searches.
const maxBody = 64 << 10

// maxHeader bounds the bytes read before the body: status line, headers and interim responses.
const maxHeader = 64 << 10

// userAgent is sent unless the check's Headers set one.
const userAgent = "steerdns-healthcheck"

// errTooLarge is returned when a response's headers exceed maxHeader.
var errTooLarge = errors.New("response headers larger than 64 KiB")

// probeHTTP sends one request on a fresh connection and judges the response.
//
// Every probe opens its own connection, writes the request with net/http's Request.Write and
// reads the answer with http.ReadResponse; no http.Transport is involved, and the connection is
// closed when the probe ends. So:
//   - a probe tests what a client of the backend needs: that it accepts a new connection (a
//     reused keep-alive connection can stay up while the listener is gone);
//   - there are no idle connections at all, however many targets (keep-alive would need one idle
//     connection per target, 30,000 of them, to pay off), and no stale pooled connection that
//     the server closed can fail a probe;
//   - the probe owns the connection, so the context's deadline bounds every step, and nothing
//     outlives it: http.Transport keeps dialling after the request's context ends (Go 1.22+),
//     which would let a silent TLS server hold handshakes past the timeout and past MaxInFlight;
//   - the step that failed (dial, TLS, read) gives the reason without guessing from a message.
//
// Redirects are not followed: a 3xx is judged by ExpectStatus like any other status.
func probeHTTP(ctx context.Context, c Config, addr string) error {
	req, err := newRequest(c, addr)
	if err != nil {
		return err
	}
	conn, closeConn, err := dial(ctx, addr, c.Port)
	if err != nil {
		return err
	}
	defer closeConn()
	if c.Type == TypeHTTPS {
		name := c.Host
		if name == "" {
			name = addr
		}
		tc := tls.Client(conn, &tls.Config{ServerName: name, InsecureSkipVerify: c.InsecureTLS})
		if err := tc.Handshake(); err != nil { // bounded by the conn's deadline, as the rest
			return &verdict{ReasonTLS, err}
		}
		conn = tc
	}
	buf := buffers.Get().(*buffer)
	defer buf.free()
	buf.w.Reset()
	if err := req.Write(&buf.w); err != nil { // into memory, so that it takes one write
		return err
	}
	if _, err := conn.Write(buf.w.Bytes()); err != nil {
		return err
	}

	cr := &capReader{conn, maxHeader}
	br := buf.r
	br.Reset(cr)
	defer br.Reset(nil)
	resp, err := http.ReadResponse(br, req)
	// Skip interim responses (100 Continue, 103 Early Hints), as http.Transport does.
	for i := 0; err == nil && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols; i++ {
		if i == 5 {
			return fmt.Errorf("more than 5 interim (1xx) responses")
		}
		resp, err = http.ReadResponse(br, req)
	}
	if err != nil {
		return err
	}
	// resp.Body is not closed: closing would drain it. The deferred close of the connection ends it.

	if !statusOK(c.ExpectStatus, resp.StatusCode) {
		return &verdict{ReasonStatus, fmt.Errorf("status %d, want %s", resp.StatusCode, statusText(c.ExpectStatus))}
	}
	if c.ExpectBody == "" {
		return nil
	}
	cr.n = math.MaxInt // bodyContains reads at most maxBody of the body
	found, err := buf.bodyContains(resp.Body, c.ExpectBody)
	if err != nil {
		return err
	}
	if !found {
		return &verdict{ReasonBody, fmt.Errorf("body does not contain %q in its first 64 KiB", c.ExpectBody)}
	}
	return nil
}

// buffer holds the memory of one HTTP probe, kept for the next in buffers: thousands of probes a
// second would otherwise make 12 KiB of garbage each.
type buffer struct {
	w    bytes.Buffer  // the request
	r    *bufio.Reader // the response
	body []byte        // the start of the body, for ExpectBody
}

var buffers = sync.Pool{New: func() any { return &buffer{r: bufio.NewReader(nil), body: make([]byte, 0, 4<<10)} }}

// free puts b back in buffers, unless a large body grew it.
func (b *buffer) free() {
	if cap(b.body) > 16<<10 {
		b.body = make([]byte, 0, 4<<10)
	}
	buffers.Put(b)
}

// newRequest builds the request of check c for the target at addr.
func newRequest(c Config, addr string) (*http.Request, error) {
	u, err := url.ParseRequestURI(c.Path)
	if err != nil {
		return nil, fmt.Errorf("path %q: %w", c.Path, err)
	}
	req := &http.Request{
		Method:     c.Method,
		URL:        u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     make(http.Header, len(c.Headers)+1),
		Host:       c.Host,
		Close:      true, // Connection: close, the connection serves one request
	}
	if req.Host == "" {
		req.Host = hostHeader(c, addr)
	}
	req.Header.Set("User-Agent", userAgent)
	for k, v := range c.Headers {
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	return req, nil
}

// hostHeader is the default Host header: the address, with the port unless it is the scheme's
// default, as curl sends it.
func hostHeader(c Config, addr string) string {
	if (c.Type == TypeHTTP && c.Port == 80) || (c.Type == TypeHTTPS && c.Port == 443) {
		if strings.Contains(addr, ":") {
			return "[" + addr + "]"
		}
		return addr
	}
	return net.JoinHostPort(addr, strconv.Itoa(c.Port))
}

func statusOK(want []StatusRange, code int) bool {
	for _, r := range want {
		if r.Contains(code) {
			return true
		}
	}
	return false
}

func statusText(want []StatusRange) string {
	s := make([]string, len(want))
	for i, r := range want {
		s[i] = r.String()
	}
	return strings.Join(s, ",")
}

// bodyContains reads at most maxBody bytes of r into b.body and reports whether want occurs in
// them. It stops reading as soon as want is found.
func (b *buffer) bodyContains(r io.Reader, want string) (bool, error) {
	w := []byte(want)
	buf := b.body[:0]
	defer func() { b.body = buf[:0] }()
	for len(buf) < maxBody {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):min(cap(buf), maxBody)])
		from := max(0, len(buf)-len(w)+1)
		buf = buf[:len(buf)+n]
		if bytes.Contains(buf[from:], w) {
			return true, nil
		}
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, err
		}
	}
	return false, nil
}

// capReader fails once n bytes have been read from r; it keeps a server that sends headers
// without end from growing the probe's memory until the timeout.
type capReader struct {
	r io.Reader
	n int
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		return 0, errTooLarge
	}
	if len(p) > c.n {
		p = p[:c.n]
	}
	n, err := c.r.Read(p)
	c.n -= n
	return n, err
}
