// Command serverlat reads a packet capture of DNS over UDP on the loopback interface (tcpdump
// -i lo -w, pcap format) and prints the server's share of each query's latency: from the
// query's packet to the response's, matched by client port and DNS ID. On loopback the query's
// timestamp is taken as the client sends it and the response's as the server sends it, so the
// difference is the server's: its socket queue, the Go scheduler, the answer, the send. The
// client's own delays (dnsperf sharing a CPU with other processes) are not in it.
//
//	serverlat -port 15303 capture.pcap
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"slices"
	"time"
)

func main() {
	port := flag.Int("port", 53, "the server's UDP port")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: serverlat -port PORT capture.pcap")
		os.Exit(2)
	}
	d, err := os.ReadFile(flag.Arg(0))
	if err != nil || len(d) < 24 {
		fmt.Fprintln(os.Stderr, "serverlat:", err, "(or not a pcap file)")
		os.Exit(1)
	}
	var unit time.Duration
	switch binary.LittleEndian.Uint32(d) {
	case 0xa1b2c3d4:
		unit = time.Microsecond
	case 0xa1b23c4d:
		unit = time.Nanosecond
	default:
		fmt.Fprintln(os.Stderr, "serverlat: not a little-endian pcap file (tcpdump -w writes one)")
		os.Exit(1)
	}
	type key struct{ port, id uint16 }
	asked := map[key]time.Duration{}
	var lat []time.Duration
	for off := 24; off+16 <= len(d); {
		sec, frac, n := binary.LittleEndian.Uint32(d[off:]), binary.LittleEndian.Uint32(d[off+4:]), int(binary.LittleEndian.Uint32(d[off+8:]))
		off += 16
		if off+n > len(d) {
			break
		}
		pkt := d[off : off+n]
		off += n
		t := time.Duration(sec)*time.Second + time.Duration(frac)*unit
		if len(pkt) < 14+20 || pkt[14]>>4 != 4 || pkt[14+9] != 17 { // Ethernet, IPv4, UDP
			continue
		}
		udp := pkt[14+int(pkt[14]&15)*4:]
		if len(udp) < 8+2 {
			continue
		}
		sp, dp, id := binary.BigEndian.Uint16(udp), binary.BigEndian.Uint16(udp[2:]), binary.BigEndian.Uint16(udp[8:])
		switch {
		case int(dp) == *port:
			asked[key{sp, id}] = t
		case int(sp) == *port:
			if t0, ok := asked[key{dp, id}]; ok {
				lat = append(lat, t-t0)
				delete(asked, key{dp, id})
			}
		}
	}
	if len(lat) == 0 {
		fmt.Fprintln(os.Stderr, "serverlat: no answered query in the capture")
		os.Exit(1)
	}
	slices.Sort(lat)
	at := func(p float64) float64 { return float64(lat[min(len(lat)-1, int(float64(len(lat))*p))]) / 1e6 }
	fmt.Printf("answered %d, unanswered %d; server latency p50 %.3f p99 %.3f p99.9 %.3f max %.3f ms\n",
		len(lat), len(asked), at(0.5), at(0.99), at(0.999), at(1))
}
