// Command backend is the health-check target of the steerdns benchmark (test/bench/run.sh): it
// listens on one port of several loopback addresses and answers every HTTP request with 200 "ok",
// keeping the connection open for the next request (HTTP/1.1 keep-alive, as common servers do),
// or, with -mode tcp, accepts and closes. It exits after -max (so that a benchmark killed
// uncleanly leaves nothing behind) or on SIGTERM/SIGINT, and then prints how many probes (HTTP
// requests, or TCP connections) it served; SIGUSR1 prints that count at any time ("served N"), so
// that a benchmark can tell how many probes came in during a run.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	addrs := flag.String("addrs", "127.0.0.1", "comma-separated loopback addresses, or FIRST-LAST (127.0.0.1-127.0.0.10)")
	port := flag.Int("port", 18080, "port to listen on at every address")
	mode := flag.String("mode", "http", "http (answer 200 ok, keep-alive) or tcp (accept and close)")
	idle := flag.Duration("idle", time.Minute, "close an HTTP connection after this long without a request")
	maxLife := flag.Duration("max", 15*time.Minute, "exit after this long whatever happens")
	flag.Parse()

	list, err := expand(*addrs)
	if err != nil {
		fmt.Fprintln(os.Stderr, "backend:", err)
		os.Exit(2)
	}
	if *mode != "http" && *mode != "tcp" {
		fmt.Fprintf(os.Stderr, "backend: -mode %q: want http or tcp\n", *mode)
		os.Exit(2)
	}
	var served atomic.Int64
	start := time.Now()
	for _, a := range list {
		if !a.IsLoopback() {
			fmt.Fprintf(os.Stderr, "backend: %s is not a loopback address\n", a)
			os.Exit(2)
		}
		ln, err := net.Listen("tcp", netip.AddrPortFrom(a, uint16(*port)).String())
		if err != nil {
			fmt.Fprintln(os.Stderr, "backend:", err)
			os.Exit(1)
		}
		go serve(ln, *mode == "http", *idle, &served)
	}
	fmt.Printf("backend: %s on %d addresses (%s), port %d\n", *mode, len(list), *addrs, *port)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1)
	deadline := time.After(*maxLife)
wait:
	for {
		select {
		case s := <-sig:
			if s != syscall.SIGUSR1 {
				break wait
			}
			fmt.Printf("served %d\n", served.Load())
		case <-deadline:
			fmt.Fprintf(os.Stderr, "backend: -max %v reached, exiting\n", *maxLife)
			break wait
		}
	}
	d := time.Since(start)
	fmt.Printf("backend: served %d probes in %.1fs (%.0f/s)\n", served.Load(), d.Seconds(), float64(served.Load())/d.Seconds())
}

func serve(ln net.Listener, http bool, idle time.Duration, served *atomic.Int64) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // EMFILE and the like: back off
			continue
		}
		if !http {
			served.Add(1)
		}
		go answer(c, http, idle, served)
	}
}

var response = []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok")

// answer reads request heads (up to 8 KiB each; the probes send no body) and answers each with
// 200 ok, until the client closes the connection or sends nothing for idle; then it closes too.
// Probes close with a reset, so no TIME_WAIT socket is left on either side: at 2,000 probes a
// second they would pile up by the hundred thousand. With -mode tcp it only waits for the close,
// for 2s at most.
func answer(c net.Conn, http bool, idle time.Duration, served *atomic.Int64) {
	defer c.Close()
	br := bufio.NewReaderSize(c, 4096)
	if !http {
		c.SetDeadline(time.Now().Add(2 * time.Second))
		br.Discard(1 << 20)
		return
	}
	for {
		c.SetDeadline(time.Now().Add(idle))
		n := 0
		for {
			line, err := br.ReadSlice('\n')
			n += len(line)
			if err != nil || n > 8<<10 {
				return
			}
			if len(bytes.TrimRight(line, "\r\n")) == 0 {
				break
			}
		}
		served.Add(1)
		if _, err := c.Write(response); err != nil {
			return
		}
	}
}

// expand parses "a,b,c" or "FIRST-LAST" (IPv4, last octet varying).
func expand(s string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, part := range strings.Split(s, ",") {
		first, last, isRange := strings.Cut(part, "-")
		a, err := netip.ParseAddr(strings.TrimSpace(first))
		if err != nil {
			return nil, err
		}
		if !isRange {
			out = append(out, a)
			continue
		}
		b, err := netip.ParseAddr(strings.TrimSpace(last))
		if err != nil {
			return nil, err
		}
		if !a.Is4() || !b.Is4() || b.Less(a) {
			return nil, fmt.Errorf("range %q: want FIRST-LAST of IPv4 addresses, FIRST <= LAST", part)
		}
		for x := a; x.Compare(b) <= 0; x = x.Next() {
			out = append(out, x)
			if len(out) > 256 {
				return nil, fmt.Errorf("range %q: more than 256 addresses", part)
			}
		}
	}
	return out, nil
}
