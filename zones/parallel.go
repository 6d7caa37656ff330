package zones

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/steerdns/steerdns/healthcheck"
	"go.yaml.in/yaml/v3"
)

// parallelMin is the size from which Decode first tries decodeParallel: below it one core
// decodes a file quickly enough.
const parallelMin = 1 << 20

// chunkBytes is about how much of a cut mapping one parallel task parses: small enough that
// the YAML trees in flight stay a few MB (a tree is ~25 times its text), large enough that the
// tasks' overhead does not show.
const chunkBytes = 64 << 10

// cutKeys are the top-level mappings that decodeParallel cuts into chunks: the two that grow
// with a zone, a service and, often, a check per steered name.
var cutKeys = [...]string{"checks", "services"}

// decodeParallel decodes a large policy file on every core, or returns nil when it cannot
// promise the result of the sequential decode; the caller then decodes sequentially.
//
// yaml.v3 builds one node tree on one core, and at 100,000 services that parse was most of the
// load, the tree alone half a GB; with a check per service, the checks mapping alone was a
// second of it. Here the checks and services mappings are cut, at the lines where their keys
// start, into chunks that yaml.v3 parses separately, each walked into checks or services and
// dropped as soon as it is parsed; the rest of the file (the "skeleton": the cut bodies blanked
// out, so that every line keeps its number) is parsed and walked as usual. A cut line can only
// be a key of its mapping, unless a quoted value or a flow collection is left open before it,
// and then the chunk before it fails to parse (see splitFile); so chunks that all parse hold
// exactly the entries the whole file would have.
//
// Any problem at all, YAML or policy, makes it return nil: errors are reported only by the
// sequential decode, which has the whole tree for their lines and orders them. A broken large
// file is thus decoded twice; a valid one, the case that matters, once on every core.
//
// chunk is the size of a chunk in bytes (chunkBytes; tests cut at every key with 1).
func decodeParallel(path string, data []byte, chunk int) *PolicyFile {
	sp := splitFile(data, chunk)
	if sp == nil {
		return nil
	}
	// The skeleton is small: one goroutine parses it while the chunks are parsed.
	d := &decoder{file: path}
	var pf *PolicyFile
	skeleton := make(chan struct{})
	go func() {
		defer close(skeleton)
		root := d.parse(sp.skeleton)
		if root == nil {
			return
		}
		for _, c := range sp.cuts {
			if !blanked(root, c.key, c.line) {
				return
			}
		}
		pf = d.walk(root)
	}()
	type task struct {
		key   string
		chunk []byte
	}
	var tasks []task
	for _, c := range sp.cuts {
		for _, ch := range c.chunks {
			tasks = append(tasks, task{c.key, ch})
		}
	}
	var failed atomic.Bool
	parts := make([]chunkPart, len(tasks))
	inParallel(len(tasks), 1, func(lo, hi int) {
		for i := lo; i < hi && !failed.Load(); i++ {
			var ok bool
			if parts[i], ok = decodeChunk(path, tasks[i].key, tasks[i].chunk); !ok {
				failed.Store(true)
			}
		}
	})
	<-skeleton
	if pf == nil || len(d.errs) > 0 || failed.Load() {
		return nil
	}
	services, checks := 0, 0
	for _, p := range parts {
		services += len(p.services)
		checks += len(p.checks)
	}
	if services > 0 {
		pf.Services = make([]*ServiceSpec, 0, services)
	}
	if checks > 0 {
		// The skeleton's checks mapping is blanked, so its walk left pf.Checks empty.
		pf.Checks = make(map[string]healthcheck.Config, checks)
	}
	for _, p := range parts {
		pf.Services = append(pf.Services, p.services...)
		for _, c := range p.checks {
			if _, dup := pf.Checks[c.name]; dup {
				return nil // a key twice, in two chunks
			}
			pf.Checks[c.name] = c.config
		}
	}
	if !d.validateParallel(pf) {
		return nil
	}
	return pf
}

// chunkPart is what one chunk decodes to: services or checks, in file order.
type chunkPart struct {
	services []*ServiceSpec
	checks   []namedCheck
}

type namedCheck struct {
	name   string
	config healthcheck.Config
}

// decodeChunk parses one chunk of the mapping key (checks or services) and walks it as the key
// of walk does. Lines in the chunk's tree count from the chunk's first line: they would only
// ever reach an error, and an error sends the file to the sequential decode.
func decodeChunk(path, key string, chunk []byte) (chunkPart, bool) {
	dec := yaml.NewDecoder(bytes.NewReader(chunk))
	var doc, extra yaml.Node
	if dec.Decode(&doc) != nil || !errors.Is(dec.Decode(&extra), io.EOF) {
		return chunkPart{}, false
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return chunkPart{}, false
	}
	// A chunk must be a block mapping, as the cut mapping is: a flow mapping or a list that
	// parses alone would not have parsed in place.
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode || root.Style&yaml.FlowStyle != 0 || root.Anchor != "" || root.Tag != "!!map" {
		return chunkPart{}, false
	}
	d := &decoder{file: path}
	var out chunkPart
	switch key {
	case "services":
		d.entries(root, key, func(k string, _, v *yaml.Node, p string) {
			out.services = append(out.services, d.service(k, v, p))
		})
	case "checks":
		d.checks(root, key, func(name string, c healthcheck.Config) {
			out.checks = append(out.checks, namedCheck{name, c})
		})
	default:
		return chunkPart{}, false
	}
	return out, len(d.errs) == 0
}

// blanked reports whether root, the skeleton's top node, is a block mapping whose key key, at
// column 1 of line, has the empty value left by blanking its body. Otherwise the line
// splitFile took for the key is something else (inside a quoted string, a flow collection),
// and the cut means nothing.
func blanked(root *yaml.Node, key string, line int) bool {
	if root.Kind != yaml.MappingNode || root.Style&yaml.FlowStyle != 0 {
		return false
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Line == line {
			return k.Kind == yaml.ScalarNode && k.Style == 0 && k.Value == key && k.Column == 1 &&
				v.Kind == yaml.ScalarNode && v.Style == 0 && v.Tag == "!!null" && v.Value == ""
		}
	}
	return false
}

// split is a policy file cut for decodeParallel.
type split struct {
	skeleton []byte // the file with the cut bodies blanked, line for line
	cuts     []cut  // in file order
}

// cut is one top-level mapping cut into chunks.
type cut struct {
	key        string
	line       int      // the line of the key
	start, end int      // the byte offsets of its body
	chunks     [][]byte // the body, cut where its keys start
}

// splitFile cuts the bodies of the top-level keys checks and services (each a line "checks:"
// or "services:" alone) at the lines where their keys start, or returns nil when it cuts
// neither. A mapping not laid out plainly enough to be sure of the cut (see cutBody) is not
// cut: it stays in the skeleton, which parses it whole.
//
// Some files are refused outright: line breaks other than LF (YAML also breaks lines at CR,
// NEL, LS and PS, which would shift the skeleton's lines), directives, and UTF-16.
func splitFile(data []byte, chunk int) *split {
	if len(data) > 0 && (data[0] == 0xfe || data[0] == 0xff) {
		return nil // UTF-16: the lines are not bytes
	}
	// A directive (%TAG) would give the chunks, parsed without it, other tags.
	if bytes.HasPrefix(data, []byte("%")) || bytes.Contains(data, []byte("\n%")) {
		return nil
	}
	if bytes.IndexByte(data, '\r') >= 0 || bytes.Contains(data, []byte("\u0085")) ||
		bytes.Contains(data, []byte("\u2028")) || bytes.Contains(data, []byte("\u2029")) {
		return nil
	}
	// Find the first line "checks:" and the first line "services:" (trailing spaces allowed).
	sp := &split{}
	var found [len(cutKeys)]bool
	for off, line := 0, 1; off < len(data); line++ {
		end := lineEnd(data, off)
		for i, key := range cutKeys {
			if l := data[off:end]; !found[i] && len(l) > len(key) && string(l[:len(key)]) == key && l[len(key)] == ':' &&
				len(bytes.TrimRight(l[len(key)+1:], " \n")) == 0 {
				found[i] = true
				if c, ok := cutBody(data, end, chunk); ok {
					c.key, c.line = key, line
					sp.cuts = append(sp.cuts, c)
				}
			}
		}
		off = end
	}
	if len(sp.cuts) == 0 {
		return nil
	}
	// The skeleton: the bodies' lines become empty lines, so that the lines after them keep
	// their numbers.
	skel := make([]byte, 0, len(data)/8)
	prev := 0
	for _, c := range sp.cuts {
		skel = append(skel, data[prev:c.start]...)
		for range bytes.Count(data[c.start:c.end], []byte("\n")) {
			skel = append(skel, '\n')
		}
		prev = c.end
	}
	sp.skeleton = append(skel, data[prev:]...)
	return sp
}

// cutBody cuts the body of a top-level mapping that starts at offset start, the line after its
// key, and reports whether it could be sure of the cut.
//
// The body is every line from start up to the next line that starts in column 1 and is not a
// comment. Its first line that holds content sets the mapping's indent n. A cut line has
// exactly n spaces and then a letter, digit or _. In block context such a line can only start
// a key of the mapping: a block scalar or a multi-line plain scalar inside the mapping ends at
// any line indented n or less. What would make it something else is a quoted scalar or a flow
// collection left open on the lines before; the chunk before the cut then fails to parse, and
// the file goes to the sequential decode. A body with lines indented less than n, a tab in the
// indent, a first entry that does not start as a cut line, or fewer than two keys is not cut.
func cutBody(data []byte, start, chunk int) (cut, bool) {
	indent := -1
	var keys []int // byte offsets of the lines that start a key
	bodyEnd := len(data)
	for off := start; off < len(data); {
		end := lineEnd(data, off)
		l := data[off:end]
		sp := 0
		for sp < len(l) && l[sp] == ' ' {
			sp++
		}
		if sp == len(l) || l[sp] == '\n' || l[sp] == '#' {
			off = end // blank or comment
			continue
		}
		if sp == 0 {
			bodyEnd = off
			break
		}
		if l[sp] == '\t' {
			return cut{}, false
		}
		if indent < 0 {
			indent = sp
		}
		if sp < indent {
			return cut{}, false
		}
		if c := l[sp]; sp == indent && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			keys = append(keys, off)
		} else if len(keys) == 0 {
			return cut{}, false // the mapping must start with a key
		}
		off = end
	}
	if len(keys) < 2 {
		return cut{}, false
	}
	c := cut{start: start, end: bodyEnd}
	for i := 0; i < len(keys); {
		j := i + 1
		for j < len(keys) && keys[j]-keys[i] < chunk {
			j++
		}
		end := bodyEnd
		if j < len(keys) {
			end = keys[j]
		}
		c.chunks = append(c.chunks, data[keys[i]:end])
		i = j
	}
	return c, true
}

// lineEnd returns the offset just past the line that starts at off (past its LF, if any).
func lineEnd(data []byte, off int) int {
	if i := bytes.IndexByte(data[off:], '\n'); i >= 0 {
		return off + i + 1
	}
	return len(data)
}

// validateParallel does what validate does, checking the services on every core, and reports
// whether the file is valid; it records no problem with a line (it has no tree to find one).
func (d *decoder) validateParallel(pf *PolicyFile) bool {
	services := pf.Services
	sv := d.validateContext(pf)
	if len(d.errs) > 0 {
		return false
	}
	var failed atomic.Bool
	inParallel(len(services), 1024, func(lo, hi int) {
		if failed.Load() {
			return
		}
		vd := &decoder{file: d.file} // no root: a problem is only counted
		for _, s := range services[lo:hi] {
			if vd.serviceName(pf, s) {
				vd.validateService(sv, s)
			}
		}
		if len(vd.errs) > 0 {
			failed.Store(true)
		}
	})
	if failed.Load() {
		return false
	}
	// Two services may not name one name: the one check that needs them all.
	serviceAt := make(map[string]bool, len(services))
	for _, s := range services {
		if serviceAt[s.Name] {
			return false
		}
		serviceAt[s.Name] = true
	}
	return true
}

// inParallel calls f on consecutive ranges [lo, hi) of at most chunk of 0..n, on every core;
// on the caller's goroutine alone when there is one range.
func inParallel(n, chunk int, f func(lo, hi int)) {
	if n <= chunk || runtime.GOMAXPROCS(0) == 1 {
		f(0, n)
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), (n+chunk-1)/chunk) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for lo := int(next.Add(int64(chunk)) - int64(chunk)); lo < n; lo = int(next.Add(int64(chunk)) - int64(chunk)) {
				f(lo, min(lo+chunk, n))
			}
		}()
	}
	wg.Wait()
}
