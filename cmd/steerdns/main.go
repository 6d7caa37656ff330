// Command steerdns is CoreDNS with the steer plugin: an authoritative DNS server that steers
// each name to the endpoints that are healthy now. It accepts every CoreDNS flag; run without
// -conf and without a Corefile in the working folder, it serves an embedded example zone,
// example.test., on 127.0.0.1:1053.
package main

import (
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	// The CoreDNS plugins steerdns ships; never core/plugin, which brings Kubernetes and
	// cloud SDKs.
	_ "github.com/coredns/coredns/plugin/acl"
	_ "github.com/coredns/coredns/plugin/any"
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/bufsize"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/debug"
	_ "github.com/coredns/coredns/plugin/dnssec"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/file"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/geoip"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/metadata"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/multisocket"
	_ "github.com/coredns/coredns/plugin/nsid"
	_ "github.com/coredns/coredns/plugin/pprof"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
	_ "github.com/coredns/coredns/plugin/rewrite"
	_ "github.com/coredns/coredns/plugin/root"
	_ "github.com/coredns/coredns/plugin/transfer"
	_ "github.com/coredns/coredns/plugin/whoami"

	"github.com/steerdns/steerdns/plugin/steer"
)

//go:embed example/Corefile
var exampleCorefile string

//go:embed example/example.test.yaml
var examplePolicy []byte

func init() {
	if err := dnsserver.SetDirectives(steer.Directives()); err != nil {
		panic(err)
	}
	caddy.SetDefaultCaddyfileLoader("steerdns", caddy.LoaderFunc(defaultLoader))
}

// defaultLoader reads ./Corefile as CoreDNS does and, when there is none, serves the embedded
// example.
func defaultLoader(serverType string) (caddy.Input, error) {
	contents, err := os.ReadFile(caddy.DefaultConfigFile)
	if err == nil {
		return caddy.CaddyfileInput{Contents: contents, Filepath: caddy.DefaultConfigFile, ServerTypeName: serverType}, nil
	}
	if !os.IsNotExist(err) {
		return nil, err
	}
	// One folder per user, rewritten at each start, so runs leave nothing behind them.
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("steerdns-example-%d", os.Getuid()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("writing the embedded example: %w", err)
	}
	policy := filepath.Join(dir, "example.test.yaml")
	if err := os.WriteFile(policy, examplePolicy, 0o644); err != nil {
		return nil, fmt.Errorf("writing the embedded example: %w", err)
	}
	fmt.Fprintf(os.Stderr, "steerdns: no -conf and no ./Corefile: serving the embedded example (zone example.test. on 127.0.0.1:1053, policy file %s)\n", policy)
	corefile := strings.ReplaceAll(exampleCorefile, "{{POLICY}}", policy)
	return caddy.CaddyfileInput{Contents: []byte(corefile), Filepath: "embedded example", ServerTypeName: serverType}, nil
}

func main() {
	startHeadroom(os.Getenv, gcHeadroom, gcFloor)
	coremain.Run()
}
