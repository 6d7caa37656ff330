package test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// chromium runs headless Chromium on url with args and returns what it printed. Its flags keep
// it off the network: no background requests, no component updates, no sync.
func chromium(t *testing.T, url string, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium is not installed; .ci/run installs it (apt-get install chromium)")
		}
		t.Skip("chromium is not installed (apt-get install chromium): the status page test needs it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
		"--user-data-dir=" + t.TempDir(), "--virtual-time-budget=5000"}
	out, err := exec.CommandContext(ctx, bin, append(append(base, args...), url)...).Output()
	if err != nil {
		t.Fatalf("chromium %v: %v", args, err)
	}
	return string(out)
}

// TestStatusPage drives a running server: a region is drained, and the page, as headless
// Chromium renders it, shows that pool as drained (by colour and by text), the override with
// who set it and why, and a screenshot is written to test/out/status-page.png.
func TestStatusPage(t *testing.T) {
	b := newBackend(t)
	a := startAdmin(t, b, t.TempDir(), "", "200ms", "100ms")
	waitAnswer(t, a.server, "127.0.0.1")
	a.drain(t, "region:us-east", "")

	dom := chromium(t, a.URL+"/", "--dump-dom")
	for _, want := range []string{
		`data-service="www.example.com."`,
		`data-state="drained"`,    // the drained endpoints, by text
		`class="state s-drained"`, // and by colour
		`<td>region:us-east</td><td>drain</td><td>tester</td><td>test</td>`, // the override, who and why
		`127.0.0.5`, // eu-west's endpoint, still up
		`read-only`, // no token entered
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the rendered page lacks %s", want)
		}
	}
	if strings.Contains(dom, `style="display: block;"`) {
		t.Error("the page could not read the status")
	}
	// us-east endpoints are drained, eu-west's are not.
	if i := strings.Index(dom, `data-pool="eu-west"`); i < 0 || strings.Contains(dom[i:i+400], "drained") {
		t.Errorf("eu-west shows as drained, or is missing")
	}

	out, _ := filepath.Abs(filepath.Join("out", "status-page.png"))
	os.MkdirAll(filepath.Dir(out), 0o755)
	chromium(t, a.URL+"/", "--screenshot="+out, "--window-size=1280,1400", "--hide-scrollbars")
	if fi, err := os.Stat(out); err != nil || fi.Size() < 10000 {
		t.Fatalf("screenshot %s: %v", out, err)
	}
	t.Logf("screenshot: %s", out)
}
