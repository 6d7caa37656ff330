package admin

import (
	_ "embed"
	"net/http"
)

// statusPage is the status page: one self-contained file (no external assets), which reads
// /v1/status and /v1/history every two seconds.
//
//go:embed page.html
var statusPage []byte

func (a *api) page(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	// The page runs its own script and styles only; it talks to this origin only.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Write(statusPage)
}
