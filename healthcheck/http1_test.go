package healthcheck

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestReadHeadLikeNetHTTP reads each response of a corpus with readHead and body and with
// net/http's ReadResponse, and wants the same: an error or none, the status code, whether the
// connection closes after it, the body, and whether the body ends well.
func TestReadHeadLikeNetHTTP(t *testing.T) {
	corpus := []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
		"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1   204 No Content\r\n\r\n",
		"HTTP/1.1 200 OK\r\ncontent-length:  5 \r\nX-Other: a\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
		"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nContent-Length: 0x5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
		"HTTP/1.1 200 OK\r\n\r\nuntil the end",
		"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.0 200 OK\r\nConnection: Keep-Alive, foo\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nConnection: upgrade, CLOSE\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nConnection: closed\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n3\r\n!!!\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\nContent-Length: 3\r\n\r\n2;ext=1\r\nok\r\n0\r\nTrailer-A: b\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nA \r\n0123456789\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\nok\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokX\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\nok\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n11111111111111111\r\nok\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\nok",
		"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n",
		"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\n Leading: space\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n",
		"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
		"HTTP/1.1 200 OK\r\n: empty name\r\n\r\n",
		"HTTP/1.1 200 OK\r\nName : space before colon\r\n\r\n",
		"HTTP/1.1 2000 OK\r\n\r\n",
		"HTTP/1.1 20 OK\r\n\r\n",
		"HTTP/1.1 2x0 OK\r\n\r\n",
		"HTTP/1.1 -20 OK\r\n\r\n",
		"HTTP/1.1\r\n\r\n",
		"HTTP/2 200 OK\r\n\r\n",
		"HTTP/1.x 200 OK\r\n\r\n",
		"SSH-2.0-OpenSSH_9.2\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n",
		"HTTP/1.1 200 OK",
		"",
		"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 7\r\n\r\nbroken\n",
		"HTTP/1.1 200 OK\r\nX-Long: " + strings.Repeat("a", 3000) + "\r\nContent-Length: 2\r\n\r\nok",
	}
	for _, method := range []string{"GET", "HEAD"} {
		for _, raw := range corpus {
			want := netHTTP(raw, method)
			got := ours(raw, method)
			if got != want {
				t.Errorf("%s, %q:\n ours     %+v\n net/http %+v", method, raw, got, want)
			}
		}
	}
}

// outcome is what a probe takes from a response.
type outcome struct {
	HeadErr bool
	Code    int
	Close   bool
	Body    string
	BodyErr bool
}

func netHTTP(raw, method string) outcome {
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(raw)), &http.Request{Method: method})
	if err != nil {
		return outcome{HeadErr: true}
	}
	b, err := io.ReadAll(resp.Body)
	return outcome{Code: resp.StatusCode, Close: resp.Close, Body: string(b), BodyErr: err != nil}
}

func ours(raw, method string) outcome {
	br := bufio.NewReader(strings.NewReader(raw))
	h, err := readHead(br, method == "HEAD")
	if err != nil {
		return outcome{HeadErr: true}
	}
	var b body
	b.reset(br, h)
	got, err := io.ReadAll(&b)
	return outcome{Code: h.code, Close: h.close, Body: string(got), BodyErr: err != nil}
}

// TestAppendRequestLikeNetHTTP wants appendRequest to write what net/http's Request.Write
// writes for the same check, where it writes alone, and to go through net/http otherwise.
func TestAppendRequestLikeNetHTTP(t *testing.T) {
	checks := []Config{
		{Type: TypeHTTP, Port: 8080},
		{Type: TypeHTTP, Port: 80, Path: "/healthz"},
		{Type: TypeHTTPS, Port: 443, Path: "/a/b?x=1&y=2"},
		{Type: TypeHTTPS, Port: 8443, Path: "/~user/p;q=1@x:y!$'()*+,"},
		{Type: TypeHTTP, Port: 8080, Path: "/with space"},
		{Type: TypeHTTP, Port: 8080, Path: "/caf%C3%A9"},
		{Type: TypeHTTP, Port: 8080, Path: "/frag#ment"},
		{Type: TypeHTTP, Port: 8080, Path: "/q?"},
		{Type: TypeHTTP, Port: 8080, Host: "example.com"},
		{Type: TypeHTTP, Port: 8080, Host: "example.com:8080"},
		{Type: TypeHTTP, Port: 8080, Host: "exa mple.com"},
		{Type: TypeHTTP, Port: 8080, Method: "HEAD"},
		{Type: TypeHTTP, Port: 8080, Method: "OPTIONS"},
		{Type: TypeHTTP, Port: 8080, Headers: map[string]string{"x-token": "s3cret", "Accept": "*/*"}},
		{Type: TypeHTTP, Port: 8080, Headers: map[string]string{"Host": "override.example"}},
		{Type: TypeHTTP, Port: 8080, Headers: map[string]string{"User-Agent": "mine"}},
	}
	for _, c := range checks {
		c = c.Normalize()
		for _, addr := range []string{"192.0.2.1", "2001:db8::1", "fe80::1%eth0", "backend.example"} {
			for _, closeConn := range []bool{false, true} {
				got, err := appendRequest([]byte("prefix:"), &c, addr, closeConn)
				req, rerr := newRequest(c, addr, closeConn)
				var want bytes.Buffer
				if rerr == nil {
					rerr = req.Write(&want)
				}
				if (err != nil) != (rerr != nil) {
					t.Errorf("%+v at %s: error %v, net/http %v", c, addr, err, rerr)
					continue
				}
				if err == nil && string(got) != "prefix:"+want.String() {
					t.Errorf("%+v at %s, close %t:\n got  %q\n want %q", c, addr, closeConn, got, want.String())
				}
			}
		}
	}
}

// TestProbeHTTPAllocations counts what a probe of an answering target on its kept connection
// allocates, as the Engine runs it. The backend answers from fixed buffers, so that it
// allocates nothing per request itself.
func TestProbeHTTPAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts mean nothing under the race detector (sync.Pool drops at random); make test runs this test without it too")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	answer := []byte("HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nall ok\n")
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var buf [4096]byte
				n := 0
				for {
					m, err := c.Read(buf[n:])
					if err != nil {
						return
					}
					n += m
					if i := bytes.Index(buf[:n], []byte("\r\n\r\n")); i >= 0 {
						n = copy(buf[:], buf[i+4:n])
						if _, err := c.Write(answer); err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	tg := NewTarget("web", Config{Type: TypeHTTP, Port: portOf(t, l.Addr().String()), ExpectBody: "ok"}.Normalize(), "127.0.0.1")
	k, s := new(keeper), new(slot)
	defer k.close()
	probe := func() {
		if r := probeWith(t.Context(), tg, k, s, nil, false); !r.OK {
			t.Fatal(r.Err)
		}
	}
	probe() // the connection, and the pool's buffer
	if n := testing.AllocsPerRun(200, probe); n > 0 {
		t.Errorf("a probe on a kept connection allocates %.1f times; want none", n)
	}
}
