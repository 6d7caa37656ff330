package zones

import (
	"fmt"
	"strings"
	"testing"
)

func TestTooManyPools(t *testing.T) {
	var b strings.Builder
	b.WriteString("zone: example.com.\nns: [ns1.example.com.]\nservices:\n  www:\n    policy: weighted\n    pools:\n")
	for i := range MaxPools + 1 {
		fmt.Fprintf(&b, "      - endpoints: [192.0.2.%d]\n", i+1)
	}
	_, err := Decode("many.yaml", []byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "many.yaml:6: services.www.pools: has 65 pools; a service has at most 64") {
		t.Errorf("65 pools: %v", err)
	}
}
