package healthcheck

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/encoding/protowire"
)

// probeGRPC calls grpc.health.v1.Health/Check for Config.Service and passes on SERVING. The
// connection is plaintext unless Config.TLS. With a keeper, the call goes on the HTTP/2
// connection that the target's last probe left open, if any (see MaxConnAge), and the connection
// stays open for the next probe if this one passed; without one, on a new connection closed at the
// end.
//
// The probe speaks the few frames of one unary call itself (golang.org/x/net/http2's Framer),
// as the HTTP probe writes its request without an http.Transport, and for the same reasons: the
// context's deadline bounds every step and nothing outlives it, the step that failed gives the
// reason, and a kept connection costs no goroutine. A grpc.ClientConn kept per target would hold
// goroutines, buffers and a reconnecting state machine for each (at 30,000 targets, goroutines by
// the hundred thousand), and one made per probe, as before, cost a TCP and HTTP/2 handshake, and
// its goroutines, every time.
//
// Reuse follows the HTTP probe's rules: a reused connection that the server had closed (an end
// of file, a reset, or a GOAWAY that does not cover the call) before any frame of the answer is
// retried once on a new connection; any failure closes the connection; a connection is kept only
// after a call that passed, when nothing of the server's is left unread and it is not going away.
func probeGRPC(ctx context.Context, c Config, addr string, k *keeper, src *source) error {
	if pc := k.take(time.Now(), src); pc != nil && pc.h2 != nil {
		f, stale, asked, err := grpcCall(ctx, c, addr, k, pc, true)
		if !stale {
			k.done(pc, f, asked)
			return err
		}
		pc.close()
	} else if pc != nil {
		pc.close() // not reached: a target has one type
	}
	pc, err := connectGRPC(ctx, c, addr, src)
	if err != nil {
		return err
	}
	f, _, asked, err := grpcCall(ctx, c, addr, k, pc, false)
	k.done(pc, f, asked)
	return err
}

// h2Conn is the HTTP/2 side of a probe connection.
type h2Conn struct {
	fr       *http2.Framer
	io       h2IO   // what fr reads from and writes to, during a call
	next     uint32 // the stream of the next call
	consumed uint32 // DATA bytes received and not yet given back in a WINDOW_UPDATE
}

// h2IO lets a connection's Framer read through the call's buffer (buffers), and write into it,
// so that a kept connection holds no buffer between calls.
type h2IO struct {
	r io.Reader
	w *bytes.Buffer
}

func (h *h2IO) Read(p []byte) (int, error) {
	if h.r == nil {
		return 0, io.ErrClosedPipe // not reached: fr reads only during a call
	}
	return h.r.Read(p)
}

func (h *h2IO) Write(p []byte) (int, error) { return h.w.Write(p) }

// connectGRPC opens a probe connection for gRPC from src: TCP, and TLS with ALPN h2 when c.TLS.
func connectGRPC(ctx context.Context, c Config, addr string, src *source) (*probeConn, error) {
	raw, err := dial(ctx, src, addr, c.Port)
	if err != nil {
		return nil, err
	}
	pc := &probeConn{raw: raw, conn: raw, born: time.Now(), src: src, h2: &h2Conn{next: 1}}
	if c.TLS {
		name := c.Host
		if name == "" {
			name = addr
		}
		tc := tls.Client(raw, &tls.Config{ServerName: name, InsecureSkipVerify: c.InsecureTLS, NextProtos: []string{"h2"}})
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, &verdict{ReasonTLS, err}
		}
		if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
			raw.Close()
			return nil, &verdict{ReasonTLS, fmt.Errorf("the server did not negotiate h2 (ALPN), but %q", p)}
		}
		pc.conn = tc
	}
	h := pc.h2
	h.fr = http2.NewFramer(&h.io, &h.io)
	h.fr.SetMaxReadFrameSize(16 << 10) // the default of SETTINGS_MAX_FRAME_SIZE, which we keep
	h.fr.MaxHeaderListSize = maxHeader
	h.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	h.fr.ReadMetaHeaders.SetMaxStringLength(maxHeader)
	return pc, nil
}

// grpcCall makes one Health/Check call on pc and judges the answer. f, stale and asked are as
// for roundTrip: the connection can carry the next call (reuse), or be held with the call
// unanswered (hold: no frame of the call's answer came before the deadline; the server's own
// frames, SETTINGS and the like, may have); or it was reused and the server had closed it before
// any frame of the answer, so the call can be retried on a new connection (stale).
func grpcCall(ctx context.Context, c Config, addr string, k *keeper, pc *probeConn, reused bool) (f fate, stale bool, asked time.Time, err error) {
	d, _ := ctx.Deadline()
	disarm := arm(ctx, d, pc.conn)
	defer func() {
		if !disarm() && f == reuse {
			f = discard // ctx ended: the deadline hook may still be running
		}
	}()
	h := pc.h2
	buf := buffers.Get().(*buffer)
	out := &buf.out
	out.Reset()
	h.io.w = out
	defer func() { h.io.r, h.io.w = nil, nil }()

	if h.next == 1 {
		out.WriteString(http2.ClientPreface)
		h.fr.WriteSettings(http2.Setting{ID: http2.SettingEnablePush, Val: 0})
	}
	sid := h.next
	h.next += 2
	block, msg := k.grpcCall(c, addr)
	h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: sid, BlockFragment: block, EndHeaders: true})
	h.fr.WriteData(sid, true, msg)
	asked = time.Now()
	_, err = pc.conn.Write(out.Bytes())
	buf.free() // until the answer comes: see await
	if err != nil {
		return discard, reused && ctx.Err() == nil && isClosed(err), asked, err
	}
	if err := pc.await(); err != nil {
		return hung(ctx.Err(), 0, err), false, asked, err
	}
	buf = buffers.Get().(*buffer)
	defer buf.free()
	out = &buf.out
	h.io.w = out
	br := buf.r
	br.Reset(&capReader{r: pc.conn, n: maxHeader + maxBody + 1<<10})
	defer br.Reset(nil)
	h.io.r = br

	var (
		answered   bool   // a frame of the answer came
		status     string // :status
		grpcStatus string // grpc-status
		grpcMsg    string
		body       []byte
		goingAway  bool
	)
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			if reused && !answered && ctx.Err() == nil && isClosed(err) {
				return discard, true, asked, err
			}
			if !answered {
				return hung(ctx.Err(), 0, err), false, asked, h2Error(err)
			}
			return discard, false, asked, h2Error(err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				err = h2Reply(pc, out, h.fr.WriteSettingsAck)
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				err = h2Reply(pc, out, func() error { return h.fr.WritePing(true, f.Data) })
			}
		case *http2.GoAwayFrame:
			goingAway = true
			if f.LastStreamID < sid {
				if reused && !answered && f.ErrCode == http2.ErrCodeNo {
					return discard, true, asked, errGoAway // a graceful close before the call: retry
				}
				return discard, false, asked, fmt.Errorf("%w (%v): %w", errGoAway, f.ErrCode, syscall.ECONNRESET)
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == sid {
				if reused && !answered && f.ErrCode == http2.ErrCodeRefusedStream {
					return discard, true, asked, errRefusedStream
				}
				return discard, false, asked, &verdict{ReasonGRPC, fmt.Errorf("the server reset the call: %v", f.ErrCode)}
			}
		case *http2.MetaHeadersFrame:
			if f.StreamID != sid {
				break // decoded all the same, to keep the table of header fields
			}
			answered = true
			if status == "" {
				if status = f.PseudoValue("status"); status != "200" {
					return discard, false, asked, &verdict{ReasonGRPC, fmt.Errorf("HTTP status %s, want 200", status)}
				}
			}
			for _, hf := range f.RegularFields() {
				switch hf.Name {
				case "grpc-status":
					grpcStatus = hf.Value
				case "grpc-message":
					grpcMsg = hf.Value
				}
			}
			if f.StreamEnded() {
				keep, err := grpcVerdict(c, grpcStatus, grpcMsg, body)
				if keep && !goingAway && h.next < 1<<30 && h2Drain(pc, out, br) == nil {
					return reuse, false, asked, err
				}
				return discard, false, asked, err
			}
		case *http2.DataFrame:
			if f.StreamID != sid {
				break
			}
			answered = true
			if len(body)+len(f.Data()) > maxBody {
				return discard, false, asked, &verdict{ReasonGRPC, errors.New("answer larger than 64 KiB")}
			}
			body = append(body, f.Data()...)
			// Give the connection's flow-control window back, so that it never runs out.
			if h.consumed += f.Length; h.consumed >= 16<<10 {
				n := h.consumed
				h.consumed = 0
				err = h2Reply(pc, out, func() error { return h.fr.WriteWindowUpdate(0, n) })
			}
			if f.StreamEnded() {
				return discard, false, asked, &verdict{ReasonGRPC, errors.New("the call ended without a grpc-status")}
			}
		case *http2.PushPromiseFrame:
			return discard, false, asked, &verdict{ReasonGRPC, errors.New("the server pushed, which the probe disabled")}
		}
		if err != nil {
			return discard, false, asked, err
		}
	}
}

var (
	errGoAway        = errors.New("the server is closing the connection (GOAWAY)")
	errRefusedStream = errors.New("the server refused the call (REFUSED_STREAM)")
)

// h2Reply writes what write puts in out (a SETTINGS or PING acknowledgement, a WINDOW_UPDATE) at
// once.
func h2Reply(pc *probeConn, out *bytes.Buffer, write func() error) error {
	out.Reset()
	write()
	_, err := pc.conn.Write(out.Bytes())
	return err
}

// h2Drain handles the whole frames that the server sent after the answer and that br holds
// already (say, a PING); it returns an error when br holds part of one, or a frame that closes
// the connection, which is then not kept.
func h2Drain(pc *probeConn, out *bytes.Buffer, br *bufio.Reader) error {
	h := pc.h2
	for br.Buffered() > 0 {
		hdr, err := br.Peek(9)
		if err != nil {
			return err
		}
		if n := int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2]); br.Buffered() < 9+n {
			return io.ErrUnexpectedEOF
		}
		f, err := h.fr.ReadFrame()
		if err != nil {
			return err
		}
		switch f := f.(type) {
		case *http2.PingFrame:
			if !f.IsAck() {
				err = h2Reply(pc, out, func() error { return h.fr.WritePing(true, f.Data) })
			}
		case *http2.SettingsFrame:
			if !f.IsAck() {
				err = h2Reply(pc, out, h.fr.WriteSettingsAck)
			}
		case *http2.GoAwayFrame, *http2.RSTStreamFrame, *http2.PushPromiseFrame:
			err = errGoAway
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// h2Error gives an HTTP/2 protocol error a reason; others (the network's) keep theirs.
func h2Error(err error) error {
	var ce http2.ConnectionError
	var se http2.StreamError
	if errors.As(err, &ce) || errors.As(err, &se) || errors.Is(err, http2.ErrFrameTooLarge) {
		return &verdict{ReasonGRPC, fmt.Errorf("http2: %w", err)}
	}
	return err
}

// grpcVerdict judges the end of a call: its grpc-status and message, and its answer body.
// It returns whether the call passed.
func grpcVerdict(c Config, grpcStatus, grpcMsg string, body []byte) (bool, error) {
	if grpcStatus != "0" {
		if grpcStatus == "" {
			return false, &verdict{ReasonGRPC, errors.New("the call ended without a grpc-status")}
		}
		if m, err := url.PathUnescape(grpcMsg); err == nil {
			grpcMsg = m
		}
		code := grpcStatus
		if n, err := strconv.Atoi(grpcStatus); err == nil && n >= 0 && n < len(grpcCodes) {
			code = grpcCodes[n]
		}
		return false, &verdict{ReasonGRPC, fmt.Errorf("rpc error: code = %s desc = %s", code, grpcMsg)}
	}
	// One length-prefixed message, not compressed: HealthCheckResponse{status = 1}.
	if len(body) < 5 || body[0] != 0 || int(binary.BigEndian.Uint32(body[1:5])) != len(body)-5 {
		return false, &verdict{ReasonGRPC, errors.New("the answer is not one uncompressed message")}
	}
	st := protowire.Number(0)
	for m := body[5:]; len(m) > 0; {
		num, typ, n := protowire.ConsumeTag(m)
		if n < 0 {
			return false, &verdict{ReasonGRPC, fmt.Errorf("the answer is not a HealthCheckResponse: %w", protowire.ParseError(n))}
		}
		m = m[n:]
		if num == 1 && typ == protowire.VarintType {
			v, n := protowire.ConsumeVarint(m)
			if n < 0 {
				return false, &verdict{ReasonGRPC, fmt.Errorf("the answer is not a HealthCheckResponse: %w", protowire.ParseError(n))}
			}
			st, m = protowire.Number(v), m[n:]
			continue
		}
		if n = protowire.ConsumeFieldValue(num, typ, m); n < 0 {
			return false, &verdict{ReasonGRPC, fmt.Errorf("the answer is not a HealthCheckResponse: %w", protowire.ParseError(n))}
		}
		m = m[n:]
	}
	if st != 1 { // SERVING
		name := strconv.Itoa(int(st))
		if int(st) < len(servingStatus) {
			name = servingStatus[st]
		}
		return false, &verdict{ReasonGRPC, fmt.Errorf("service %q is %s", c.Service, name)}
	}
	return true, nil
}

// servingStatus names grpc.health.v1.HealthCheckResponse.ServingStatus; grpcCodes the gRPC
// status codes.
var (
	servingStatus = []string{"UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"}
	grpcCodes     = []string{"OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
		"AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted", "OutOfRange",
		"Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated"}
)

// grpcCall returns the header block and the DATA of a Health/Check call of check c to addr. With
// a keeper, both are made once and kept there: they are the same for every call of the target.
// Every header field is a literal that is not added to the table of header fields, so that the
// block is the same on every connection and every call.
func (k *keeper) grpcCall(c Config, addr string) (block, msg []byte) {
	if k != nil && k.call != nil {
		return k.call.block, k.call.msg
	}
	scheme := "http"
	if c.TLS {
		scheme = "https"
	}
	authority := c.Host
	if authority == "" {
		authority = hostPort(addr, c.Port)
	}
	for _, f := range [...][2]string{
		{":method", "POST"}, {":scheme", scheme}, {":path", "/grpc.health.v1.Health/Check"},
		{":authority", authority}, {"content-type", "application/grpc"}, {"te", "trailers"},
		{"user-agent", userAgent},
	} {
		block = append(block, 0) // literal header field without indexing, new name
		block = hpackString(block, f[0])
		block = hpackString(block, f[1])
	}
	// One length-prefixed, uncompressed message: HealthCheckRequest{service = 1}.
	var req []byte
	if c.Service != "" {
		req = protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), c.Service)
	}
	msg = append(binary.BigEndian.AppendUint32([]byte{0}, uint32(len(req))), req...)
	if k != nil {
		k.call = &grpcRequest{block, msg}
	}
	return block, msg
}

// grpcRequest is a target's Health/Check call, encoded: the header block and the DATA.
type grpcRequest struct{ block, msg []byte }

// hpackString appends s as an HPACK string literal, not Huffman-coded.
func hpackString(b []byte, s string) []byte {
	// An integer with a 7-bit prefix (RFC 7541, 5.1).
	n := uint64(len(s))
	if n < 127 {
		b = append(b, byte(n))
	} else {
		b = append(b, 127)
		for n -= 127; n >= 128; n >>= 7 {
			b = append(b, byte(n%128+128))
		}
		b = append(b, byte(n))
	}
	return append(b, s...)
}
