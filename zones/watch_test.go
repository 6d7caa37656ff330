package zones

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

const (
	testDebounce = 50 * time.Millisecond
	noPoll       = time.Hour // event tests: the backstop must not be what sees the change
	waitLimit    = 5 * time.Second
)

// calls counts onChange calls and notes any that overlap.
type calls struct {
	n, inFlight, overlaps atomic.Int64
}

func (c *calls) onChange() {
	if c.inFlight.Add(1) != 1 {
		c.overlaps.Add(1)
	}
	c.n.Add(1)
	c.inFlight.Add(-1)
}

func startWatcher(t *testing.T, paths []string, poll time.Duration, notify bool) (*Watcher, *calls) {
	t.Helper()
	c := &calls{}
	w, err := newWatcher(paths, testDebounce, poll, c.onChange, notify)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Error(err)
		}
		if n := c.overlaps.Load(); n != 0 {
			t.Errorf("onChange ran concurrently with itself %d times", n)
		}
	})
	return w, c
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitCall waits until onChange has been called more than n times.
func waitCall(t *testing.T, c *calls, n int64) {
	t.Helper()
	waitFor(t, "onChange", func() bool { return c.n.Load() > n })
}

// noCall checks that onChange is not called within a few debounces.
func noCall(t *testing.T, c *calls, n int64) {
	t.Helper()
	time.Sleep(3 * testDebounce)
	if got := c.n.Load(); got != n {
		t.Fatalf("onChange called %d times, want %d", got, n)
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestWatcherEvents(t *testing.T) {
	ops := []struct {
		name   string
		exists bool // app.yaml exists before the watcher starts
		do     func(t *testing.T, dir, file string)
	}{
		{"write", true, func(t *testing.T, dir, file string) { write(t, file, "v2") }},
		{"create", false, func(t *testing.T, dir, file string) { write(t, file, "v1") }},
		{"remove", true, func(t *testing.T, dir, file string) {
			if err := os.Remove(file); err != nil {
				t.Fatal(err)
			}
		}},
		{"atomic rename", true, func(t *testing.T, dir, file string) {
			tmp := filepath.Join(dir, ".app.yaml.tmp")
			write(t, tmp, "v2")
			if err := os.Rename(tmp, file); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, mode := range []string{"folder", "file"} {
		for _, op := range ops {
			t.Run(mode+"/"+op.name, func(t *testing.T) {
				dir := t.TempDir()
				file := filepath.Join(dir, "app.yaml")
				if op.exists {
					write(t, file, "v1")
				}
				path := dir
				if mode == "file" {
					path = file
				}
				_, c := startWatcher(t, []string{path}, noPoll, true)
				op.do(t, dir, file)
				waitCall(t, c, 0)
			})
		}
	}
}

// makeConfigMap lays out dir the way the kubelet mounts a ConfigMap and returns a function
// that swaps in new content the way the kubelet updates it.
func makeConfigMap(t *testing.T, dir string) (update func(content string)) {
	t.Helper()
	gen := 0
	publish := func(content string) {
		gen++
		ts := filepath.Join(dir, "..2024_01_0"+string(rune('0'+gen)))
		if err := os.Mkdir(ts, 0o755); err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(ts, "app.yaml"), content)
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
			t.Fatal(err)
		}
		old, _ := os.Readlink(filepath.Join(dir, k8sData))
		if err := os.Rename(tmp, filepath.Join(dir, k8sData)); err != nil {
			t.Fatal(err)
		}
		if old != "" {
			if err := os.RemoveAll(filepath.Join(dir, old)); err != nil {
				t.Fatal(err)
			}
		}
	}
	publish("v1")
	if err := os.Symlink(filepath.Join(k8sData, "app.yaml"), filepath.Join(dir, "app.yaml")); err != nil {
		t.Fatal(err)
	}
	return publish
}

func TestWatcherConfigMap(t *testing.T) {
	for _, mode := range []string{"folder", "file"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			update := makeConfigMap(t, dir)
			path := dir
			if mode == "file" {
				path = filepath.Join(dir, "app.yaml")
			}
			_, c := startWatcher(t, []string{path}, noPoll, true)
			update("v2")
			waitCall(t, c, 0)
			got, err := os.ReadFile(filepath.Join(dir, "app.yaml"))
			if err != nil || string(got) != "v2" {
				t.Fatalf("app.yaml = %q, %v; want v2", got, err)
			}
		})
	}
}

func TestWatcherBurst(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "app.yaml")
	write(t, file, "v0")
	_, c := startWatcher(t, []string{dir}, noPoll, true)
	for i := range 50 {
		write(t, file, "v"+string(rune('a'+i%26)))
	}
	waitCall(t, c, 0)
	time.Sleep(3 * testDebounce) // let any straggling call land
	if n := c.n.Load(); n > 3 {
		t.Fatalf("a burst of 50 writes called onChange %d times, want at most 3", n)
	}
}

func TestWatcherIgnoresTemporaryFiles(t *testing.T) {
	temps := []string{".app.yaml.swp", "app.yaml~", "#app.yaml#", "4913", ".goutputstream-X1Y2Z3", ".hidden.yaml"}
	for _, mode := range []string{"folder", "file"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "app.yaml")
			write(t, file, "v1")
			path, extra := dir, temps
			if mode == "file" {
				// Next to a file path, even another policy file does not matter.
				path, extra = file, append(slices.Clone(temps), "other.yaml")
			}
			_, c := startWatcher(t, []string{path}, noPoll, true)
			for _, name := range extra {
				p := filepath.Join(dir, name)
				write(t, p, "x")
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
			}
			noCall(t, c, 0)
			write(t, file, "v2") // the watcher is alive: the real file still counts
			waitCall(t, c, 0)
		})
	}
}

func TestWatcherPollBackstop(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "app.yaml")
	write(t, file, "v1")
	missing := filepath.Join(dir, "later")
	w, c := startWatcher(t, []string{dir, missing}, 20*time.Millisecond, false)
	if w.fsw != nil {
		t.Fatal("fsnotify is in use")
	}
	write(t, file, "v2")
	waitCall(t, c, 0)

	// A folder that appears later, with a policy file in it.
	n := c.n.Load()
	if err := os.Mkdir(missing, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(missing, "b.yaml"), "b")
	waitCall(t, c, n)

	// Through a symlink too: only the content changes, not the name.
	n = c.n.Load()
	target := filepath.Join(t.TempDir(), "real.yaml")
	write(t, target, "r1")
	if err := os.Symlink(target, filepath.Join(dir, "link.yaml")); err != nil {
		t.Fatal(err)
	}
	waitCall(t, c, n)
	n = c.n.Load()
	write(t, target, "r2")
	waitCall(t, c, n)
}

func watching(w *Watcher, dir string) bool { return slices.Contains(w.fsw.WatchList(), dir) }

func TestWatcherFolderComesBack(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "policies")
	// The folder does not exist yet: its parent is watched until it does.
	w, c := startWatcher(t, []string{dir}, 100*time.Millisecond, true)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a watch on the new folder", func() bool { return watching(w, dir) && !watching(w, root) })

	n := c.n.Load()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	waitCall(t, c, n)

	// Recreated: the poll backstop sees it and the watch is added again.
	n = c.n.Load()
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "app.yaml"), "v1")
	waitCall(t, c, n)
	waitFor(t, "the watch to come back", func() bool { return watching(w, dir) })
	n = c.n.Load()
	write(t, filepath.Join(dir, "app.yaml"), "v2")
	waitCall(t, c, n)
}

func TestWatcherClose(t *testing.T) {
	base := runtime.NumGoroutine()
	dir := t.TempDir()
	c := &calls{}
	w, err := NewWatcher([]string{dir}, testDebounce, 0, c.onChange)
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "app.yaml"), "v1")
	waitCall(t, c, 0)
	done := make(chan error)
	go func() { done <- w.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Close did not return")
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	waitFor(t, "goroutines back to the baseline", func() bool { return runtime.NumGoroutine() <= base })
}

func TestWatcherCloseWaitsForOnChange(t *testing.T) {
	dir := t.TempDir()
	entered, release := make(chan struct{}), make(chan struct{})
	var returned atomic.Bool
	w, err := NewWatcher([]string{dir}, testDebounce, 0, func() {
		select {
		case entered <- struct{}{}:
			<-release
			returned.Store(true)
		default: // a later call: do not block
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "app.yaml"), "v1")
	select {
	case <-entered:
	case <-time.After(waitLimit):
		t.Fatal("onChange not called")
	}
	go func() {
		time.Sleep(testDebounce) // any delay: Close must outwait it
		close(release)
	}()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if !returned.Load() {
		t.Fatal("Close returned while onChange was running")
	}
}

func TestNewWatcherErrors(t *testing.T) {
	f := func() {}
	for name, tc := range map[string]struct {
		paths    []string
		debounce time.Duration
		poll     time.Duration
		onChange func()
	}{
		"no path":        {nil, 0, 0, f},
		"no onChange":    {[]string{"."}, 0, 0, nil},
		"debounce > max": {[]string{"."}, MaxDebounce + 1, 0, f},
		"debounce < 0":   {[]string{"."}, -1, 0, f},
		"poll < 0":       {[]string{"."}, 0, -1, f},
	} {
		if w, err := NewWatcher(tc.paths, tc.debounce, tc.poll, tc.onChange); err == nil {
			w.Close()
			t.Errorf("%s: no error", name)
		}
	}
}
