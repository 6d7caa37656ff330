package zones

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Defaults and limits of NewWatcher.
const (
	// DefaultDebounce is the quiet time used when NewWatcher is given a debounce of 0.
	DefaultDebounce = 100 * time.Millisecond
	// MaxDebounce is the longest debounce NewWatcher accepts: reloads must land within 2 s.
	MaxDebounce = 250 * time.Millisecond
	// DefaultPoll is the backstop interval used when NewWatcher is given a poll of 0.
	DefaultPoll = 5 * time.Second
)

// k8sData is the link Kubernetes renames over to swap a mounted ConfigMap's content.
const k8sData = "..data"

// Watcher calls a function when a policy file under its paths may have changed.
//
// It watches the folders that hold the policy files (never the files themselves), so that
// writes, creates, removes, atomic renames and Kubernetes ConfigMap symlink swaps are all
// seen, and it hashes the policy files every poll interval as a backstop for lost events.
type Watcher struct {
	paths    []string      // cleaned, as given to NewWatcher
	debounce time.Duration // quiet time after the last event before onChange
	maxWait  time.Duration // longest delay from the first event of a burst to onChange
	poll     time.Duration // interval of the content-hash backstop
	onChange func()

	fsw  *fsnotify.Watcher // nil when events are not used (tests of the backstop)
	last string            // content hash when onChange was last called (or at start)

	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// NewWatcher starts watching; onChange is called from the watcher's goroutine (never
// concurrently with itself) after a debounce of `debounce` (<= 250ms) following the last
// event, and also every `poll` interval when a content hash of the watched policy files
// differs from the last one seen (a backstop for filesystems whose events get lost; poll 0
// = default 5s).
//
// paths are policy files or folders, as for NewLoader; they need not exist yet. A debounce
// of 0 means DefaultDebounce. A burst of events that never pauses still calls onChange
// every 4 debounces. onChange must not call Close.
func NewWatcher(paths []string, debounce, poll time.Duration, onChange func()) (*Watcher, error) {
	return newWatcher(paths, debounce, poll, onChange, true)
}

// newWatcher is NewWatcher; with notify false, only the poll backstop sees changes.
func newWatcher(paths []string, debounce, poll time.Duration, onChange func(), notify bool) (*Watcher, error) {
	switch {
	case len(paths) == 0:
		return nil, errors.New("watch: no path to watch")
	case onChange == nil:
		return nil, errors.New("watch: onChange is nil")
	case debounce < 0 || debounce > MaxDebounce:
		return nil, fmt.Errorf("watch: debounce %v is out of range (0 for %v, at most %v)", debounce, DefaultDebounce, MaxDebounce)
	case poll < 0:
		return nil, fmt.Errorf("watch: poll %v is negative (0 for %v)", poll, DefaultPoll)
	}
	if debounce == 0 {
		debounce = DefaultDebounce
	}
	if poll == 0 {
		poll = DefaultPoll
	}
	w := &Watcher{
		debounce: debounce,
		maxWait:  4 * debounce,
		poll:     poll,
		onChange: onChange,
		stop:     make(chan struct{}),
	}
	for _, p := range paths {
		w.paths = append(w.paths, filepath.Clean(p))
	}
	if notify {
		fsw, err := fsnotify.NewWatcher()
		if err != nil {
			return nil, fmt.Errorf("watch: %w", err)
		}
		w.fsw = fsw
		w.sync()
	}
	w.last = w.hash()
	w.wg.Add(1)
	go w.run()
	return w, nil
}

// Close stops the watcher and waits for its goroutine(s) to end.
func (w *Watcher) Close() error {
	w.closeOnce.Do(func() {
		close(w.stop)
		w.wg.Wait()
		if w.fsw != nil {
			w.closeErr = w.fsw.Close() // waits for fsnotify's reader
		}
	})
	return w.closeErr
}

func (w *Watcher) run() {
	defer w.wg.Done()
	var events <-chan fsnotify.Event
	var errs <-chan error
	if w.fsw != nil {
		events, errs = w.fsw.Events, w.fsw.Errors
	}
	tick := time.NewTicker(w.poll)
	defer tick.Stop()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var (
		fire  <-chan time.Time // timer.C while a call is pending, else nil
		first time.Time        // first event of the pending burst
	)
	trigger := func() {
		now := time.Now()
		if fire == nil {
			fire, first = timer.C, now
		}
		wait := min(w.debounce, max(first.Add(w.maxWait).Sub(now), 0))
		timer.Reset(wait) // Go ≥ 1.23: no stale tick survives a Reset
	}
	for {
		select {
		case <-w.stop:
			return
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if ev.Op != fsnotify.Chmod && w.relevant(ev.Name) {
				trigger()
			}
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			if err != nil { // e.g. an event queue overflow: events were lost
				trigger()
			}
		case <-fire:
			fire = nil
			w.sync()
			w.last = w.hash() // before onChange: what changes during it is seen next time
			w.onChange()
		case <-tick.C:
			w.sync()
			if fire == nil && w.hash() != w.last {
				trigger()
			}
		}
	}
}

// relevant reports whether an event on name may change a policy file under the paths.
// Editors' temporary and hidden files are not (IsPolicyFile), except Kubernetes' ..data swap.
func (w *Watcher) relevant(name string) bool {
	name = filepath.Clean(name)
	dir, base := filepath.Dir(name), filepath.Base(name)
	for _, p := range w.paths {
		switch {
		case name == p: // the file itself, or the folder itself created, removed or moved
			return true
		case name == filepath.Dir(p): // the folder of a file path removed or moved
			return true
		case dir == p && (IsPolicyFile(base) || base == k8sData): // in a folder path
			return true
		case dir == filepath.Dir(p) && base == k8sData: // ConfigMap swap next to a file path
			return true
		}
	}
	return false
}

// folders returns the folders to watch: a folder path itself, else the folder that holds
// the path (a file, or a path that does not exist yet).
func (w *Watcher) folders() map[string]bool {
	want := map[string]bool{}
	for _, p := range w.paths {
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			want[p] = true
		} else {
			want[filepath.Dir(p)] = true
		}
	}
	return want
}

// sync adds the watches on folders that (re)appeared and removes those no longer wanted.
// Folders that do not exist are left to the poll backstop and retried on the next sync.
func (w *Watcher) sync() {
	if w.fsw == nil {
		return
	}
	want := w.folders()
	for _, d := range w.fsw.WatchList() {
		if !want[d] {
			_ = w.fsw.Remove(d)
		}
		delete(want, d)
	}
	for d := range want {
		_ = w.fsw.Add(d) // fails while d does not exist; retried on the next sync
	}
}

// hash returns a digest of the names and contents of the policy files under the paths
// (symlinks followed), and of the paths that are missing or unreadable.
func (w *Watcher) hash() string {
	files, missing, errs := listPolicyFiles(w.paths)
	sort.Strings(files)
	h := sha256.New()
	for _, err := range errs {
		fmt.Fprintf(h, "error %s\x00", err)
	}
	for _, m := range missing {
		fmt.Fprintf(h, "missing %s\x00", m)
	}
	for _, p := range files {
		fmt.Fprintf(h, "file %s\x00", p)
		f, err := os.Open(p)
		if err != nil {
			fmt.Fprintf(h, "error %s\x00", err)
			continue
		}
		sum := sha256.New()
		_, err = io.Copy(sum, f)
		f.Close()
		if err != nil {
			fmt.Fprintf(h, "error %s\x00", err)
			continue
		}
		h.Write(sum.Sum(nil))
	}
	return hex.EncodeToString(h.Sum(nil))
}
