package healthcheck

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// An HTTP probe writes its request and reads the response with the code of this file, not with
// net/http's Request.Write and ReadResponse: those allocate a request, a URL, a header map and
// its strings for every probe (18 allocations, 1.5 KiB), which at thousands of probes a second
// was close to half of the server's garbage, and the garbage collector's work lands on the
// queries. A probe needs only the status code and how the body is framed; this reads exactly
// that, into the probe's pooled buffer, and skips every other header without keeping it.
//
// What it accepts and refuses is net/http's, for what a probe judges (TestReadHeadLikeNetHTTP
// compares the two on a corpus of responses, well-formed and not): the status line
// "HTTP/x.y NNN reason", header fields name ":" value with a token for name, a bare LF for CRLF,
// obsolete line folding; body framing by RFC 9112 section 6.3: none for HEAD, 1xx, 204 and 304,
// else chunked (the last transfer coding), else Content-Length (several that differ are an
// error), else until the connection closes. A request with headers of the check's own goes
// through net/http's Request.Write (TestAppendRequestLikeNetHTTP checks that the two write the
// same bytes where this file writes alone).

// errMalformed is the error of a response that HTTP/1.1 cannot parse.
var errMalformed = errors.New("malformed HTTP response")

// head is what a probe needs of a response's status line and headers.
type head struct {
	code    int
	close   bool  // the connection ends after this response
	chunked bool  // the body is chunked
	length  int64 // the body's length, when neither chunked nor until close; -1: until close
}

// appendRequest appends the request of check c for the target at addr to b, as net/http's
// Request.Write writes it; with closeConn it asks the server to close the connection.
func appendRequest(b []byte, c *Config, addr string, closeConn bool) ([]byte, error) {
	if len(c.Headers) > 0 || !plainTarget(c.Path) || !token(c.Method) || c.Host != "" && !validHost(c.Host) ||
		c.Host == "" && strings.IndexByte(addr, '%') >= 0 { // an IPv6 zone, which net/http leaves out
		req, err := newRequest(*c, addr, closeConn)
		if err != nil {
			return b, err
		}
		w := bytes.NewBuffer(b)
		if err := req.Write(w); err != nil {
			return b, err
		}
		return w.Bytes(), nil
	}
	b = append(b, c.Method...)
	b = append(b, ' ')
	b = append(b, c.Path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	if c.Host != "" {
		b = append(b, c.Host...)
	} else {
		v6 := strings.Contains(addr, ":")
		if v6 {
			b = append(b, '[')
		}
		b = append(b, addr...)
		if v6 {
			b = append(b, ']')
		}
		if !(c.Type == TypeHTTP && c.Port == 80) && !(c.Type == TypeHTTPS && c.Port == 443) {
			b = append(b, ':')
			b = strconv.AppendInt(b, int64(c.Port), 10)
		}
	}
	b = append(b, "\r\nUser-Agent: "+userAgent+"\r\n"...)
	if closeConn {
		b = append(b, "Connection: close\r\n"...)
	}
	return append(b, "\r\n"...), nil
}

// plainTarget reports whether path is an absolute path, with a query or not, that net/url
// parses and writes back unchanged: no escapes, no characters that need one.
func plainTarget(path string) bool {
	return len(path) > 0 && path[0] == '/' && only(path, "-._~/!$&'()*+,;=:@?")
}

// validHost reports whether h can go in a Host header as it is; anything else goes through
// net/http, which knows what to refuse or change.
func validHost(h string) bool { return h != "" && only(h, "-._~:[]") }

// only reports whether every byte of s is an ASCII letter, a digit or one of punct.
func only(s, punct string) bool {
	for i := 0; i < len(s); i++ {
		if !alnumOr(s[i], punct) {
			return false
		}
	}
	return true
}

func alnumOr(c byte, punct string) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(punct, c) >= 0
}

// readHead reads a response's status line and headers from br; headReq says that the request's
// method was HEAD, so that the response has no body.
func readHead(br *bufio.Reader, headReq bool) (head, error) {
	line, err := readLine(br)
	if err != nil {
		return head{}, err
	}
	proto, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok {
		return head{}, fmt.Errorf("%w: status line %q", errMalformed, clip(line))
	}
	code, _, _ := bytes.Cut(bytes.TrimLeft(rest, " "), []byte{' '})
	h := head{length: -1}
	if len(code) != 3 {
		return head{}, fmt.Errorf("%w: status code %q", errMalformed, clip(code))
	}
	for _, d := range code {
		if d < '0' || d > '9' {
			return head{}, fmt.Errorf("%w: status code %q", errMalformed, clip(code))
		}
		h.code = h.code*10 + int(d-'0')
	}
	major, minor, ok := http.ParseHTTPVersion(string(proto))
	if !ok {
		return head{}, fmt.Errorf("%w: version %q", errMalformed, clip(proto))
	}

	// The fields that frame the body; the others are skipped.
	closeTok, keepAlive := false, false
	tes, lengths := 0, 0
	var te []byte
	framing := false // the last field was one of these: a folded line after it is refused
	for first := true; ; first = false {
		line, err := readLine(br)
		if err != nil {
			return head{}, err
		}
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if first || framing {
				return head{}, fmt.Errorf("%w: header line %q", errMalformed, clip(line))
			}
			continue // obsolete folding of a field nobody reads
		}
		name, value, ok := bytes.Cut(line, []byte{':'})
		if !ok || !fieldName(name) {
			return head{}, fmt.Errorf("%w: header line %q", errMalformed, clip(line))
		}
		value = bytes.Trim(value, " \t")
		framing = true
		switch {
		case equalFold(name, "content-length"):
			n, err := parseLength(value)
			if err != nil {
				return head{}, err
			}
			if lengths > 0 && n != h.length {
				return head{}, fmt.Errorf("%w: Content-Length %d and %d", errMalformed, h.length, n)
			}
			h.length = n
			lengths++
		case equalFold(name, "transfer-encoding"):
			te = value
			tes++
		case equalFold(name, "connection"):
			for tok := range bytes.SplitSeq(value, []byte{','}) {
				tok = bytes.Trim(tok, " \t")
				closeTok = closeTok || equalFold(tok, "close")
				keepAlive = keepAlive || equalFold(tok, "keep-alive")
			}
		default:
			framing = false
		}
	}

	switch {
	case major < 1:
		h.close = true
	case major == 1 && minor == 0:
		h.close = closeTok || !keepAlive
	default:
		h.close = closeTok
	}
	if tes > 0 && (major > 1 || major == 1 && minor >= 1) { // HTTP/1.0 has no Transfer-Encoding
		// Only one field, and only chunked, as net/http and nginx: anything else is how
		// requests are smuggled.
		if tes > 1 || !equalFold(te, "chunked") {
			return head{}, fmt.Errorf("%w: unsupported transfer encoding %q", errMalformed, clip(te))
		}
		h.chunked = true
	}
	switch {
	case headReq || h.code/100 == 1 || h.code == 204 || h.code == 304:
		h.length, h.chunked = 0, false
	case h.chunked:
		h.length = -1
	case lengths == 0:
		h.length, h.close = -1, true
	}
	return h, nil
}

// readLine reads one line without its CRLF or LF. The line is in br's buffer, valid until
// the next read; a line longer than the buffer is an error.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return nil, fmt.Errorf("%w: a line longer than %d bytes", errMalformed, br.Size())
	}
	if err != nil {
		if err == io.EOF && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// chunkLine reads a line of chunked framing: it must end in CRLF, and hold no other CR (RFC
// 9112 accepts a bare LF in headers, not there).
func chunkLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	switch {
	case err == bufio.ErrBufferFull:
		return nil, fmt.Errorf("%w: a chunk line longer than %d bytes", errMalformed, br.Size())
	case err == io.EOF:
		return nil, io.ErrUnexpectedEOF
	case err != nil:
		return nil, err
	case bytes.IndexByte(line, '\r') != len(line)-2:
		return nil, fmt.Errorf("%w: chunk line without CRLF", errMalformed)
	}
	return line[:len(line)-2], nil
}

// parseLength parses a Content-Length value: digits only, below 2^63.
func parseLength(v []byte) (int64, error) {
	n, ok := parseUint(v, 10, 63)
	if !ok {
		return 0, fmt.Errorf("%w: Content-Length %q", errMalformed, clip(v))
	}
	return int64(n), nil
}

// parseUint parses v as a number in base 10 or 16 that fits in bits; without a sign, or
// anything else than digits.
func parseUint(v []byte, base uint64, bits uint) (uint64, bool) {
	if len(v) == 0 {
		return 0, false
	}
	var n uint64
	for _, c := range v {
		var d uint64
		switch {
		case '0' <= c && c <= '9':
			d = uint64(c - '0')
		case base == 16 && 'a' <= c && c <= 'f':
			d = uint64(c-'a') + 10
		case base == 16 && 'A' <= c && c <= 'F':
			d = uint64(c-'A') + 10
		default:
			return 0, false
		}
		if n > (1<<bits-1-d)/base {
			return 0, false
		}
		n = n*base + d
	}
	return n, true
}

// token reports whether s is an RFC 9110 token, as a field name or a method must be.
func token(s string) bool { return s != "" && only(s, tokenPunct) }

// tokenPunct are the characters other than letters and digits that a token may hold.
const tokenPunct = "!#$%&'*+-.^_`|~"

// fieldName reports whether name is a header field name as net/textproto reads one: a token,
// or token bytes and spaces (accepted, never a field that frames the body).
func fieldName(name []byte) bool {
	for _, c := range name {
		if c != ' ' && !alnumOr(c, tokenPunct) {
			return false
		}
	}
	return len(name) > 0
}

// equalFold reports whether b is lower, ignoring ASCII case; lower is in lower case.
func equalFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// clip returns the start of b as a string, for an error.
func clip(b []byte) string {
	if len(b) > 64 {
		b = b[:64]
	}
	return string(b)
}

// body reads a response's body from br as h frames it; it returns io.EOF at its end. For a
// chunked body, the end includes the trailer section.
type body struct {
	br      *bufio.Reader
	left    int64 // bytes left of the body or of the current chunk; -1: until close
	chunked bool
	done    bool
}

func (b *body) reset(br *bufio.Reader, h head) {
	*b = body{br: br, left: h.length, chunked: h.chunked, done: h.length == 0 && !h.chunked}
	if h.chunked {
		b.left = 0
	}
}

func (b *body) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	if b.chunked && b.left == 0 {
		if err := b.nextChunk(); err != nil {
			return 0, err
		}
		if b.done {
			return 0, io.EOF
		}
	}
	if b.left >= 0 && int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.br.Read(p)
	if b.left < 0 { // until close
		if err == io.EOF {
			b.done = true
		}
		return n, err
	}
	b.left -= int64(n)
	if b.left == 0 {
		if !b.chunked {
			b.done = true
		} else if err == nil {
			err = b.chunkEnd()
		}
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF // the body was cut short
	}
	return n, err
}

// nextChunk reads a chunk's size line; after the last chunk, the trailer section too.
func (b *body) nextChunk() error {
	line, err := chunkLine(b.br)
	if err != nil {
		return err
	}
	size := bytes.TrimRight(line, " \t")
	size, _, _ = bytes.Cut(size, []byte{';'}) // chunk extensions are ignored
	n, ok := parseUint(size, 16, 63)
	if !ok {
		return fmt.Errorf("%w: chunk size %q", errMalformed, clip(line))
	}
	if n > 0 {
		b.left = int64(n)
		return nil
	}
	for { // the trailer section, skipped
		line, err := readLine(b.br)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		if len(line) == 0 {
			b.done = true
			return nil
		}
	}
}

// chunkEnd reads the CRLF after a chunk's data.
func (b *body) chunkEnd() error {
	line, err := chunkLine(b.br)
	if err != nil {
		return err
	}
	if len(line) != 0 {
		return fmt.Errorf("%w: chunk not followed by CRLF", errMalformed)
	}
	return nil
}
