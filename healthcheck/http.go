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
// The probe writes the request with net/http's Request.Write and reads the answer with
// http.ReadResponse; no http.Transport is involved. So:
//   - the probe owns its connection, so the context's deadline bounds every step, and nothing
//     outlives it: http.Transport keeps dialling after the request's context ends (Go 1.22+),
//     which would let a silent TLS server hold handshakes past the timeout and past MaxInFlight;
//   - an idle connection is never shared: a target has at most one, and one probe in flight;
//   - the step that failed (dial, TLS, read) gives the reason without guessing from a message.
//
// Redirects are not followed: a 3xx is judged by ExpectStatus like any other status.
func probeHTTP(ctx context.Context, c Config, addr string, k *keeper, src *source) error {
	req, wire, err := k.request(c, addr)
	if err != nil {
		return err
	}
	if pc := k.take(time.Now(), src); pc != nil {
		f, stale, asked, err := roundTrip(ctx, c, pc, true, req, wire)
		if !stale {
			k.done(pc, f, asked)
			return err
		}
		// The server closed the idle connection (an idle timeout, a restart) before this
		// request reached it: try a new connection, as net/http's Transport does.
		pc.close()
	}
	pc, err := connect(ctx, c, addr, src)
	if err != nil {
		return err
	}
	f, _, asked, err := roundTrip(ctx, c, pc, false, req, wire)
	k.done(pc, f, asked)
	return err
}

// connect opens a probe connection to the target from src: TCP, and TLS for https.
func connect(ctx context.Context, c Config, addr string, src *source) (*probeConn, error) {
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

// roundTrip sends req, encoded in wire, on pc at asked and judges the response. f says what
// becomes of pc: reuse, it can carry the next request (the probe passed and the response was read
// to its end); hold, the request went out whole and no byte of an answer came before ctx's
// deadline (see hungLooks); discard otherwise. stale says that pc was reused (an earlier probe's
// connection) and the server had closed it before any byte of a response came: the probe proves
// nothing yet and can be retried on a new connection.
func roundTrip(ctx context.Context, c Config, pc *probeConn, reused bool, req *http.Request, wire []byte) (f fate, stale bool, asked time.Time, err error) {
	disarm := arm(ctx, pc.conn)
	defer func() {
		if !disarm() && f == reuse {
			f = discard // ctx ended: the deadline hook may still be running
		}
	}()
	asked = time.Now()
	if _, err := pc.conn.Write(wire); err != nil {
		return discard, reused && ctx.Err() == nil && isClosed(err), asked, err
	}
	if err := pc.await(); err != nil {
		return hung(ctx, 0, err), false, asked, err
	}
	buf := buffers.Get().(*buffer)
	defer buf.free()

	cr := &capReader{r: pc.conn, n: maxHeader}
	br := buf.r
	br.Reset(cr)
	defer br.Reset(nil)
	resp, err := http.ReadResponse(br, req)
	if err != nil && reused && cr.read == 0 && ctx.Err() == nil && isClosed(err) {
		return discard, true, asked, err
	}
	if err != nil {
		return hung(ctx, cr.read, err), false, asked, err
	}
	// Skip interim responses (100 Continue, 103 Early Hints), as http.Transport does.
	for i := 0; err == nil && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols; i++ {
		if i == 5 {
			return discard, false, asked, fmt.Errorf("more than 5 interim (1xx) responses")
		}
		resp, err = http.ReadResponse(br, req)
	}
	if err != nil {
		return discard, false, asked, err
	}

	if !statusOK(c.ExpectStatus, resp.StatusCode) {
		return discard, false, asked, &verdict{ReasonStatus, fmt.Errorf("status %d, want %s", resp.StatusCode, statusText(c.ExpectStatus))}
	}
	cr.n = math.MaxInt // the body is bounded below, by maxBody
	if c.ExpectBody != "" {
		found, err := buf.bodyContains(resp.Body, c.ExpectBody)
		if err != nil {
			return discard, false, asked, err
		}
		if !found {
			return discard, false, asked, &verdict{ReasonBody, fmt.Errorf("body does not contain %q in its first 64 KiB", c.ExpectBody)}
		}
	}
	if req.Close || resp.Close {
		return discard, false, asked, nil // resp.Body is not read to its end: the connection is closed
	}
	// Read the rest of the body, within maxBody, so that the connection is ready for the next
	// request; a longer body, or bytes after it, and the connection is closed instead.
	_, err = io.CopyN(io.Discard, resp.Body, maxBody)
	if err == io.EOF && br.Buffered() == 0 {
		return reuse, false, asked, nil
	}
	return discard, false, asked, nil
}

// hung returns hold when the probe timed out waiting for its answer, err being the read's error,
// and no byte of the answer was read; discard otherwise, and when ctx was canceled (the engine
// closes, the target was dropped). The connection's deadline is ctx's, so the read may report
// it a little before ctx does.
func hung(ctx context.Context, read int, err error) fate {
	if read > 0 || errors.Is(ctx.Err(), context.Canceled) {
		return discard
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
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
}

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

// request returns the request of check c for the target at addr, and its encoding. With a
// keeper, both are made once and kept there: they are the same for every probe of the target.
func (k *keeper) request(c Config, addr string) (*http.Request, []byte, error) {
	if k != nil && k.req != nil {
		return k.req, k.wire, nil
	}
	req, err := newRequest(c, addr, k == nil)
	if err != nil {
		return nil, nil, err
	}
	var w bytes.Buffer
	if err := req.Write(&w); err != nil { // into memory, so that it takes one write
		return nil, nil, err
	}
	if k != nil {
		// Reading the response needs only the method and Close: keep no more (at 30,000
		// targets the whole request, URL and header map would be 30 MB).
		req = &http.Request{Method: req.Method, Close: req.Close}
		k.req, k.wire = req, w.Bytes()
	}
	return req, w.Bytes(), nil
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
