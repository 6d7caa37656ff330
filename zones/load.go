package zones

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Set is every zone served, with the state of every policy file. Immutable once built.
type Set struct {
	zones map[string]*Zone
	// Files lists every policy file seen, sorted by path.
	Files []FileState
}

// FileState is what became of one policy file in the last load.
type FileState struct {
	Path   string
	Zone   string    // origin served from the file; empty when it never loaded
	Serial uint32    // serial of the version serving
	Loaded time.Time // when the serving version was loaded
	Err    error     // the last error; the last good version (if any) keeps serving
}

// Zone returns the zone with origin name, or nil.
func (s *Set) Zone(origin string) *Zone { return s.zones[origin] }

// Match returns the most specific zone that contains qname (fully qualified, lower case).
func (s *Set) Match(qname string) *Zone {
	if s == nil {
		return nil
	}
	for off, end := 0, false; !end; off, end = nextLabel(qname, off) {
		if z, ok := s.zones[qname[off:]]; ok {
			return z
		}
	}
	return nil
}

func nextLabel(s string, off int) (int, bool) {
	for i := off; i < len(s)-1; i++ {
		if s[i] == '\\' {
			i++
			continue
		}
		if s[i] == '.' {
			return i + 1, false
		}
	}
	return len(s), true
}

// Zones returns the zones sorted by origin.
func (s *Set) Zones() []*Zone {
	out := make([]*Zone, 0, len(s.zones))
	for _, z := range s.zones {
		out = append(out, z)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Origin < out[j].Origin })
	return out
}

// Loader reads the policy files under a list of paths and keeps, per file, the last version
// that compiled. Load is not safe for concurrent use.
type Loader struct {
	paths   []string
	files   map[string]*fileEntry
	serials map[string]uint32 // origin -> last serial issued
	served  map[string]*Zone  // origin -> zone served by the last load
	owners  map[string]string // origin -> file that served it in the last load
	missing map[string]bool   // paths found missing in the last load, reported once
}

type fileEntry struct {
	hash     string // of the content last read
	good     *Zone  // last version that compiled
	loaded   time.Time
	err      error // error of the content last read, nil when good
	conflict bool  // err is that another file serves the zone
	mtime    time.Time
}

// NewLoader returns a loader for paths: policy files, or folders whose *.yaml and *.yml files
// are policy files.
func NewLoader(paths []string) *Loader {
	return &Loader{paths: paths, files: map[string]*fileEntry{}, serials: map[string]uint32{}, missing: map[string]bool{},
		served: map[string]*Zone{}, owners: map[string]string{}}
}

// Result is the outcome of one Load.
type Result struct {
	Set     *Set
	Changed bool    // the served zones differ from the previous load
	Errors  []error // problems first seen in this load (a file that stays broken is reported once)
	Reloads int     // files whose new content compiled
}

// ErrNoPath is returned in Result.Errors when a path does not exist.
var ErrNoPath = errors.New("no such file or folder")

// Load reads every policy file, compiles those whose content changed and returns the set to
// serve. A file that fails keeps its last good version; a file that is gone takes its zone
// with it.
func (l *Loader) Load(now time.Time) Result {
	var res Result
	paths, missing, errs := listPolicyFiles(l.paths)
	res.Errors = append(res.Errors, errs...)
	now2 := map[string]bool{}
	for _, m := range missing {
		if !l.missing[m] {
			res.Errors = append(res.Errors, fmt.Errorf("%s: %w", m, ErrNoPath))
		}
		now2[m] = true
	}
	l.missing = now2
	seen := map[string]bool{}
	for _, p := range paths {
		seen[p] = true
		e := l.files[p]
		if e == nil {
			e = &fileEntry{}
			l.files[p] = e
		}
		data, err := os.ReadFile(p)
		if err != nil {
			err = fmt.Errorf("%s: cannot read: %w", p, err)
			if e.err == nil || e.err.Error() != err.Error() {
				res.Errors = append(res.Errors, err)
			}
			e.err, e.conflict, e.hash = err, false, ""
			continue
		}
		sum := sha256.Sum256(data)
		hash := hex.EncodeToString(sum[:])
		if hash == e.hash {
			continue
		}
		e.hash, e.conflict = hash, false
		if fi, err := os.Stat(p); err == nil {
			e.mtime = fi.ModTime()
		}
		pf, err := Decode(p, data)
		if err != nil {
			e.err = err
			res.Errors = append(res.Errors, err)
			continue
		}
		serial := pf.SOA.Serial
		if serial == 0 {
			serial = max(uint32(now.Unix()), l.serials[pf.Zone]+1)
		}
		if e.good != nil && e.good.Origin == pf.Zone && pf.SOA.Serial == 0 {
			serial = max(serial, e.good.Serial+1)
		}
		e.good, e.err, e.loaded = Compile(pf, hash, serial), nil, now
		res.Reloads++
	}
	for p := range l.files {
		if !seen[p] {
			delete(l.files, p)
		}
	}
	res.Set, res.Errors = l.assemble(res.Errors, now)
	res.Changed = len(res.Set.zones) != len(l.served)
	for origin, z := range res.Set.zones {
		if l.served[origin] != z {
			res.Changed = true
		}
	}
	l.served = res.Set.zones
	return res
}

// RaiseSerial gives the zone origin, served from a file with this content hash and serial 0,
// the higher serial; the next Load serves it. A cluster uses it so that nodes with identical
// files serve identical SOA records. It reports whether it raised the serial.
func (l *Loader) RaiseSerial(origin, hash string, serial uint32) bool {
	for _, e := range l.files {
		if z := e.good; z != nil && z.Origin == origin && z.Hash == hash && z.FileSerial == 0 && serial > z.Serial && l.served[origin] == z {
			e.good = z.Reserial(serial)
			l.serials[origin] = max(l.serials[origin], serial)
			return true
		}
	}
	return false
}

// assemble builds the set; when two files claim one zone, the one that served it before (else
// the older file) keeps it, and the other is in error.
func (l *Loader) assemble(errs []error, now time.Time) (*Set, []error) {
	set := &Set{zones: map[string]*Zone{}}
	paths := make([]string, 0, len(l.files))
	for p := range l.files {
		paths = append(paths, p)
	}
	sort.Slice(paths, func(i, j int) bool {
		a, b := l.files[paths[i]], l.files[paths[j]]
		if !a.mtime.Equal(b.mtime) {
			return a.mtime.Before(b.mtime)
		}
		return paths[i] < paths[j]
	})
	owner := map[string]string{}
	for origin, p := range l.owners {
		if e := l.files[p]; e != nil && e.good != nil && e.good.Origin == origin {
			owner[origin] = p
		}
	}
	for _, p := range paths {
		if z := l.files[p].good; z != nil && l.files[p].err == nil {
			if _, taken := owner[z.Origin]; !taken {
				owner[z.Origin] = p
			}
		}
	}
	for _, p := range paths {
		e := l.files[p]
		if e.good == nil {
			continue
		}
		if o, taken := owner[e.good.Origin]; taken && o != p {
			err := fmt.Errorf("%s: zone %s is already served from %s", p, e.good.Origin, o)
			if e.err == nil || e.err.Error() != err.Error() {
				errs = append(errs, err)
			}
			e.err, e.conflict = err, true
			continue
		}
		if e.conflict {
			e.err, e.conflict = nil, false
		}
		if z := e.good; l.owners[z.Origin] != p && z.FileSerial == 0 && z.Serial <= l.serials[z.Origin] {
			// Taken over from another file: a serial derived earlier may lie below the one served.
			e.good, e.loaded = z.Reserial(max(uint32(now.Unix()), l.serials[z.Origin]+1)), now
		}
		owner[e.good.Origin] = p
		set.zones[e.good.Origin] = e.good
		l.serials[e.good.Origin] = max(l.serials[e.good.Origin], e.good.Serial)
	}
	l.owners = owner
	sort.Strings(paths)
	for _, p := range paths {
		e := l.files[p]
		fs := FileState{Path: p, Err: e.err}
		if e.good != nil && set.zones[e.good.Origin] == e.good {
			fs.Zone, fs.Serial, fs.Loaded = e.good.Origin, e.good.Serial, e.loaded
		}
		set.Files = append(set.Files, fs)
	}
	return set, errs
}

// listPolicyFiles returns the policy files under paths, and the paths that do not exist.
func listPolicyFiles(paths []string) (out, missing []string, errs []error) {
	for _, root := range paths {
		fi, err := os.Stat(root)
		if err != nil {
			missing = append(missing, root)
			continue
		}
		if !fi.IsDir() {
			out = append(out, filepath.Clean(root))
			continue
		}
		entries, err := os.ReadDir(root)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: cannot list: %w", root, err))
			continue
		}
		for _, de := range entries {
			if IsPolicyFile(de.Name()) && de.Type()&fs.ModeType&^fs.ModeSymlink == 0 {
				out = append(out, filepath.Join(root, de.Name()))
			}
		}
	}
	return out, missing, errs
}

// IsPolicyFile reports whether a file name in a folder is a policy file: *.yaml or *.yml, not
// hidden (editors' temporary files and Kubernetes' ..data links are hidden).
func IsPolicyFile(name string) bool {
	if strings.HasPrefix(name, ".") || strings.HasPrefix(name, "#") {
		return false
	}
	ext := filepath.Ext(name)
	return ext == ".yaml" || ext == ".yml"
}
