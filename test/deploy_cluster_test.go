package test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/coredns/caddy"
	"github.com/coredns/caddy/caddyfile"
	"github.com/miekg/dns"
	"go.yaml.in/yaml/v3"

	// The manifest's Corefile has a health block, as cmd/steerdns ships it.
	_ "github.com/coredns/coredns/plugin/health"

	"github.com/steerdns/steerdns/plugin/steer/admin"
)

// clusterManifest is the Kubernetes manifest of a steerdns cluster.
const clusterManifest = "../deploy/kubernetes/steerdns-cluster.yaml"

// The parts of Kubernetes objects the test reads (decoded leniently: the rest is ignored).
type k8sObject struct {
	APIVersion string            `yaml:"apiVersion"`
	Kind       string            `yaml:"kind"`
	Metadata   k8sMeta           `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Spec       k8sSpec           `yaml:"spec"`
}

type k8sMeta struct {
	Name      string            `yaml:"name"`
	Namespace string            `yaml:"namespace"`
	Labels    map[string]string `yaml:"labels"`
}

type k8sSpec struct {
	// Service
	ClusterIP                string    `yaml:"clusterIP"`
	PublishNotReadyAddresses bool      `yaml:"publishNotReadyAddresses"`
	Ports                    []k8sPort `yaml:"ports"`
	// Service: labels; StatefulSet, PodDisruptionBudget: {matchLabels: labels}.
	Selector map[string]any `yaml:"selector"`
	// StatefulSet
	ServiceName string `yaml:"serviceName"`
	Replicas    int    `yaml:"replicas"`
	Template    struct {
		Metadata k8sMeta    `yaml:"metadata"`
		Spec     k8sPodSpec `yaml:"spec"`
	} `yaml:"template"`
	VolumeClaimTemplates []k8sClaim `yaml:"volumeClaimTemplates"`
	// PodDisruptionBudget
	MaxUnavailable *int `yaml:"maxUnavailable"`
}

type k8sPort struct {
	Name          string `yaml:"name"`
	Port          int    `yaml:"port"`
	ContainerPort int    `yaml:"containerPort"`
	Protocol      string `yaml:"protocol"`
}

type k8sPodSpec struct {
	Affinity struct {
		PodAntiAffinity struct {
			Preferred []struct {
				Weight int `yaml:"weight"`
				Term   struct {
					TopologyKey   string `yaml:"topologyKey"`
					LabelSelector struct {
						MatchLabels map[string]string `yaml:"matchLabels"`
					} `yaml:"labelSelector"`
				} `yaml:"podAffinityTerm"`
			} `yaml:"preferredDuringSchedulingIgnoredDuringExecution"`
		} `yaml:"podAntiAffinity"`
	} `yaml:"affinity"`
	Containers []struct {
		Name string   `yaml:"name"`
		Args []string `yaml:"args"`
		Env  []struct {
			Name      string `yaml:"name"`
			ValueFrom struct {
				FieldRef struct {
					FieldPath string `yaml:"fieldPath"`
				} `yaml:"fieldRef"`
			} `yaml:"valueFrom"`
		} `yaml:"env"`
		Ports        []k8sPort `yaml:"ports"`
		VolumeMounts []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
			ReadOnly  bool   `yaml:"readOnly"`
		} `yaml:"volumeMounts"`
	} `yaml:"containers"`
	Volumes []k8sVolume `yaml:"volumes"`
}

type k8sClaim struct {
	Metadata k8sMeta `yaml:"metadata"`
	Spec     struct {
		AccessModes []string `yaml:"accessModes"`
	} `yaml:"spec"`
}

type k8sVolume struct {
	Name      string `yaml:"name"`
	ConfigMap *struct {
		Name string `yaml:"name"`
	} `yaml:"configMap"`
	Secret *struct {
		SecretName string `yaml:"secretName"`
	} `yaml:"secret"`
}

// selects returns the labels a selector selects.
func (s k8sSpec) selects() map[string]string {
	m := s.Selector
	if ml, ok := m["matchLabels"].(map[string]any); ok {
		m = ml
	}
	out := map[string]string{}
	for k, v := range m {
		out[k] = fmt.Sprint(v)
	}
	return out
}

// matches reports whether labels has every label of sel (and sel is not empty).
func matches(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return len(sel) > 0
}

// readManifest decodes every document of a multi-document YAML file.
func readManifest(t *testing.T, file string) []k8sObject {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var objs []k8sObject
	for {
		var o k8sObject
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: document %d: %v", file, len(objs)+1, err)
		}
		if o.Kind == "" {
			t.Fatalf("%s: document %d has no kind", file, len(objs)+1)
		}
		objs = append(objs, o)
	}
	return objs
}

// The values the downward API gives the sample pod; POD_IP is this process's loopback address
// (see harness_test.go), so that the pod's cluster node gossips on loopback.
const (
	samplePod       = "steerdns-0"
	sampleNamespace = "steerdns"
)

// TestDeployClusterManifest checks the Kubernetes manifest of a three-node cluster: the
// objects name each other consistently, and its Corefile, with the environment a pod gets
// from the downward API and the files its volumes would hold, starts a steerdns cluster node
// that serves the manifest's policy file.
func TestDeployClusterManifest(t *testing.T) {
	objs := readManifest(t, clusterManifest)
	find := func(kind, name string) *k8sObject {
		for i := range objs {
			if objs[i].Kind == kind && objs[i].Metadata.Name == name {
				return &objs[i]
			}
		}
		return nil
	}
	var sts *k8sObject
	var services []*k8sObject
	var pdbs []*k8sObject
	for i := range objs {
		o := &objs[i]
		if o.Metadata.Namespace != "" {
			t.Errorf("%s %s sets namespace %q: the manifest is applied with -n", o.Kind, o.Metadata.Name, o.Metadata.Namespace)
		}
		switch o.Kind {
		case "StatefulSet":
			if sts != nil {
				t.Fatal("two StatefulSets")
			}
			sts = o
		case "Service":
			services = append(services, o)
		case "PodDisruptionBudget":
			pdbs = append(pdbs, o)
		}
	}
	if sts == nil {
		t.Fatal("no StatefulSet")
	}
	podLabels := sts.Spec.Template.Metadata.Labels
	if sts.Spec.Replicas != 3 {
		t.Errorf("StatefulSet replicas %d, want 3", sts.Spec.Replicas)
	}
	if !matches(sts.Spec.selects(), podLabels) {
		t.Errorf("StatefulSet selector %v does not select its pods %v", sts.Spec.selects(), podLabels)
	}

	// The headless Service is the StatefulSet's, and the gossip's seed list.
	gossip := find("Service", sts.Spec.ServiceName)
	if gossip == nil {
		t.Fatalf("StatefulSet serviceName %q names no Service of the manifest", sts.Spec.ServiceName)
	}
	if gossip.Spec.ClusterIP != "None" || !gossip.Spec.PublishNotReadyAddresses {
		t.Errorf("Service %s: clusterIP %q publishNotReadyAddresses %t, want None and true", gossip.Metadata.Name, gossip.Spec.ClusterIP, gossip.Spec.PublishNotReadyAddresses)
	}
	hasPorts := func(what string, ports []k8sPort, port int, protos ...string) {
		t.Helper()
		for _, proto := range protos {
			if !slices.ContainsFunc(ports, func(p k8sPort) bool {
				return (p.Port == port || p.ContainerPort == port) && p.Protocol == proto
			}) {
				t.Errorf("%s: no port %d/%s in %+v", what, port, proto, ports)
			}
		}
	}
	hasPorts("Service "+gossip.Metadata.Name, gossip.Spec.Ports, 7946, "TCP", "UDP")

	// A Service for DNS, not headless.
	var dnsSvc *k8sObject
	for _, s := range services {
		if !matches(s.Spec.selects(), podLabels) {
			t.Errorf("Service %s selector %v does not select the pods %v", s.Metadata.Name, s.Spec.selects(), podLabels)
		}
		if s != gossip {
			dnsSvc = s
		}
	}
	if dnsSvc == nil || dnsSvc.Spec.ClusterIP == "None" {
		t.Fatal("no DNS Service with a cluster IP")
	}
	hasPorts("Service "+dnsSvc.Metadata.Name, dnsSvc.Spec.Ports, 53, "TCP", "UDP")

	if len(pdbs) != 1 || pdbs[0].Spec.MaxUnavailable == nil || *pdbs[0].Spec.MaxUnavailable != 1 || !matches(pdbs[0].Spec.selects(), podLabels) {
		t.Errorf("want one PodDisruptionBudget with maxUnavailable 1 selecting the pods, have %+v", pdbs)
	}

	pod := sts.Spec.Template.Spec
	anti := pod.Affinity.PodAntiAffinity.Preferred
	if len(anti) == 0 || anti[0].Term.TopologyKey != "kubernetes.io/hostname" || !matches(anti[0].Term.LabelSelector.MatchLabels, podLabels) {
		t.Errorf("podAntiAffinity: want a preferred term on kubernetes.io/hostname selecting the pods, have %+v", anti)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	hasPorts("container", c.Ports, 7946, "TCP", "UDP")
	hasPorts("container", c.Ports, 53, "TCP", "UDP")

	// The pod's files: every mount is a volume or a claim template, every ConfigMap and Secret
	// is in the manifest. Each is written where the test's "pod" sees it: root + mountPath.
	root := t.TempDir()
	local := func(p string) string { return filepath.Join(root, filepath.FromSlash(p)) }
	mounts := map[string]string{}   // mountPath -> what it holds: "configmap NAME", "secret NAME", "claim NAME"
	secretOf := map[string]string{} // mountPath -> Secret name
	var replace []string            // mountPath -> its local path, for the Corefile
	for _, m := range c.VolumeMounts {
		if err := os.MkdirAll(local(m.MountPath), 0o755); err != nil {
			t.Fatal(err)
		}
		replace = append(replace, m.MountPath, local(m.MountPath))
		if slices.ContainsFunc(sts.Spec.VolumeClaimTemplates, func(v k8sClaim) bool { return v.Metadata.Name == m.Name }) {
			mounts[m.MountPath] = "claim " + m.Name
			continue
		}
		i := slices.IndexFunc(pod.Volumes, func(v k8sVolume) bool { return v.Name == m.Name })
		if i < 0 {
			t.Errorf("volumeMount %s names no volume and no volumeClaimTemplate", m.Name)
			continue
		}
		v := pod.Volumes[i]
		var obj *k8sObject
		switch {
		case v.ConfigMap != nil:
			obj = find("ConfigMap", v.ConfigMap.Name)
			mounts[m.MountPath] = "configmap " + v.ConfigMap.Name
		case v.Secret != nil:
			obj = find("Secret", v.Secret.SecretName)
			mounts[m.MountPath] = "secret " + v.Secret.SecretName
			secretOf[m.MountPath] = v.Secret.SecretName
		default:
			t.Errorf("volume %s is neither a ConfigMap nor a Secret", v.Name)
			continue
		}
		if obj == nil {
			t.Errorf("volume %s: %s is not in the manifest", v.Name, mounts[m.MountPath])
			continue
		}
		if !m.ReadOnly {
			t.Errorf("volumeMount %s (%s) is not readOnly", m.Name, mounts[m.MountPath])
		}
		for k, val := range obj.Data {
			writeFile(t, local(m.MountPath), k, val)
		}
		for k, val := range obj.StringData {
			if val != "" {
				t.Errorf("Secret %s key %s is not an empty placeholder", obj.Metadata.Name, k)
			}
			writeFile(t, local(m.MountPath), k, val)
		}
	}
	// mountOf returns the mount a file of the Corefile is under.
	mountOf := func(what, file string) string {
		t.Helper()
		for mp := range mounts {
			if strings.HasPrefix(file, mp+"/") || file == mp {
				return mp
			}
		}
		t.Fatalf("%s %s is under no volumeMount of the container (%v)", what, file, mounts)
		return ""
	}

	// The Corefile: -conf names a file of a mounted ConfigMap.
	i := slices.Index(c.Args, "-conf")
	if i < 0 || i+1 >= len(c.Args) {
		t.Fatalf("container args %q have no -conf FILE", c.Args)
	}
	conf := c.Args[i+1]
	if m := mountOf("-conf", conf); !strings.HasPrefix(mounts[m], "configmap ") {
		t.Fatalf("-conf %s is in %s, not a ConfigMap", conf, mounts[m])
	}
	raw, err := os.ReadFile(local(conf))
	if err != nil {
		t.Fatalf("-conf %s: %v (not a key of its ConfigMap?)", conf, err)
	}
	corefile := string(raw)

	// Every {$VAR} of the Corefile is set in the container from the downward API, and the ones
	// the cluster needs are what they should be.
	want := map[string]string{"POD_NAME": "metadata.name", "POD_IP": "status.podIP", "POD_NAMESPACE": "metadata.namespace"}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.ValueFrom.FieldRef.FieldPath
	}
	uncommented := regexp.MustCompile(`(?m)#.*$`).ReplaceAllString(corefile, "")
	seen := map[string]bool{}
	for _, m := range regexp.MustCompile(`\{\$([A-Za-z0-9_]+)\}`).FindAllStringSubmatch(uncommented, -1) {
		if seen[m[1]] {
			continue
		}
		seen[m[1]] = true
		if env[m[1]] == "" {
			t.Errorf("the Corefile uses {$%s}, which the container's env does not set from the downward API", m[1])
		} else if w, ok := want[m[1]]; ok && env[m[1]] != w {
			t.Errorf("env %s is fieldRef %s, want %s", m[1], env[m[1]], w)
		}
	}
	// The environment of the sample pod, which CoreDNS substitutes for {$VAR} when it parses.
	t.Setenv("POD_NAME", samplePod)
	t.Setenv("POD_IP", loopback)
	t.Setenv("POD_NAMESPACE", sampleNamespace)

	// The Corefile as CoreDNS's parser reads it: env substituted, one token per value.
	blocks, err := caddyfile.Parse("Corefile", strings.NewReader(corefile), nil)
	if err != nil || len(blocks) != 1 {
		t.Fatalf("Corefile: %d server blocks, %v", len(blocks), err)
	}
	// arg returns the arguments on the line of the first key in the tokens of directive dir.
	arg := func(dir, key string) []string {
		t.Helper()
		toks := blocks[0].Tokens[dir]
		for i, tk := range toks {
			if tk.Text == key && (i == 0 || toks[i-1].Line != tk.Line) {
				var out []string
				for _, a := range toks[i+1:] {
					if a.Line != tk.Line || a.Text == "{" {
						break
					}
					out = append(out, a.Text)
				}
				return out
			}
		}
		t.Fatalf("Corefile: no %s in %s", key, dir)
		return nil
	}
	if got := arg("nsid", "nsid"); !slices.Equal(got, []string{samplePod}) {
		t.Errorf("nsid %q, want the pod's name", got)
	}
	if got := arg("steer", "name"); !slices.Equal(got, []string{samplePod}) {
		t.Errorf("cluster name %q, want the pod's name", got)
	}
	if got := arg("steer", "bind"); !slices.Equal(got, []string{net.JoinHostPort(loopback, "7946")}) {
		t.Errorf("cluster bind %q, want POD_IP:7946", got)
	}
	if got := arg("steer", "probe_source"); !slices.Equal(got, []string{loopback}) {
		t.Errorf("probe_source %q, want POD_IP", got)
	}
	join := arg("steer", "join")
	if len(join) != 1 {
		t.Fatalf("join %q, want the headless Service's name", join)
	}
	if host, port, err := net.SplitHostPort(join[0]); err != nil || port != "7946" ||
		host != gossip.Metadata.Name+"."+sampleNamespace+".svc.cluster.local" {
		t.Errorf("join %s, want %s.%s.svc.cluster.local:7946 (the headless Service of the pod's namespace)", join[0], gossip.Metadata.Name, sampleNamespace)
	}
	// The files it names are in the right volumes.
	steerArgs := arg("steer", "steer")
	if len(steerArgs) != 1 || !strings.HasPrefix(mounts[mountOf("steer", strings.TrimSuffix(steerArgs[0], "/"))], "configmap ") {
		t.Errorf("steer %q: want the folder of a mounted ConfigMap", steerArgs)
	}
	if m := mountOf("state_dir", arg("steer", "state_dir")[0]); !strings.HasPrefix(mounts[m], "claim ") {
		t.Errorf("state_dir is on %s, want a volumeClaimTemplate", mounts[m])
	}
	keyFile := arg("steer", "secret_file")[0]
	tokenFile := arg("steer", "admin_token_file")[0]
	for what, f := range map[string]string{"secret_file": keyFile, "admin_token_file": tokenFile} {
		if m := mountOf(what, f); secretOf[m] == "" {
			t.Errorf("%s %s is in %s, not a Secret", what, f, mounts[m])
		} else if _, err := os.Stat(local(f)); err != nil {
			t.Errorf("%s %s is not a key of Secret %s", what, f, secretOf[m])
		}
	}
	if secretOf[mountOf("secret_file", keyFile)] == secretOf[mountOf("admin_token_file", tokenFile)] {
		t.Errorf("the gossip key and the admin token share a Secret")
	}

	// The Corefile made runnable here: the pod's paths under root, every listener on this
	// process's loopback address with a free port, and a seed that refuses (there are no other
	// pods; the Service's name does not resolve here).
	runnable := func() (corefile string, adminAddr, gossipAddr string) {
		t.Helper()
		c := strings.NewReplacer(replace...).Replace(string(raw))
		free := func() string { return strconv.Itoa(freePortOn(t, loopback)) }
		n := 0
		c = regexp.MustCompile(`(?m)^(\s*(?:admin|prometheus|ready|health)\s+):\d+\b`).ReplaceAllStringFunc(c, func(s string) string {
			n++
			j := strings.LastIndex(s, ":")
			addr := loopback + ":" + free()
			if strings.HasPrefix(strings.TrimSpace(s), "admin") {
				adminAddr = addr
			}
			return s[:j] + addr
		})
		if n != 4 || adminAddr == "" {
			t.Fatalf("Corefile: %d of admin, prometheus, ready and health on :PORT rewritten, want 4", n)
		}
		// health's lameduck would hold every stop of the test for its duration.
		c = regexp.MustCompile(`\blameduck \S+`).ReplaceAllString(c, "lameduck 1ms")
		gossipPort := free()
		gossipAddr = net.JoinHostPort(loopback, gossipPort)
		for _, r := range [][2]string{
			{".:53 {", ".:0 {\n    bind 127.0.0.1"},
			{"bind {$POD_IP}:7946", "bind {$POD_IP}:" + gossipPort},
			{"join " + gossip.Metadata.Name + ".{$POD_NAMESPACE}.svc.cluster.local:7946", "join {$POD_IP}:" + free()},
		} {
			if !strings.Contains(c, r[0]) {
				t.Fatalf("Corefile: no %q to rewrite", r[0])
			}
			c = strings.Replace(c, r[0], r[1], 1)
		}
		return c, adminAddr, gossipAddr
	}

	// As shipped, with its empty placeholders, the pod refuses to start: no known key or
	// token ever goes live.
	refused := func(what, want string) {
		t.Helper()
		cf, _, _ := runnable()
		startMu.Lock()
		inst, err := caddy.Start(input(strings.ReplaceAll(cf, "bind 127.0.0.1", "bind "+loopback)))
		startMu.Unlock()
		if err == nil {
			inst.Stop()
			inst.ShutdownCallbacks()
			t.Fatalf("started with %s", what)
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("with %s: %v, want an error with %q", what, err, want)
		}
	}
	refused("the empty token placeholder", "is empty: put the token in it")
	writeFile(t, filepath.Dir(local(tokenFile)), filepath.Base(tokenFile), "test-token\n")
	refused("the empty gossip key placeholder", "holds 0 bytes; a key is 16, 24 or 32 (make one with: head -c 32 /dev/urandom | base64)")
	key := make([]byte, 32)
	rand.Read(key)
	writeFile(t, filepath.Dir(local(keyFile)), filepath.Base(keyFile), base64.StdEncoding.EncodeToString(key)+"\n")

	cf, adminAddr, gossipAddr := runnable()
	s := start(t, cf)

	// It answers for the policy file's zone, authoritatively, with the pod's name as NSID.
	m := new(dns.Msg)
	m.SetQuestion("example.com.", dns.TypeSOA)
	m.SetEdns0(1232, false)
	m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID})
	r := exchange(t, "udp", s.UDP, m)
	if r.Rcode != dns.RcodeSuccess || !r.Authoritative || len(r.Answer) != 1 || r.Answer[0].Header().Rrtype != dns.TypeSOA {
		t.Errorf("SOA example.com.: %v", r)
	}
	nsid := ""
	if o := r.IsEdns0(); o != nil {
		for _, opt := range o.Option {
			if n, ok := opt.(*dns.EDNS0_NSID); ok {
				b, _ := hex.DecodeString(n.Nsid)
				nsid = string(b)
			}
		}
	}
	if nsid != samplePod {
		t.Errorf("NSID %q, want %q", nsid, samplePod)
	}

	// It is a cluster node named after the pod, gossiping on the pod's IP, and its policy
	// file loaded.
	resp, err := http.Get("http://" + adminAddr + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st admin.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if st.Node != samplePod || st.Cluster == nil || len(st.Cluster.Members) == 0 {
		t.Fatalf("status: node %q cluster %+v", st.Node, st.Cluster)
	}
	if self := st.Cluster.Members[0]; !self.Self || self.Name != samplePod || self.Address != gossipAddr || self.State != "alive" {
		t.Errorf("status: first member %+v, want itself, %s on %s", self, samplePod, gossipAddr)
	}
	if len(st.Files) == 0 {
		t.Error("status: no policy files")
	}
	for _, f := range st.Files {
		if f.Error != "" || filepath.Base(f.Path) != "example.com.yaml" {
			t.Errorf("policy file %s: %s", f.Path, f.Error)
		}
	}
}
