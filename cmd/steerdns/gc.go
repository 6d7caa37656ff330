package main

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"

	clog "github.com/coredns/coredns/plugin/pkg/log"
)

// The garbage collector's headroom. Go's default (GOGC=100) lets the heap grow to twice what
// was live after the last collection. Most of a large steerdns heap is the compiled zones and
// the health engine, which live until the next reload: at 100,000 services with a check each
// that is ~600 MB, and twice that is 1.2 GB of RSS for nothing but garbage. Once the live heap
// passes gcHeadroom, steerdns lowers GOGC after each collection so that the headroom stays at
// gcHeadroom (GOGC 50 at 512 MiB live), and not below gcFloor percent of the live heap, so
// that a heap of many gigabytes is not collected back to back. Below gcHeadroom of live heap,
// GOGC stays at 100: small zones collect as often as before.
//
// GOGC or GOMEMLIMIT in the environment turns this off: the operator has chosen.
const (
	gcHeadroom = 256 << 20
	gcFloor    = 25
)

// headroom follows the live heap and sets GOGC to keep the headroom at max bytes.
type headroom struct {
	max     uint64
	floor   int
	adjusts atomic.Int64 // collections it has followed, for tests

	mu      sync.Mutex
	gogc    int // what it set last; 100 at first
	stopped bool
	told    bool // whether it has logged that it lowers GOGC
	sample  []metrics.Sample
}

// startHeadroom starts following the heap, unless getenv gives GOGC or GOMEMLIMIT; it returns
// nil then.
func startHeadroom(getenv func(string) string, max uint64, floor int) *headroom {
	if getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" {
		return nil
	}
	h := &headroom{max: max, floor: floor, gogc: 100, sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	h.arm()
	return h
}

// percent returns the GOGC that gives a heap of live bytes a headroom of at most h.max, between
// h.floor and 100.
func (h *headroom) percent(live uint64) int {
	if live <= h.max {
		return 100
	}
	return max(int(h.max*100/live), h.floor)
}

// sentinel is an object whose finalizer runs after each collection. It holds a pointer and is
// larger than 16 bytes so that it is never a tiny allocation, whose finalizer may never run.
type sentinel struct {
	h    *headroom
	_pad [2]uintptr
}

// arm allocates a sentinel that adjust is called for once it is collected.
func (h *headroom) arm() {
	runtime.SetFinalizer(&sentinel{h: h}, func(s *sentinel) { s.h.adjust() })
}

// adjust runs after a collection, on the finalizer goroutine.
func (h *headroom) adjust() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		return
	}
	metrics.Read(h.sample)
	live := uint64(0)
	if h.sample[0].Value.Kind() == metrics.KindUint64 {
		live = h.sample[0].Value.Uint64()
	}
	if p := h.percent(live); p != h.gogc {
		debug.SetGCPercent(p)
		if p < 100 && !h.told {
			clog.Infof("%d MB of live heap: GOGC %d from now on, so that the garbage collector's headroom stays at %d MB (GOGC or GOMEMLIMIT in the environment turn this off)",
				live>>20, p, h.max>>20)
			h.told = true
		}
		h.gogc = p
	}
	h.adjusts.Add(1)
	h.arm()
}

// stop stops following the heap and gives GOGC back its default.
func (h *headroom) stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopped = true
	debug.SetGCPercent(100)
}
