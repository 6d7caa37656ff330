package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"time"
)

// The wire format: every message starts with a version byte and a type byte, then the name of
// the node it comes from. Integers are unsigned varints, strings a varint length and the bytes,
// a target is the 64-bit FNV-1a hash of its key (the probe's settings and address, so nodes
// with the same check on the same address agree on it without sending the key). A message
// that a node of another version sends is refused whole, never half read.
const wireVersion = 1

// Message types.
const (
	msgBeat    = 'b' // the sender is alive: its sequence number and files hash
	msgDelta   = 'd' // changes of the sender's own state, one sequence number further
	msgState   = 's' // the sender's whole own state
	msgSync    = 'q' // please send me your changes from a sequence number on, or your whole state
	msgRecords = 'r' // shared records (overrides), last writer wins
	msgPush    = 'p' // push/pull: what the sender has heard of every node, its records, maybe its state
)

// Observation states on the wire.
const (
	obsRemoved = 0 // the node stopped probing the target
	obsUp      = 1
	obsDown    = 2
)

// Limits that a decoder enforces, so that a hostile or broken message costs little.
const (
	maxString  = 1024
	maxData    = 64 << 10
	maxPacket  = 1200 // a delta larger than this is not sent: peers fetch the whole state
	minObsSize = 8 + 1 + 1 + 1
)

// ErrWire is the error of every message that cannot be decoded.
var ErrWire = errors.New("cluster: malformed message")

// KeyHash is the wire identity of a target key.
func KeyHash(key string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	return h.Sum64()
}

// obs is one node's observation of one target.
type obs struct {
	State    uint8
	Since    int64  // Unix milliseconds, on the observer's clock
	Interval uint32 // the check's interval in milliseconds: the observation is fresh for 3 of them
}

// entry is an observation with its target, as a delta carries it.
type entry struct {
	Key uint64
	obs
}

// Zone is the SOA serial a node serves for a zone, with the hash of the policy file it serves
// it from.
type Zone struct {
	Name, Hash string
	Serial     uint32
}

// Record is a shared record, such as an operator's override: the newest write wins, by
// Updated and then by Node; a delete is a record with Deleted set (a tombstone), kept until it
// expires.
type Record struct {
	ID      string
	Node    string    // the node that wrote it
	Updated time.Time // when; nanoseconds
	Expires time.Time // when it stops mattering (zero: never); the record is dropped then
	Deleted bool
	Data    []byte
}

// message is every decoded message; the fields a type does not carry are zero.
type message struct {
	Type   byte
	Origin string
	Seq    uint64
	Files  string
	Obs    []entry
	Zones  []Zone
	Full   bool     // Zones is the sender's whole list (a delta may carry none)
	Target string   // msgSync: whose state is asked for (Seq: from which change on; 0: the whole state)
	Recs   []Record // msgRecords, msgPush
	Heard  []heard  // msgPush
	State  *message // msgPush: the sender's own state, when it joins
}

// heard is what one node has applied of another's sequence.
type heard struct {
	Name string
	Seq  uint64
}

type writer struct{ b []byte }

func (w *writer) u(v uint64)     { w.b = binary.AppendUvarint(w.b, v) }
func (w *writer) s(v string)     { w.u(uint64(len(v))); w.b = append(w.b, v...) }
func (w *writer) bytes(v []byte) { w.u(uint64(len(v))); w.b = append(w.b, v...) }
func (w *writer) byte(v byte)    { w.b = append(w.b, v) }

func (w *writer) obs(list []entry) {
	w.u(uint64(len(list)))
	for _, e := range list {
		w.b = binary.BigEndian.AppendUint64(w.b, e.Key)
		w.byte(e.State)
		w.u(uint64(max(e.Since, 0)))
		w.u(uint64(e.Interval))
	}
}

func (w *writer) zones(list []Zone) {
	w.u(uint64(len(list)))
	for _, z := range list {
		w.s(z.Name)
		w.s(z.Hash)
		w.u(uint64(z.Serial))
	}
}

func (w *writer) records(list []Record) {
	w.u(uint64(len(list)))
	for _, r := range list {
		w.s(r.ID)
		w.s(r.Node)
		w.u(uint64(max(r.Updated.UnixNano(), 0)))
		var exp int64
		if !r.Expires.IsZero() {
			exp = r.Expires.UnixMilli()
		}
		w.u(uint64(max(exp, 0)))
		if r.Deleted {
			w.byte(1)
		} else {
			w.byte(0)
		}
		w.bytes(r.Data)
	}
}

// encode returns m on the wire.
func (m *message) encode() []byte {
	w := &writer{b: make([]byte, 0, 64+len(m.Obs)*14)}
	w.byte(wireVersion)
	w.byte(m.Type)
	w.s(m.Origin)
	m.body(w)
	return w.b
}

func (m *message) body(w *writer) {
	switch m.Type {
	case msgBeat:
		w.u(m.Seq)
		w.s(m.Files)
	case msgDelta, msgState:
		w.u(m.Seq)
		w.s(m.Files)
		w.obs(m.Obs)
		if m.Full {
			w.byte(1)
			w.zones(m.Zones)
		} else {
			w.byte(0)
		}
	case msgSync:
		w.s(m.Target)
		w.u(m.Seq)
	case msgRecords:
		w.records(m.Recs)
	case msgPush:
		w.u(uint64(len(m.Heard)))
		for _, h := range m.Heard {
			w.s(h.Name)
			w.u(h.Seq)
		}
		w.records(m.Recs)
		if m.State == nil {
			w.byte(0)
		} else {
			w.byte(1)
			m.State.body(w)
		}
	}
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = ErrWire
	}
	r.b = nil
}

func (r *reader) u() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) raw(limit int) []byte {
	n := r.u()
	if r.err != nil || n > uint64(limit) || n > uint64(len(r.b)) {
		r.fail()
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) s() string { return string(r.raw(maxString)) }

func (r *reader) byte() byte {
	if len(r.b) < 1 {
		r.fail()
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

// count reads a list length that cannot exceed what is left, at least size bytes an item.
func (r *reader) count(size int) int {
	n := r.u()
	if r.err != nil || n > uint64(len(r.b)/size) {
		r.fail()
		return 0
	}
	return int(n)
}

func (r *reader) obs() []entry {
	n := r.count(minObsSize)
	list := make([]entry, 0, n)
	for range n {
		if len(r.b) < 9 {
			r.fail()
			return nil
		}
		e := entry{Key: binary.BigEndian.Uint64(r.b)}
		e.State = r.b[8]
		r.b = r.b[9:]
		since, interval := r.u(), r.u()
		if e.State > obsDown || since > 1<<53 || interval > 1<<32-1 {
			r.fail()
			return nil
		}
		e.Since, e.Interval = int64(since), uint32(interval)
		list = append(list, e)
	}
	return list
}

func (r *reader) zones() []Zone {
	n := r.count(3)
	list := make([]Zone, 0, n)
	for range n {
		z := Zone{Name: r.s(), Hash: r.s()}
		serial := r.u()
		if serial > 1<<32-1 {
			r.fail()
		}
		z.Serial = uint32(serial)
		list = append(list, z)
	}
	return list
}

func (r *reader) records() []Record {
	n := r.count(6)
	list := make([]Record, 0, n)
	for range n {
		rec := Record{ID: r.s(), Node: r.s()}
		updated, exp := r.u(), r.u()
		if updated > 1<<63-1 || exp > 1<<53 {
			r.fail()
		}
		rec.Updated = time.Unix(0, int64(updated))
		if exp != 0 {
			rec.Expires = time.UnixMilli(int64(exp))
		}
		switch r.byte() {
		case 0:
		case 1:
			rec.Deleted = true
		default:
			r.fail()
		}
		rec.Data = append([]byte(nil), r.raw(maxData)...)
		if r.err != nil {
			return nil
		}
		list = append(list, rec)
	}
	return list
}

// decode reads one message. Bytes left over are an error: a message is read whole or not at all.
func decode(b []byte) (*message, error) {
	if len(b) < 2 {
		return nil, ErrWire
	}
	if b[0] != wireVersion {
		return nil, fmt.Errorf("%w: version %d (this node speaks %d)", ErrWire, b[0], wireVersion)
	}
	r := &reader{b: b[2:]}
	m := &message{Type: b[1], Origin: r.s()}
	if m.Origin == "" {
		r.fail()
	}
	m.readBody(r)
	if r.err == nil && len(r.b) != 0 {
		r.fail()
	}
	if r.err != nil {
		return nil, fmt.Errorf("%w: type %q", r.err, m.Type)
	}
	return m, nil
}

func (m *message) readBody(r *reader) {
	switch m.Type {
	case msgBeat:
		m.Seq, m.Files = r.u(), r.s()
	case msgDelta, msgState:
		m.Seq, m.Files = r.u(), r.s()
		m.Obs = r.obs()
		switch r.byte() {
		case 0:
		case 1:
			m.Full, m.Zones = true, r.zones()
		default:
			r.fail()
		}
	case msgSync:
		m.Target, m.Seq = r.s(), r.u()
	case msgRecords:
		m.Recs = r.records()
	case msgPush:
		n := r.count(2)
		for range n {
			m.Heard = append(m.Heard, heard{Name: r.s(), Seq: r.u()})
		}
		m.Recs = r.records()
		switch r.byte() {
		case 0:
		case 1:
			st := &message{Type: msgState, Origin: m.Origin}
			st.readBody(r)
			m.State = st
		default:
			r.fail()
		}
	default:
		r.fail()
	}
}
