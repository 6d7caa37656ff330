package zones

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"go.yaml.in/yaml/v3"
)

// parallelMin is the size from which Decode first tries decodeParallel: below it one core
// decodes a file quickly enough.
const parallelMin = 1 << 20

// chunkBytes is about how much of the services mapping one parallel task parses: small enough
// that the YAML trees in flight stay a few MB (a tree is ~25 times its text), large enough
// that the tasks' overhead does not show.
const chunkBytes = 64 << 10

// decodeParallel decodes a large policy file on every core, or returns nil when it cannot
// promise the result of the sequential decode; the caller then decodes sequentially.
//
// yaml.v3 builds one node tree on one core, and at 100,000 services that parse was most of the
// load, the tree alone half a GB. Here the services mapping is cut, at the lines where its
// keys start, into chunks that yaml.v3 parses separately, each walked into services and
// dropped as soon as it is parsed; the rest of the file (the "skeleton": the services body
// blanked out, so that every line keeps its number) is parsed and walked as usual. A cut line
// can only be a key of the services mapping, unless a quoted value or a flow collection is
// left open before it, and then the chunk before it fails to parse (see splitServices); so
// chunks that all parse hold exactly the entries the whole file would have.
//
// Any problem at all, YAML or policy, makes it return nil: errors are reported only by the
// sequential decode, which has the whole tree for their lines and orders them. A broken large
// file is thus decoded twice; a valid one, the case that matters, once on every core.
//
// chunk is the size of a chunk in bytes (chunkBytes; tests cut at every key with 1).
func decodeParallel(path string, data []byte, chunk int) *PolicyFile {
	sp := splitServices(data, chunk)
	if sp == nil {
		return nil
	}
	// The skeleton is small: one goroutine parses it while the chunks are parsed.
	d := &decoder{file: path}
	var pf *PolicyFile
	skeleton := make(chan struct{})
	go func() {
		defer close(skeleton)
		if root := d.parse(sp.skeleton); root != nil && servicesNull(root, sp.line) {
			pf = d.walk(root)
		}
	}()
	var failed atomic.Bool
	specs := make([][]*ServiceSpec, len(sp.chunks))
	inParallel(len(sp.chunks), 1, func(lo, hi int) {
		for i := lo; i < hi && !failed.Load(); i++ {
			var ok bool
			if specs[i], ok = decodeChunk(path, sp.chunks[i]); !ok {
				failed.Store(true)
			}
		}
	})
	<-skeleton
	if pf == nil || len(d.errs) > 0 || failed.Load() {
		return nil
	}
	n := 0
	for _, s := range specs {
		n += len(s)
	}
	pf.Services = make([]*ServiceSpec, 0, n)
	for _, s := range specs {
		pf.Services = append(pf.Services, s...)
	}
	if !d.validateParallel(pf) {
		return nil
	}
	return pf
}

// decodeChunk parses one chunk of the services mapping and walks it as the services key of
// walk does. Lines in the chunk's tree count from the chunk's first line: they would only
// ever reach an error, and an error sends the file to the sequential decode.
func decodeChunk(path string, chunk []byte) ([]*ServiceSpec, bool) {
	dec := yaml.NewDecoder(bytes.NewReader(chunk))
	var doc, extra yaml.Node
	if dec.Decode(&doc) != nil || !errors.Is(dec.Decode(&extra), io.EOF) {
		return nil, false
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, false
	}
	// A chunk must be a block mapping, as the services mapping is: a flow mapping or a list
	// that parses alone would not have parsed in place.
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode || root.Style&yaml.FlowStyle != 0 || root.Anchor != "" || root.Tag != "!!map" {
		return nil, false
	}
	d := &decoder{file: path}
	var out []*ServiceSpec
	d.entries(root, "services", func(k string, _, v *yaml.Node, p string) {
		out = append(out, d.service(k, v, p))
	})
	return out, len(d.errs) == 0
}

// servicesNull reports whether root, the skeleton's top node, is a block mapping whose key
// services, at column 1 of line, has the empty value left by blanking its body. Otherwise the
// line splitServices took for the key is something else (inside a quoted string, a flow
// collection), and the cut means nothing.
func servicesNull(root *yaml.Node, line int) bool {
	if root.Kind != yaml.MappingNode || root.Style&yaml.FlowStyle != 0 {
		return false
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Line == line {
			return k.Kind == yaml.ScalarNode && k.Style == 0 && k.Value == "services" && k.Column == 1 &&
				v.Kind == yaml.ScalarNode && v.Style == 0 && v.Tag == "!!null" && v.Value == ""
		}
	}
	return false
}

// split is a policy file cut for decodeParallel.
type split struct {
	skeleton []byte   // the file with the body of services blanked, line for line
	line     int      // the line of the services key
	chunks   [][]byte // the body of services, cut where its keys start
}

// splitServices cuts the body of the top-level key services (a line "services:" alone) at
// the lines where its keys start, or returns nil when the file is not laid out plainly enough
// to be sure of the cut.
//
// The body is every line after "services:" up to the next line that starts in column 1 and
// is not a comment. Its first line that holds content sets the mapping's indent n. A cut line
// has exactly n spaces and then a letter, digit or _. In block context such a line can only
// start a key of the services mapping: a block scalar or a multi-line plain scalar inside the
// mapping ends at any line indented n or less. What would make it something else is a quoted
// scalar or a flow collection left open on the lines before; the chunk before the cut then
// fails to parse, and the file goes to the sequential decode. Lines indented less than n, a
// tab in the indent, and line breaks other than LF (YAML also breaks lines at CR, NEL, LS and
// PS, which would shift the skeleton's lines) are refused outright, and so are directives.
func splitServices(data []byte, chunk int) *split {
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
	// Find the line "services:" (trailing spaces allowed).
	off, line := 0, 1
	bodyStart := -1
	for off < len(data) {
		end := lineEnd(data, off)
		if l := data[off:end]; bytes.HasPrefix(l, []byte("services:")) && len(bytes.TrimRight(l[len("services:"):], " \n")) == 0 {
			bodyStart = end
			break
		}
		off, line = end, line+1
	}
	if bodyStart < 0 {
		return nil
	}
	indent := -1
	var cuts []int // byte offsets of the lines that start a key
	bodyEnd := len(data)
	for off = bodyStart; off < len(data); {
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
			return nil
		}
		if indent < 0 {
			indent = sp
		}
		if sp < indent {
			return nil
		}
		if c := l[sp]; sp == indent && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			cuts = append(cuts, off)
		} else if len(cuts) == 0 {
			return nil // the mapping must start with a key
		}
		off = end
	}
	if len(cuts) < 2 {
		return nil
	}
	sp := &split{line: line}
	for i := 0; i < len(cuts); {
		j := i + 1
		for j < len(cuts) && cuts[j]-cuts[i] < chunk {
			j++
		}
		end := bodyEnd
		if j < len(cuts) {
			end = cuts[j]
		}
		sp.chunks = append(sp.chunks, data[cuts[i]:end])
		i = j
	}
	// The skeleton: the body's lines become empty lines, so that the lines after it keep
	// their numbers.
	skel := make([]byte, 0, bodyStart+bytes.Count(data[bodyStart:bodyEnd], []byte("\n"))+len(data)-bodyEnd)
	skel = append(skel, data[:bodyStart]...)
	for range bytes.Count(data[bodyStart:bodyEnd], []byte("\n")) {
		skel = append(skel, '\n')
	}
	sp.skeleton = append(skel, data[bodyEnd:]...)
	return sp
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
