package admin

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Limits of the API.
const (
	MaxBody      = 64 << 10 // request bodies are cut here: 413
	ReadTimeout  = 10 * time.Second
	WriteTimeout = 30 * time.Second
	IdleTimeout  = 60 * time.Second
)

// Options configure the API.
type Options struct {
	// Token, when set, is required as "Authorization: Bearer TOKEN" by every write call.
	Token string
	// TokenFunc, when set, gives the token at each call instead of Token (a Corefile reload
	// may change it while the listener stays).
	TokenFunc func() string
	// Logf, when set, logs each write call (who, what) and each refused one.
	Logf func(format string, args ...any)
}

// NewHandler returns the API and the status page for b.
func NewHandler(b Backend, o Options) http.Handler {
	a := &api{b: b, o: o}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", a.status)
	mux.HandleFunc("GET /v1/explain", a.explain)
	mux.HandleFunc("GET /v1/history", a.history)
	mux.HandleFunc("GET /v1/overrides", a.overrides)
	mux.HandleFunc("POST /v1/overrides", a.write(a.addOverride))
	mux.HandleFunc("DELETE /v1/overrides/{id}", a.write(a.deleteOverride))
	mux.HandleFunc("GET /{$}", a.page)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fail(w, http.StatusNotFound, fmt.Sprintf("no such call: %s %s (calls: GET /v1/status, GET /v1/explain, GET /v1/history, GET /v1/overrides, POST /v1/overrides, DELETE /v1/overrides/{id}, GET /)", r.Method, r.URL.Path))
	})
	return a.guard(mux)
}

// Server is the API on one listener.
type Server struct {
	srv *http.Server
	l   net.Listener
	err chan error
}

// Listen starts the API on addr (host:port).
func Listen(addr string, h http.Handler) (*Server, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin API: %w", err)
	}
	s := &Server{l: l, err: make(chan error, 1), srv: &http.Server{Handler: h, ReadTimeout: ReadTimeout,
		ReadHeaderTimeout: ReadTimeout, WriteTimeout: WriteTimeout, IdleTimeout: IdleTimeout, MaxHeaderBytes: 16 << 10}}
	go func() { s.err <- s.srv.Serve(l) }()
	return s, nil
}

// Addr returns the address the API listens on.
func (s *Server) Addr() string { return s.l.Addr().String() }

// Close stops the API and waits for its calls to end (at most 5 s).
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	<-s.err
	return err
}

type api struct {
	b Backend
	o Options
}

// guard recovers from a panic in a call (a 500, not a dead server) and caps request bodies.
func (a *api) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if a.o.Logf != nil {
					a.o.Logf("admin API: %s %s: panic: %v", r.Method, r.URL.Path, v)
				}
				fail(w, http.StatusInternalServerError, "internal error")
			}
		}()
		r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
		next.ServeHTTP(w, r)
	})
}

// write wraps a write call: the token, when one is configured, compared in constant time.
func (a *api) write(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token := a.o.Token
		if a.o.TokenFunc != nil {
			token = a.o.TokenFunc()
		}
		if token != "" {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(token)) != 1 {
				if a.o.Logf != nil {
					a.o.Logf("admin API: %s %s from %s refused: no valid bearer token", r.Method, r.URL.Path, r.RemoteAddr)
				}
				w.Header().Set("WWW-Authenticate", `Bearer realm="steerdns"`)
				fail(w, http.StatusUnauthorized, "this call needs Authorization: Bearer TOKEN (the token of admin_token_file)")
				return
			}
		}
		h(w, r)
	}
}

func (a *api) status(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := Filter{Zone: q.Get("zone"), Service: q.Get("service"), State: q.Get("state")}
	if f.Zone != "" && !strings.HasSuffix(f.Zone, ".") {
		f.Zone += "."
	}
	reply(w, http.StatusOK, a.b.Status(f))
}

func (a *api) explain(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	name := q.Get("name")
	if name == "" {
		fail(w, http.StatusBadRequest, "name is required: /v1/explain?name=www.example.com&type=A&client=192.0.2.0/24")
		return
	}
	typ := q.Get("type")
	if typ == "" {
		typ = "A"
	}
	ex, err := a.b.Explain(r.Context(), name, typ, q.Get("client"))
	if err != nil {
		failErr(w, err)
		return
	}
	reply(w, http.StatusOK, ex)
}

func (a *api) history(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var since time.Time
	if s := q.Get("since"); s != "" {
		t, err := parseSince(s)
		if err != nil {
			fail(w, http.StatusBadRequest, err.Error())
			return
		}
		since = t
	}
	h := a.b.History(since, q.Get("endpoint"))
	if h == nil {
		h = []Transition{}
	}
	reply(w, http.StatusOK, map[string]any{"transitions": h})
}

// parseSince takes an RFC 3339 time or a duration before now ("1h").
func parseSince(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return time.Now().Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("since %q is neither an RFC 3339 time (2026-01-02T15:04:05Z) nor a duration (1h)", s)
}

func (a *api) overrides(w http.ResponseWriter, r *http.Request) {
	o := a.b.Overrides()
	if o == nil {
		o = []Override{}
	}
	reply(w, http.StatusOK, map[string]any{"overrides": o})
}

func (a *api) addOverride(w http.ResponseWriter, r *http.Request) {
	var req OverrideRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			fail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is over %d bytes", MaxBody))
			return
		}
		fail(w, http.StatusBadRequest, "the body must be one JSON object {\"target\", \"action\", \"ttl\", \"reason\", \"by\"}: "+err.Error())
		return
	}
	if dec.More() {
		fail(w, http.StatusBadRequest, "the body must be one JSON object, not more")
		return
	}
	o, err := a.b.AddOverride(req)
	if err != nil {
		failErr(w, err)
		return
	}
	if a.o.Logf != nil {
		a.o.Logf("admin API: override %s set from %s: %s %s (by %q, reason %q)", o.ID, r.RemoteAddr, o.Action, o.Target, o.By, o.Reason)
	}
	reply(w, http.StatusCreated, o)
}

func (a *api) deleteOverride(w http.ResponseWriter, r *http.Request) {
	o, err := a.b.DeleteOverride(r.PathValue("id"))
	if err != nil {
		failErr(w, err)
		return
	}
	if a.o.Logf != nil {
		a.o.Logf("admin API: override %s deleted from %s: %s %s", o.ID, r.RemoteAddr, o.Action, o.Target)
	}
	reply(w, http.StatusOK, o)
}

func reply(w http.ResponseWriter, code int, v any) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fail(w, http.StatusInternalServerError, "encoding the answer: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	io.Copy(w, &b)
}

func fail(w http.ResponseWriter, code int, msg string) { failKnown(w, code, msg, nil) }

func failKnown(w http.ResponseWriter, code int, msg string, known []string) {
	b, _ := json.Marshal(Error{Error: msg, Known: known})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

func failErr(w http.ResponseWriter, err error) {
	var nf *NotFound
	switch {
	case errors.As(err, &nf):
		failKnown(w, http.StatusNotFound, nf.Msg, nf.Known)
	case errors.Is(err, ErrNotFound):
		fail(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrBadRequest):
		fail(w, http.StatusBadRequest, err.Error())
	default:
		fail(w, http.StatusInternalServerError, err.Error())
	}
}
