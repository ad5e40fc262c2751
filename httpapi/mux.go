package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/rs/zerolog"
)

// DefaultMaxBodyBytes bounds a request body unless a Config says otherwise.
const DefaultMaxBodyBytes = 64 << 10

// router is an http.ServeMux whose own answers (404 for an unknown path, 405
// for a wrong method) are JSON errors like every other, and which logs each
// request.
type router struct {
	mux *http.ServeMux
	log zerolog.Logger
}

func newRouter(log zerolog.Logger) *router {
	return &router{mux: http.NewServeMux(), log: log}
}

// Handle registers h for pattern, in http.ServeMux pattern syntax (e.g.
// "POST /gcm/send"). It panics if the pattern conflicts with one already
// registered, as http.ServeMux does.
func (rt *router) Handle(pattern string, h http.Handler) { rt.mux.Handle(pattern, h) }

func (rt *router) handleFunc(pattern string, h http.HandlerFunc) { rt.mux.HandleFunc(pattern, h) }

// ServeHTTP dispatches to the registered handler, answering unmatched
// requests with a JSON error.
func (rt *router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w}
	if _, pattern := rt.mux.Handler(r); pattern == "" {
		// No pattern matched: the mux answers 404 or 405 (with an Allow
		// header) in plain text. Keep its status and headers, send JSON.
		rt.mux.ServeHTTP(&jsonErrorWriter{ResponseWriter: rec}, r)
	} else {
		rt.mux.ServeHTTP(rec, r)
	}
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	ev := rt.log.Debug()
	if rec.status >= 500 {
		ev = rt.log.Warn()
	}
	ev.Str("method", r.Method).Str("path", r.URL.Path).Str("remote", r.RemoteAddr).
		Int("status", rec.status).Dur("took", time.Since(start)).Msg("http request")
}

// statusRecorder remembers the status a handler wrote, for the request log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// jsonErrorWriter turns the mux's plain-text error answer into a JSON one:
// it keeps the status and headers (such as Allow), replaces the body.
type jsonErrorWriter struct {
	http.ResponseWriter
	wrote bool
}

func (j *jsonErrorWriter) WriteHeader(code int) {
	if j.wrote {
		return
	}
	j.wrote = true
	writeError(j.ResponseWriter, code, errorText(code))
}

func (j *jsonErrorWriter) Write(p []byte) (int, error) {
	if !j.wrote {
		j.WriteHeader(http.StatusOK)
	}
	return len(p), nil // the plain-text body is dropped
}

func errorText(code int) string {
	switch code {
	case http.StatusNotFound:
		return "not found"
	case http.StatusMethodNotAllowed:
		return "method not allowed"
	}
	return http.StatusText(code)
}

// errorBody is the JSON error answer: {"error": "..."}.
type errorBody struct {
	Error string `json:"error"`
}

// writeJSON writes v as JSON with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Del("Content-Length")
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client may be gone; nothing to do
}

// writeError writes {"error": msg} with the given status.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg})
}

// readBody reads the whole request body, at most limit bytes: the one body
// reader of the JSON endpoints. When it returns false it has answered: 413
// for a longer body, 400 for one that cannot be read.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	switch {
	case tooLarge(err):
		writeError(w, http.StatusRequestEntityTooLarge, "request body too large")
		return nil, false
	case err != nil:
		writeError(w, http.StatusBadRequest, "cannot read the request body")
		return nil, false
	}
	return body, true
}

// tooLarge reports whether err comes from a body over the size limit.
func tooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

// noStore marks a response that carries a secret as not cacheable.
func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
}
