// Package sessions is a small stand-in for gorilla/sessions on
// gorilla/context: a request's sessions live in a global registry keyed by
// the *http.Request, until Clear (or ClearHandler) forgets the request. A
// service that never clears keeps every request it served alive: its
// headers, URL, context and sessions.
package sessions

import (
	"net/http"
	"sync"
)

// Session is one named session of a request.
type Session struct {
	Name   string
	Values map[string]any
}

var (
	mu       sync.Mutex
	registry = map[*http.Request]map[string]*Session{}
)

// Get returns the request's session of that name, creating it (and the
// request's registry) the first time.
func Get(r *http.Request, name string) *Session {
	mu.Lock()
	defer mu.Unlock()
	reg := registry[r]
	if reg == nil {
		reg = map[string]*Session{}
		registry[r] = reg
	}
	s := reg[name]
	if s == nil {
		s = &Session{Name: name, Values: map[string]any{}}
		reg[name] = s
	}
	return s
}

// Clear forgets the request's sessions.
func Clear(r *http.Request) {
	mu.Lock()
	defer mu.Unlock()
	delete(registry, r)
}

// ClearHandler wraps a handler so that every request is cleared once it
// is served.
func ClearHandler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer Clear(r)
		h.ServeHTTP(w, r)
	})
}
