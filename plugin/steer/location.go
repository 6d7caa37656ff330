package steer

import (
	"errors"
	"net"
	"net/netip"
	"strconv"

	"github.com/coredns/coredns/plugin/metadata"
	"github.com/miekg/dns"
	"github.com/steerdns/steerdns/zones"
)

// client is where a query comes from, as far as steering goes: the ECS option when there is
// one (and ecs is on), else the source address.
type client struct {
	// prefix is the client's subnet: the ECS address and source prefix, or the source address
	// as a /32 or /128. Invalid when the client asked not to be located (ECS source prefix 0)
	// or when there is no address.
	prefix netip.Prefix
	// ecs is the query's ECS option, echoed in the response with the scope; nil when none.
	ecs *dns.EDNS0_SUBNET
	// found says prefix is set: from ECS at once, from the source address on first use.
	found bool

	geo       geoip // filled on first use from the geoip plugin's metadata
	geoLoaded bool
	locLoaded bool // geo's coordinates were looked at
}

// geoip is what the geoip plugin said of the client.
type geoip struct {
	country, continent string
	location           [3]float64 // unit vector; valid when hasLocation
	lat, lon           float64
	hasLocation        bool
}

// Errors of a malformed ECS option: the query gets FORMERR (RFC 7871 §7.1.1). miekg/dns
// already answers FORMERR for an unknown family or a source prefix over 32 or 128.
var (
	errECSBits     = errors.New("ECS address has bits set beyond its source prefix")
	errECSMultiple = errors.New("more than one ECS option")
	errECSFamily   = errors.New("ECS address does not match its family")
	errECSLength   = errors.New("ECS address has more or fewer octets than its source prefix needs")
)

// optionsLen returns the length that opt's options had on the wire, from what miekg/dns
// decoded, for the option types whose length that tells; ok is false when an option's is not
// known. An ECS option counts the octets its source prefix needs: miekg/dns pads a short
// address and drops the octets past four (IPv4) or sixteen, so a difference from the RR's
// RDLENGTH is an ECS address of the wrong length.
func optionsLen(opt *dns.OPT) (n int, ok bool) {
	for _, o := range opt.Option {
		switch e := o.(type) {
		case *dns.EDNS0_SUBNET:
			n += 4 + 4 + (int(e.SourceNetmask)+7)/8
		case *dns.EDNS0_LOCAL:
			n += 4 + len(e.Data)
		case *dns.EDNS0_COOKIE:
			n += 4 + len(e.Cookie)/2 // hex
		case *dns.EDNS0_NSID:
			n += 4 + len(e.Nsid)/2 // hex
		case *dns.EDNS0_PADDING:
			n += 4 + len(e.Padding)
		default:
			return 0, false
		}
	}
	return n, true
}

// readECS finds the query's ECS option and checks it.
func readECS(r *dns.Msg) (*dns.EDNS0_SUBNET, netip.Prefix, error) {
	opt := r.IsEdns0()
	if opt == nil {
		return nil, netip.Prefix{}, nil
	}
	var ecs *dns.EDNS0_SUBNET
	for _, o := range opt.Option {
		if e, ok := o.(*dns.EDNS0_SUBNET); ok {
			if ecs != nil {
				return nil, netip.Prefix{}, errECSMultiple
			}
			ecs = e
		}
	}
	if ecs == nil {
		return nil, netip.Prefix{}, nil
	}
	// A message made in this process (explain, tests) has no RDLENGTH; one off the wire has.
	if n, ok := optionsLen(opt); ok && opt.Hdr.Rdlength != 0 && n != int(opt.Hdr.Rdlength) {
		return nil, netip.Prefix{}, errECSLength
	}
	var addr netip.Addr
	switch ecs.Family {
	case 0: // dig +subnet=0 sends family 0 with prefix 0: "do not use my location"
		return ecs, netip.Prefix{}, nil
	case 1:
		ip4 := ecs.Address.To4()
		if ip4 == nil {
			return nil, netip.Prefix{}, errECSFamily
		}
		addr = netip.AddrFrom4([4]byte(ip4))
	default:
		ip16 := ecs.Address.To16()
		if ip16 == nil {
			return nil, netip.Prefix{}, errECSFamily
		}
		addr = netip.AddrFrom16([16]byte(ip16))
	}
	p, err := addr.Prefix(int(ecs.SourceNetmask))
	if err != nil {
		return nil, netip.Prefix{}, errECSFamily
	}
	if p.Addr() != addr {
		return nil, netip.Prefix{}, errECSBits
	}
	if ecs.SourceNetmask == 0 {
		return ecs, netip.Prefix{}, nil
	}
	return ecs, p, nil
}

// remoteAddr returns the address a query came from.
func remoteAddr(w dns.ResponseWriter) netip.Addr {
	switch a := w.RemoteAddr().(type) {
	case *net.UDPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}

// sourcePrefix is the client prefix of a query without ECS: its source address, whole.
func sourcePrefix(w dns.ResponseWriter) netip.Prefix {
	a := remoteAddr(w)
	if !a.IsValid() {
		return netip.Prefix{}
	}
	return netip.PrefixFrom(a, a.BitLen())
}

// geoip returns what the geoip plugin said of the client (nothing unless the server block has
// metadata and geoip).
func (q *query) geoip() *geoip {
	c := &q.client
	if c.geoLoaded {
		return &c.geo
	}
	c.geoLoaded = true
	if q.ctx == nil {
		return &c.geo
	}
	if f := metadata.ValueFunc(q.ctx, "geoip/country/code"); f != nil {
		c.geo.country = f()
	}
	if f := metadata.ValueFunc(q.ctx, "geoip/continent/code"); f != nil {
		c.geo.continent = f()
	}
	return &c.geo
}

// geoipLocation returns what geoip said, with the client's coordinates (parsed on first use:
// only nearest needs them).
func (q *query) geoipLocation() *geoip {
	g := q.geoip()
	c := &q.client
	if c.locLoaded || q.ctx == nil {
		return g
	}
	c.locLoaded = true
	lat, lon := metadata.ValueFunc(q.ctx, "geoip/latitude"), metadata.ValueFunc(q.ctx, "geoip/longitude")
	if lat != nil && lon != nil {
		a, err1 := strconv.ParseFloat(lat(), 64)
		b, err2 := strconv.ParseFloat(lon(), 64)
		// The geoip plugin reports 0, 0 for an address it has no coordinates for.
		if err1 == nil && err2 == nil && (a != 0 || b != 0) {
			c.geo.lat, c.geo.lon, c.geo.hasLocation = a, b, true
			c.geo.location = zones.UnitVector(a, b)
		}
	}
	return &c.geo
}

// useScope records that the answer depended on the first bits of the client's address.
func (q *query) useScope(bits int) {
	if q.client.ecs == nil {
		return
	}
	bits = min(bits, int(q.client.ecs.SourceNetmask))
	if uint8(bits) > q.scope {
		q.scope = uint8(bits)
	}
}

// sourceBits is the number of bits the client gave: the ECS source prefix.
func (q *query) sourceBits() int { return q.clientPrefix().Bits() }

// clientPrefix returns the client's prefix: the ECS one, else the source address (looked up
// on first use, since most answers never need it).
func (q *query) clientPrefix() netip.Prefix {
	if !q.client.found {
		q.client.prefix, q.client.found = sourcePrefix(q.state.W), true
	}
	return q.client.prefix
}

// echoECS adds the query's ECS option to m with the scope the answer depended on (RFC 7871
// §7.2.1); a query without ECS gets none. The records are made in one allocation.
func (q *query) echoECS(m *dns.Msg) {
	e := q.client.ecs
	if e == nil {
		return
	}
	x := new(struct {
		ecs   dns.EDNS0_SUBNET
		opt   dns.OPT
		opts  [1]dns.EDNS0
		extra [1]dns.RR
	})
	x.ecs = dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: e.Family, SourceNetmask: e.SourceNetmask, SourceScope: q.scope, Address: e.Address}
	x.opts[0] = &x.ecs
	x.opt = dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT, Class: dns.DefaultMsgSize}, Option: x.opts[:]}
	if len(m.Extra) == 0 {
		x.extra[0] = &x.opt
		m.Extra = x.extra[:]
		return
	}
	m.Extra = append(m.Extra[:len(m.Extra):len(m.Extra)], &x.opt)
}
