package healthcheck

import (
	"strings"
	"testing"
)

func TestParseQuorum(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		text string // QuorumString(want)
	}{
		{"any", 1, "any"},
		{"1", 1, "any"},
		{"majority", QuorumMajority, "majority"},
		{"Majority", QuorumMajority, "majority"},
		{"all", QuorumAll, "all"},
		{" all ", QuorumAll, "all"},
		{"2", 2, "2"},
		{"1000", 1000, "1000"},
	} {
		got, err := ParseQuorum(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseQuorum(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
		if s := QuorumString(got); s != tc.text {
			t.Errorf("QuorumString(%d) = %q, want %q", got, s, tc.text)
		}
		if back, err := ParseQuorum(QuorumString(got)); err != nil || back != got {
			t.Errorf("ParseQuorum(QuorumString(%d)) = %d, %v", got, back, err)
		}
	}
	for _, in := range []string{"", "most", "0", "-1", "-2", "1001", "1.5", "0x2", "half"} {
		q, err := ParseQuorum(in)
		if err == nil {
			t.Errorf("ParseQuorum(%q) = %d, want an error", in, q)
			continue
		}
		if want := `quorum "` + in + `" is not any, majority, all or a number of nodes from 1 to 1000`; err.Error() != want {
			t.Errorf("ParseQuorum(%q): %q, want %q", in, err, want)
		}
	}
	if s := QuorumString(0); s != "default" {
		t.Errorf("QuorumString(0) = %q", s)
	}
}

// Quorum changes no probe: it is not in Key, Normalize keeps 0 (the cluster's default), and
// Validate refuses what ParseQuorum would.
func TestConfigQuorum(t *testing.T) {
	base := Config{Type: TypeHTTP}.Normalize()
	if base.Quorum != 0 {
		t.Errorf("Normalize set Quorum %d", base.Quorum)
	}
	for _, q := range []int{1, 3, QuorumMajority, QuorumAll, MaxQuorum} {
		c := base
		c.Quorum = q
		if c.Normalize().Quorum != q {
			t.Errorf("Normalize changed Quorum %d", q)
		}
		if c.Key() != base.Key() {
			t.Errorf("Quorum %d is in Key: %s", q, c.Key())
		}
		if field, err := c.Validate(); err != nil {
			t.Errorf("Quorum %d: %s: %v", q, field, err)
		}
	}
	for _, q := range []int{-3, MaxQuorum + 1} {
		c := base
		c.Quorum = q
		if field, err := c.Validate(); field != "quorum" || err == nil || !strings.Contains(err.Error(), "majority") {
			t.Errorf("Quorum %d: Validate = %q, %v", q, field, err)
		}
	}
}
