package zones

import (
	"errors"
	"reflect"
	"testing"

	"github.com/miekg/dns"
)

// FuzzDecode feeds Decode arbitrary files. Decode must never panic; it returns either a policy
// file or errors that name the file and a line inside it. A policy file that decodes must
// compile, with its SOA and NS set, and bind. The parallel decode must agree with it.
//
// The seeds are in testdata/fuzz/FuzzDecode: the SPEC example and files of testdata/broken.
// Run: go test -run x -fuzz FuzzDecode -fuzztime 60s ./zones/
func FuzzDecode(f *testing.F) {
	f.Add([]byte("zone: example.com.\nns: [ns1.example.com.]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		const file = "fuzz.yaml"
		pf, err := Decode(file, data)
		// The parallel decode, cutting at every key, must refuse the file or agree.
		if par := decodeParallel(file, data, 1); par != nil && (err != nil || !reflect.DeepEqual(par, pf)) {
			t.Fatalf("parallel decode differs: %+v; sequential: %+v, %v", par, pf, err)
		}
		if err != nil {
			if pf != nil {
				t.Fatal("Decode returned a policy file and an error")
			}
			var es Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("error %T %v is not a non-empty Errors", err, err)
			}
			lines := yamlLines(data)
			for _, e := range es {
				if e.File != file || e.Line < 0 || e.Line > lines || e.Msg == "" {
					t.Fatalf("bad error %+v (file has %d lines)", e, lines)
				}
			}
			return
		}
		if pf.Zone == "" || len(pf.NS) == 0 {
			t.Fatalf("decoded without zone or ns: %+v", pf)
		}
		z := Compile(pf, "hash", 1)
		soa := z.Static.Apex.SOA
		if soa == nil || soa.Hdr.Name != pf.Zone || soa.Serial != 1 {
			t.Fatalf("compiled zone has SOA %v", soa)
		}
		if len(z.Static.Apex.NS) != len(pf.NS) {
			t.Fatalf("apex NS %v, want %v", z.Static.Apex.NS, pf.NS)
		}
		if len(z.NegSOA) != 1 || z.NegSOA[0].Header().Ttl != min(pf.TTL, pf.SOA.MinTTL) {
			t.Fatalf("negative SOA %v", z.NegSOA)
		}
		if len(z.Services) != len(pf.Services) {
			t.Fatalf("%d services compiled from %d", len(z.Services), len(pf.Services))
		}
		for name, s := range z.Services {
			if !dns.IsSubDomain(z.Origin, name) || len(s.Pools) == 0 {
				t.Fatalf("service %s: %d pools", name, len(s.Pools))
			}
			for _, p := range s.Pools {
				if len(p.Endpoints) == 0 || p.MinHealthy < 1 || p.MinHealthy > len(p.Endpoints) {
					t.Fatalf("service %s: pool of %d endpoints needs %d", name, len(p.Endpoints), p.MinHealthy)
				}
				for i, ep := range p.Endpoints {
					if ep.RR == nil || p.Record(i, Degraded) == nil || (ep.Target != NoTarget && int(ep.Target) >= len(z.Targets)) {
						t.Fatalf("service %s: endpoint %+v not prepared", name, ep)
					}
				}
			}
		}
	})
}
