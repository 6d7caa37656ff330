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
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// maxBody is how much of an HTTP body ExpectBody searches.
const maxBody = 64 << 10

// maxHeader bounds the bytes read before the body: status line, headers and interim responses.
const maxHeader = 64 << 10

// userAgent is sent unless the check's Headers set one.
const userAgent = "steerdns-healthcheck"

// errTooLarge is returned when a response's headers exceed maxHeader.
var errTooLarge = errors.New("response headers larger than 64 KiB")

// probeHTTP sends one request and judges the response. With a keeper, the request goes on the
// connection that the target's last probe left open, if any (see MaxConnAge), and the connection
// stays open for the next probe if this one passed; without one, on a new connection closed at
// the end.
//
// The probe writes its request and reads the answer itself (http1.go); no http.Transport is
// involved. So:
//   - the probe owns its connection, so the probe's deadline bounds every step, and nothing
//     outlives it: http.Transport keeps dialling after the request's context ends (Go 1.22+),
//     which would let a silent TLS server hold handshakes past the timeout and past MaxInFlight;
//   - an idle connection is never shared: a target has at most one, and one probe in flight;
//   - the step that failed (dial, TLS, read) gives the reason without guessing from a message.
//
// Redirects are not followed: a 3xx is judged by ExpectStatus like any other status.
func probeHTTP(lim *limit, c *Config, addr string, k *keeper, src *source) error {
	w := wires.Get().(*[]byte)
	wire, err := appendRequest((*w)[:0], c, addr, k == nil)
	defer func() {
		if cap(wire) <= 4<<10 {
			*w = wire[:0]
			wires.Put(w)
		}
	}()
	if err != nil {
		return err
	}
	if pc := k.take(time.Now(), src); pc != nil {
		f, stale, asked, err := roundTrip(lim, c, pc, true, wire)
		if !stale {
			k.done(pc, f, asked)
			return err
		}
		// The server closed the idle connection (an idle timeout, a restart) before this
		// request reached it: try a new connection, as net/http's Transport does.
		pc.close()
	}
	ctx, cancel := lim.context()
	pc, err := connect(ctx, c, addr, src)
	cancel()
	if err != nil {
		return err
	}
	f, _, asked, err := roundTrip(lim, c, pc, false, wire)
	k.done(pc, f, asked)
	return err
}

// connect opens a probe connection to the target from src: TCP, and TLS for https.
func connect(ctx context.Context, c *Config, addr string, src *source) (*probeConn, error) {
	raw, err := dial(ctx, src, addr, c.Port)
	if err != nil {
		return nil, err
	}
	pc := &probeConn{raw: raw, conn: raw, born: time.Now(), src: src}
	if c.Type != TypeHTTPS {
		return pc, nil
	}
	name := c.Host
	if name == "" {
		name = addr
	}
	tc := tls.Client(raw, &tls.Config{ServerName: name, InsecureSkipVerify: c.InsecureTLS})
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, &verdict{ReasonTLS, err}
	}
	pc.conn = tc
	return pc, nil
}

// roundTrip sends the request wire on pc at asked and judges the response. f
// says what becomes of pc: reuse, it can carry the next request (the probe passed and the
// response was read to its end); hold, the request went out whole and no byte of an answer came
// before lim's deadline (see hungLooks); discard otherwise. stale says that pc was reused (an
// earlier probe's connection) and the server had closed it before any byte of a response came:
// the probe proves nothing yet and can be retried on a new connection.
func roundTrip(lim *limit, c *Config, pc *probeConn, reused bool, wire []byte) (f fate, stale bool, asked time.Time, err error) {
	lim.watch(pc)
	defer func() {
		if !lim.unwatch() && f == reuse {
			f = discard // the context ended: the connection's deadline is cut
		}
	}()
	asked = time.Now()
	if _, err := pc.conn.Write(wire); err != nil {
		return discard, reused && lim.err() == nil && isClosed(err), asked, err
	}
	if err := pc.await(); err != nil {
		return hung(lim.err(), 0, err), false, asked, err
	}
	buf := buffers.Get().(*buffer) // after the wait: a probe of a target that hangs holds none
	defer buf.free()

	cr := &buf.cap
	*cr = capReader{r: pc.conn, n: maxHeader}
	br := buf.r
	br.Reset(cr)
	defer func() { br.Reset(nil); *cr = capReader{} }()
	h, err := readHead(br, c.Method == http.MethodHead)
	if err != nil && reused && cr.read == 0 && lim.err() == nil && isClosed(err) {
		return discard, true, asked, err
	}
	if err != nil {
		return hung(lim.err(), cr.read, err), false, asked, err
	}
	// Skip interim responses (100 Continue, 103 Early Hints), as http.Transport does.
	for i := 0; err == nil && h.code < 200 && h.code != http.StatusSwitchingProtocols; i++ {
		if i == 5 {
			return discard, false, asked, fmt.Errorf("more than 5 interim (1xx) responses")
		}
		h, err = readHead(br, c.Method == http.MethodHead)
	}
	if err != nil {
		return discard, false, asked, err
	}

	if !statusOK(c.ExpectStatus, h.code) {
		return discard, false, asked, &verdict{ReasonStatus, fmt.Errorf("status %d, want %s", h.code, statusText(c.ExpectStatus))}
	}
	cr.n = math.MaxInt // the body is bounded below, by maxBody
	b := &buf.resp
	b.reset(br, h)
	defer func() { *b = body{} }()
	if c.ExpectBody != "" {
		found, err := buf.bodyContains(b, c.ExpectBody)
		if err != nil {
			return discard, false, asked, err
		}
		if !found {
			return discard, false, asked, &verdict{ReasonBody, fmt.Errorf("body does not contain %q in its first 64 KiB", c.ExpectBody)}
		}
	}
	if h.close {
		return discard, false, asked, nil // the body is not read to its end: the connection is closed
	}
	// Read the rest of the body, within maxBody, so that the connection is ready for the next
	// request; a longer body, or bytes after it, and the connection is closed instead.
	if buf.skip(b, maxBody) && br.Buffered() == 0 {
		return reuse, false, asked, nil
	}
	return discard, false, asked, nil
}

// hung returns hold when the probe timed out waiting for its answer, err being the read's error,
// and no byte of the answer was read; discard otherwise, and when the probe's context was
// canceled (the engine closes), ended being its error. The connection's deadline is the
// probe's, so the read may report it a little before the context does.
func hung(ended error, read int, err error) fate {
	if read > 0 || errors.Is(ended, context.Canceled) {
		return discard
	}
	if errors.Is(ended, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return hold
	}
	return discard
}

// isClosed reports whether err says that the peer closed the connection: an end of file or a
// reset.
func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNABORTED)
}

// buffer holds the memory of one HTTP probe, kept for the next in buffers: thousands of probes a
// second would otherwise make 12 KiB of garbage each.
type buffer struct {
	r    *bufio.Reader // the response
	body []byte        // the start of the body, for ExpectBody
	out  bytes.Buffer  // the frames a gRPC probe writes
	cap  capReader     // the connection, under r
	resp body          // the body's framing, over r
}

// wires holds the memory an HTTP probe writes its request in, while it waits for the answer
// too: a few hundred bytes.
var wires = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

var buffers = sync.Pool{New: func() any { return &buffer{r: bufio.NewReader(nil), body: make([]byte, 0, 4<<10)} }}

// free puts b back in buffers, unless a large body grew it.
func (b *buffer) free() {
	if cap(b.body) > 16<<10 {
		b.body = make([]byte, 0, 4<<10)
	}
	if b.out.Cap() > 16<<10 {
		b.out = bytes.Buffer{}
	}
	buffers.Put(b)
}

// newRequest builds the request of check c for the target at addr; with closeConn it asks the
// server to close the connection after the response.
func newRequest(c Config, addr string, closeConn bool) (*http.Request, error) {
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
		Close:      closeConn, // Connection: close
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

// skip reads r to its end, at most n bytes, and reports whether it found the end; b.body's
// memory is the scratch space.
func (b *buffer) skip(r io.Reader, n int) bool {
	if cap(b.body) == 0 {
		b.body = make([]byte, 0, 4<<10)
	}
	scratch := b.body[:cap(b.body)]
	for n > 0 {
		m, err := r.Read(scratch[:min(len(scratch), n)])
		n -= m
		if err == io.EOF {
			return true
		}
		if err != nil {
			return false
		}
	}
	_, err := r.Read(scratch[:1]) // the end may come with no byte
	return err == io.EOF
}

// capReader fails once n bytes have been read from r; it keeps a server that sends headers
// without end from growing the probe's memory until the timeout.
type capReader struct {
	r    io.Reader
	n    int
	read int // bytes read in all
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
	c.read += n
	return n, err
}
