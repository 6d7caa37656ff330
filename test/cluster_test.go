package test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/steerdns/steerdns/plugin/steer/admin"
)

var (
	steerdnsOnce sync.Once
	steerdnsBin  string
	steerdnsErr  error
)

// steerdnsPath builds cmd/steerdns once per test process and returns its path.
func steerdnsPath(t testing.TB) string {
	t.Helper()
	steerdnsOnce.Do(func() {
		dir, err := os.MkdirTemp("", "steerdns")
		if err != nil {
			steerdnsErr = err
			return
		}
		steerdnsBin = filepath.Join(dir, "steerdns")
		out, err := exec.Command("go", "build", "-race", "-o", steerdnsBin, "../cmd/steerdns").CombinedOutput()
		if err != nil {
			steerdnsErr = fmt.Errorf("%v\n%s", err, out)
		}
	})
	if steerdnsErr != nil {
		t.Fatalf("building steerdns: %v", steerdnsErr)
	}
	return steerdnsBin
}

// clusterNode is one steerdns process of a test cluster, on a loopback address of its own
// (DNS, admin API, gossip and probe source).
type clusterNode struct {
	name, ip, dir      string
	dns, admin, gossip string
	metrics            string
	corefile           string
	cmd                *exec.Cmd
	out                *syncBuffer
	exited             chan struct{}
}

// freePortOn returns a port free on ip for TCP and UDP.
func freePortOn(t testing.TB, ip string) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", ip+":0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("%s:%d", ip, port))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// newClusterNode prepares a node; extra goes into the cluster block, policy into its folder.
func newClusterNode(t *testing.T, name, ip, policy, extra string) *clusterNode {
	n := &clusterNode{name: name, ip: ip, dir: t.TempDir()}
	n.dns = fmt.Sprintf("%s:%d", ip, freePortOn(t, ip))
	n.admin = fmt.Sprintf("%s:%d", ip, freePortOn(t, ip))
	n.gossip = fmt.Sprintf("%s:%d", ip, freePortOn(t, ip))
	n.metrics = fmt.Sprintf("%s:%d", ip, freePortOn(t, ip))
	os.MkdirAll(filepath.Join(n.dir, "zones"), 0o755)
	writeFile(t, filepath.Join(n.dir, "zones"), "example.com.yaml", policy)
	_, port, _ := net.SplitHostPort(n.dns)
	n.corefile = fmt.Sprintf(`example.com:%s {
    bind %s
    nsid %s
    prometheus %s
    steer zones {
        admin %s
        probe_source %s
        cluster {
            name %s
            bind %s
%s
        }
    }
}
`, port, ip, name, n.metrics, n.admin, ip, name, n.gossip, extra)
	writeFile(t, n.dir, "Corefile", n.corefile)
	t.Cleanup(n.stop)
	return n
}

func (n *clusterNode) start(t *testing.T) {
	t.Helper()
	n.out = &syncBuffer{}
	n.cmd = exec.Command(steerdnsPath(t), "-conf", "Corefile")
	n.cmd.Dir = n.dir
	n.cmd.Stdout, n.cmd.Stderr = n.out, n.out
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.exited = make(chan struct{})
	go func() { n.cmd.Wait(); close(n.exited) }()
	eventuallyDump(t, 60*time.Second, n.name+" serves DNS", func() bool {
		select {
		case <-n.exited:
			t.Fatalf("%s exited:\n%s", n.name, n.out)
		default:
		}
		c := &dns.Client{Timeout: 200 * time.Millisecond}
		m := new(dns.Msg)
		m.SetQuestion("example.com.", dns.TypeSOA)
		r, _, err := c.Exchange(m, n.dns)
		return err == nil && r.Rcode == dns.RcodeSuccess
	}, n.out.String)
}

// stop ends the process as systemd would (SIGTERM) and waits for it.
func (n *clusterNode) stop() {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	select {
	case <-n.exited:
		return
	default:
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(10 * time.Second):
		n.cmd.Process.Kill()
		<-n.exited
	}
}

func (n *clusterNode) status(t testing.TB) *admin.Status {
	t.Helper()
	resp, err := http.Get("http://" + n.admin + "/v1/status")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var st admin.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("%s: /v1/status: %v", n.name, err)
	}
	return &st
}

// answer returns the A records of name on n, sorted, or the error.
func (n *clusterNode) answer(t testing.TB, name string) string {
	t.Helper()
	c := &dns.Client{Timeout: time.Second}
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	r, _, err := c.Exchange(m, n.dns)
	if err != nil {
		return err.Error()
	}
	return strings.Join(answers(r), ",")
}

func (n *clusterNode) soa(t testing.TB) uint32 {
	t.Helper()
	r := ask(t, "udp", n.dns, "example.com.", dns.TypeSOA)
	if len(r.Answer) != 1 {
		t.Fatalf("%s: SOA: %v", n.name, r)
	}
	return r.Answer[0].(*dns.SOA).Serial
}

// endpoint returns the status of the endpoint of service's first pool.
func endpointOf(st *admin.Status, service string) *admin.Endpoint {
	if st == nil {
		return nil
	}
	for _, z := range st.Zones {
		for _, s := range z.Services {
			if s.Name == service && len(s.Pools) > 0 && len(s.Pools[0].Endpoints) > 0 {
				return &s.Pools[0].Endpoints[0]
			}
		}
	}
	return nil
}

func aliveMembers(st *admin.Status) int {
	if st == nil || st.Cluster == nil {
		return 0
	}
	c := 0
	for _, m := range st.Cluster.Members {
		if m.State == "alive" {
			c++
		}
	}
	return c
}

// selectiveBackend answers 200, except 503 to probes from refuse.
type selectiveBackend struct {
	l      net.Listener
	refuse string
	mu     sync.Mutex
	from   map[string]int
}

func newSelectiveBackend(t *testing.T, refuse string) *selectiveBackend {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &selectiveBackend{l: l, refuse: refuse, from: map[string]int{}}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		b.mu.Lock()
		b.from[host]++
		b.mu.Unlock()
		if host == b.refuse {
			http.Error(w, "not from you", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return b
}

func (b *selectiveBackend) hitsFrom(ip string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.from[ip]
}

const clusterPolicy = `zone: example.com.
ns: [ns1.example.com.]
records: |
  ns1 A 192.0.2.53
checks:
  majority: {type: http, port: %[1]d, path: /majority, interval: 1s, timeout: 500ms, fast_interval: 250ms, rise: 1, fall: 2}
  any: {type: http, port: %[1]d, path: /any, interval: 1s, timeout: 500ms, fast_interval: 250ms, rise: 1, fall: 2, quorum: any}
  real: {type: http, port: %[2]d, path: /, interval: 1s, timeout: 500ms, fast_interval: 250ms, rise: 1, fall: 2}
services:
  maj:
    check: none
    pools:
      - {region: one, endpoints: [{address: 127.0.0.1, check: majority}]}
      - {region: two, endpoints: [192.0.2.99]}
  any:
    check: none
    pools:
      - {region: one, endpoints: [{address: 127.0.0.1, check: any}]}
      - {region: two, endpoints: [192.0.2.99]}
  real:
    check: none
    pools:
      - {region: one, endpoints: [{address: 127.0.0.1, check: real}]}
      - {region: two, endpoints: [192.0.2.99]}
`

// TestCluster runs three steerdns processes on loopback addresses of their own, each probing
// from its own address, with a backend that refuses node b's probes.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts steerdns processes")
	}
	base := fmt.Sprintf("127.%d.%d.", 30+os.Getpid()%60, rand.IntN(250))
	ips := []string{base + "1", base + "2", base + "3", base + "4"}
	sel := newSelectiveBackend(t, ips[1])
	real := newBackend(t)
	policy := fmt.Sprintf(clusterPolicy, sel.l.Addr().(*net.TCPAddr).Port, real.Port)
	dir := t.TempDir()
	secret := writeFile(t, dir, "gossip.key", base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef")))
	a := newClusterNode(t, "a", ips[0], policy, "            secret_file "+secret)
	join := "            secret_file " + secret + "\n            join " + a.gossip
	b := newClusterNode(t, "b", ips[1], policy, join)
	c := newClusterNode(t, "c", ips[2], policy, join)
	nodes := []*clusterNode{a, b, c}
	for _, n := range nodes {
		n.start(t)
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			if strings.Contains(n.out.String(), "DATA RACE") {
				t.Errorf("%s (built with -race) reported a data race", n.name)
			}
		}
		if t.Failed() {
			for _, n := range nodes {
				out := n.out.String()
				t.Logf("%s's output (last 4 KB):\n%s", n.name, out[max(0, len(out)-4096):])
			}
		}
	})
	for _, n := range nodes {
		eventuallyDump(t, 20*time.Second, n.name+" sees three members alive", func() bool { return aliveMembers(n.status(t)) == 3 }, n.out.String)
	}

	t.Run("probe source", func(t *testing.T) {
		for _, n := range nodes {
			eventually(t, 10*time.Second, "a probe from "+n.ip, func() bool { return sel.hitsFrom(n.ip) > 0 })
		}
	})

	t.Run("majority: one node's failure moves nothing", func(t *testing.T) {
		// b sees the target down, and a and c hear it.
		for _, n := range nodes {
			eventuallyDump(t, 15*time.Second, n.name+" hears b's down observation", func() bool {
				ep := endpointOf(n.status(t), "maj")
				if ep == nil {
					return false
				}
				for _, o := range ep.Nodes {
					if o.Node == "b" && o.State == "down" && o.Fresh {
						return ep.Quorum == "1 of 3 down, 2 needed"
					}
				}
				return false
			}, n.out.String)
		}
		for _, n := range nodes {
			if got := n.answer(t, "maj.example.com."); got != "127.0.0.1" {
				t.Errorf("%s answers maj with %s; with majority, b alone seeing it down moves nothing", n.name, got)
			}
			if ep := endpointOf(n.status(t), "maj"); ep.State != "up" {
				t.Errorf("%s: maj endpoint %+v", n.name, ep)
			}
		}
	})

	t.Run("any: one node's failure moves every node", func(t *testing.T) {
		for _, n := range nodes {
			eventually(t, 15*time.Second, n.name+" moves any", func() bool { return n.answer(t, "any.example.com.") == "192.0.2.99" })
		}
		if ep := endpointOf(a.status(t), "any"); ep.Source != "cluster" || ep.State != "down" {
			t.Errorf("a: any endpoint %+v, want down by the cluster", ep)
		}
	})

	t.Run("a real failure moves every node", func(t *testing.T) {
		for _, n := range nodes {
			if got := n.answer(t, "real.example.com."); got != "127.0.0.1" {
				t.Fatalf("%s answers real with %s before the failure", n.name, got)
			}
		}
		real.Stop()
		at := time.Now()
		// interval 1s + (fall-1) * 250ms + timeout 500ms, plus gossip.
		for _, n := range nodes {
			eventually(t, 10*time.Second, n.name+" moves real", func() bool { return n.answer(t, "real.example.com.") == "192.0.2.99" })
		}
		t.Logf("every node moved %v after the backend stopped", time.Since(at).Round(10*time.Millisecond))
		real.Start()
		for _, n := range nodes {
			eventually(t, 10*time.Second, n.name+" returns real", func() bool { return n.answer(t, "real.example.com.") == "127.0.0.1" })
		}
	})

	var drain admin.Override
	t.Run("a drain on one node reaches the others", func(t *testing.T) {
		body := strings.NewReader(`{"target": "pool:example.com./real/one", "action": "drain", "ttl": "1h", "reason": "test", "by": "cluster_test"}`)
		resp, err := http.Post("http://"+a.admin+"/v1/overrides", "application/json", body)
		if err != nil {
			t.Fatal(err)
		}
		json.NewDecoder(resp.Body).Decode(&drain)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
			t.Fatalf("POST /v1/overrides: %d %+v", resp.StatusCode, drain)
		}
		for _, n := range nodes {
			eventually(t, 5*time.Second, n.name+" drains real", func() bool { return n.answer(t, "real.example.com.") == "192.0.2.99" })
			st := n.status(t)
			if len(st.Overrides) != 1 || st.Overrides[0].ID != drain.ID {
				t.Errorf("%s: overrides %+v, want %s", n.name, st.Overrides, drain.ID)
			}
		}
	})

	t.Run("a restarted node gets state and overrides by push/pull", func(t *testing.T) {
		c.stop()
		eventually(t, 15*time.Second, "a sees c leave", func() bool { return aliveMembers(a.status(t)) == 2 })
		c.start(t)
		eventuallyDump(t, 10*time.Second, "c has the drain", func() bool {
			st := c.status(t)
			return st != nil && len(st.Overrides) == 1 && st.Overrides[0].ID == drain.ID
		}, c.out.String)
		if got := c.answer(t, "real.example.com."); got != "192.0.2.99" {
			t.Errorf("restarted c answers real with %s, want the drained pool's backup", got)
		}
		eventually(t, 10*time.Second, "c has every node's observations", func() bool {
			ep := endpointOf(c.status(t), "maj")
			return ep != nil && len(ep.Nodes) == 3
		})
	})

	t.Run("identical files serve identical SOA records", func(t *testing.T) {
		// c loaded its file last, at another second: every node takes the highest serial.
		eventuallyDump(t, 10*time.Second, "one serial", func() bool {
			s := a.soa(t)
			return s == b.soa(t) && s == c.soa(t)
		}, func() string { return fmt.Sprintf("serials: a %d, b %d, c %d", a.soa(t), b.soa(t), c.soa(t)) })
		st := a.status(t)
		if len(st.Cluster.Differ) != 0 {
			t.Errorf("a says %v differ", st.Cluster.Differ)
		}
	})

	t.Run("the status and metrics show members; a changed file shows", func(t *testing.T) {
		writeFile(t, filepath.Join(c.dir, "zones"), "example.com.yaml", policy+"  extra:\n    pools:\n      - {region: one, endpoints: [192.0.2.7]}\n")
		eventually(t, 10*time.Second, "a sees c's files differ", func() bool {
			st := a.status(t)
			return st.Cluster != nil && len(st.Cluster.Differ) == 1 && st.Cluster.Differ[0] == "c"
		})
		resp, err := http.Get("http://" + a.metrics + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		text, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{`coredns_steer_cluster_members{state="alive"} 3`, `coredns_steer_cluster_view{mode="cluster"} 1`, `coredns_steer_gossip_messages_total{direction="in"}`} {
			if !strings.Contains(string(text), want) {
				t.Errorf("a's metrics lack %s", want)
			}
		}
	})

	t.Run("the status page shows the members", func(t *testing.T) {
		dom := chromium(t, "http://"+a.admin+"/", "--dump-dom")
		for _, want := range []string{`id="cluster-mode" data-mode="cluster"`, `data-member="a"`, `data-member="b"`, `data-member="c"`,
			`<span class="error">differs</span>`, `cluster: 1 of 3 down, 2 needed`} {
			if !strings.Contains(dom, want) {
				t.Errorf("a's status page lacks %s", want)
			}
		}
	})

	t.Run("a wrong secret cannot join", func(t *testing.T) {
		bad := writeFile(t, dir, "bad.key", base64.StdEncoding.EncodeToString([]byte("fedcba9876543210")))
		d := newClusterNode(t, "d", ips[3], policy, "            secret_file "+bad+"\n            join "+a.gossip)
		d.start(t)
		eventuallyDump(t, 15*time.Second, "d says it cannot join", func() bool { return strings.Contains(d.out.String(), "cannot join") }, d.out.String)
		if n := aliveMembers(d.status(t)); n != 1 {
			t.Errorf("d sees %d members", n)
		}
		for _, m := range a.status(t).Cluster.Members {
			if m.Name == "d" {
				t.Errorf("a lists d: %+v", m)
			}
		}
	})
}
