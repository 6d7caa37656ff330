package main

import (
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

func TestHeadroomPercent(t *testing.T) {
	h := &headroom{max: gcHeadroom, floor: gcFloor}
	for _, tc := range []struct {
		live uint64
		want int
	}{
		{0, 100},
		{100 << 20, 100},
		{256 << 20, 100},
		{512 << 20, 50},
		{600 << 20, 42},
		{1 << 30, 25},
		{8 << 30, 25}, // the floor: not collected back to back
	} {
		if got := h.percent(tc.live); got != tc.want {
			t.Errorf("%d MB live: GOGC %d, want %d", tc.live>>20, got, tc.want)
		}
	}
}

func TestHeadroomEnvironment(t *testing.T) {
	for _, env := range []string{"GOGC", "GOMEMLIMIT"} {
		getenv := func(k string) string {
			if k == env {
				return "50"
			}
			return ""
		}
		if h := startHeadroom(getenv, 1<<20, gcFloor); h != nil {
			h.stop()
			t.Errorf("%s set: the headroom is still followed", env)
		}
	}
}

// gogc reads GOGC as the runtime has it.
func gogc() uint64 {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestHeadroomFollowsHeap holds 64 MiB live with a headroom of 8 MiB: after a collection GOGC
// is lowered (to the floor, as 8/64 is below it), and once the heap is freed it is 100 again.
func TestHeadroomFollowsHeap(t *testing.T) {
	if gogc() != 100 {
		t.Skipf("GOGC is %d in this test process, not the default", gogc())
	}
	h := startHeadroom(func(string) string { return "" }, 8<<20, gcFloor)
	defer h.stop()
	wait := func(want uint64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for gogc() != want {
			if time.Now().After(deadline) {
				t.Fatalf("GOGC %d after %d collections followed, want %d", gogc(), h.adjusts.Load(), want)
			}
			runtime.GC()
			time.Sleep(time.Millisecond) // the finalizer goroutine runs after the collection
		}
	}
	live := make([][]byte, 64)
	for i := range live {
		live[i] = make([]byte, 1<<20)
	}
	wait(gcFloor)
	runtime.KeepAlive(live)
	live = nil
	wait(100)
}
