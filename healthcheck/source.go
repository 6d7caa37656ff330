package healthcheck

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"syscall"
)

// The source address of probes (probe_source). By default the kernel chooses it, from the route
// to each target. A host with several addresses may need its probes to come from one of them: the
// one that backends' firewalls allow, or the one that other nodes of a cluster do not share.
//
// A source has one IP family; a probe of a target of the other family fails at once with
// ErrSourceFamily (reason other), without a packet sent: an IP address as target is refused
// before the dial, a host name that has no address of the source's family after its lookup (a
// name with both is probed at the address of the source's family).

// ErrSourceFamily is the error of a probe whose target has no address of the source's IP family.
var ErrSourceFamily = errors.New("the probe source and the target are of different IP families")

// source is where probes come from: the address, and a dialer for TCP and one for UDP that bind
// it. A nil *source is the kernel's choice. It never changes once made, so that a probe loads it
// once (an atomic pointer in the Engine) and a kept connection remembers the source it was made
// with by its pointer.
type source struct {
	ip       netip.Addr
	tcp, udp *net.Dialer
}

// newSource returns the source for ip, or nil for the zero Addr (the kernel's choice). It does
// not check that ip is an address of this host: CheckSource does.
func newSource(ip netip.Addr) *source {
	if !ip.IsValid() {
		return nil
	}
	ip = ip.Unmap()
	return &source{
		ip: ip,
		// The probe dialer's settings, bound to ip. IP_BIND_ADDRESS_NO_PORT (Linux) delays
		// choosing the local port until connect, where it needs to be unique only per
		// destination: a bind to ip:0 alone would take a port from one range of about 28,000
		// for every probe and kept connection of the host, whatever its target.
		tcp: &net.Dialer{KeepAlive: -1, LocalAddr: &net.TCPAddr{IP: ip.AsSlice(), Zone: ip.Zone()}, Control: bindNoPort},
		udp: &net.Dialer{KeepAlive: -1, LocalAddr: &net.UDPAddr{IP: ip.AsSlice(), Zone: ip.Zone()}},
	}
}

// ipBindAddressNoPort is IP_BIND_ADDRESS_NO_PORT of Linux (4.2+), which package syscall lacks.
const ipBindAddressNoPort = 24

// bindNoPort sets IP_BIND_ADDRESS_NO_PORT on a TCP socket before its bind, on Linux; a kernel
// without it gets the bind to a port of its own, as without the option.
func bindNoPort(_, _ string, c syscall.RawConn) error {
	if runtime.GOOS != "linux" {
		return nil
	}
	return c.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
	})
}

// addr returns the source address; the zero Addr for the kernel's choice.
func (s *source) addr() netip.Addr {
	if s == nil {
		return netip.Addr{}
	}
	return s.ip
}

// dialer returns the dialer for network ("tcp" or "udp").
func (s *source) dialer(network string) *net.Dialer {
	switch {
	case s == nil:
		return dialer
	case network == "udp":
		return s.udp
	default:
		return s.tcp
	}
}

// dial connects to addr:port over network from the source, within ctx. A target of the other IP
// family fails with ErrSourceFamily.
func (s *source) dial(ctx context.Context, network, addr string, port int) (net.Conn, error) {
	if s != nil {
		if ip, err := netip.ParseAddr(addr); err == nil && ip.Unmap().Is4() != s.ip.Is4() {
			return nil, fmt.Errorf("probe %s from %s: %w", addr, s.ip, ErrSourceFamily)
		}
	}
	conn, err := s.dialer(network).DialContext(ctx, network, hostPort(addr, port))
	if err != nil && s != nil {
		// The lookup of a name found no address of the source's family: net says "no
		// suitable address found".
		var ae *net.AddrError
		if errors.As(err, &ae) && ae.Err == "no suitable address found" {
			return nil, fmt.Errorf("probe %s from %s: %s has no %s address: %w", addr, s.ip, addr, family(s.ip), ErrSourceFamily)
		}
	}
	return conn, err
}

func family(ip netip.Addr) string {
	if ip.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// CheckSource reports whether probes can be sent from ip: it binds a TCP socket to ip, port 0,
// and closes it. The error is the bind's, such as "listen tcp 10.9.9.9:0: bind: cannot assign
// requested address" for an address that is not one of this host's. The zero Addr (the
// kernel's choice) is always fine; an unspecified (0.0.0.0, ::) or multicast address never is.
func CheckSource(ip netip.Addr) error {
	if !ip.IsValid() {
		return nil
	}
	ip = ip.Unmap()
	if ip.IsUnspecified() || ip.IsMulticast() {
		return fmt.Errorf("%s is not an address of one host", ip)
	}
	l, err := net.Listen("tcp", netip.AddrPortFrom(ip, 0).String())
	if err != nil {
		return err
	}
	return l.Close()
}

// SetSource makes every probe that starts after it returns come from ip (any local port): http,
// https, tcp, dns (over UDP and TCP) and grpc. The zero Addr gives the choice back to the
// kernel. Connections that earlier probes kept (see MaxConnAge) are not reused once the source
// changes: the next probe of their target closes its own and opens a new one.
//
// It returns an error, and changes nothing, when ip cannot be bound on this host (see
// CheckSource), such as "probe_source 10.9.9.9: listen tcp 10.9.9.9:0: bind: cannot assign
// requested address". A probe of a target of the other IP family than ip fails with
// ErrSourceFamily. It is safe to call at any time, from any goroutine.
func (e *Engine) SetSource(ip netip.Addr) error {
	if err := CheckSource(ip); err != nil {
		return fmt.Errorf("probe_source %s: %w", ip, err)
	}
	e.srcMu.Lock()
	defer e.srcMu.Unlock()
	if e.src.Load().addr() == ip.Unmap() {
		return nil // the same: kept connections stay usable
	}
	e.src.Store(newSource(ip))
	return nil
}

// Source returns the source address of the engine's probes; the zero Addr for the kernel's
// choice.
func (e *Engine) Source() netip.Addr { return e.src.Load().addr() }

// ProbeFrom is Probe, from the source address ip (the zero Addr: the kernel's choice, as Probe).
// It does not check ip first (CheckSource does): when ip cannot be bound, the probe fails with
// the bind's error.
func ProbeFrom(ctx context.Context, t Target, ip netip.Addr) Result {
	return probeWith(ctx, t, nil, nil, newSource(ip), false)
}
