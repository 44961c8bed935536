// Package reqctx keeps values per request in a global map keyed by the
// request, as gorilla/context did: a handler that never calls Clear keeps
// every request alive.
package reqctx

import (
	"net/http"
	"sync"
)

var (
	mu   sync.Mutex
	data = map[*http.Request]map[string]any{}
)

// Set stores a value for the request.
func Set(r *http.Request, key string, val any) {
	mu.Lock()
	defer mu.Unlock()
	if data[r] == nil {
		data[r] = map[string]any{}
	}
	data[r][key] = val
}

// Get returns a value stored for the request.
func Get(r *http.Request, key string) any {
	mu.Lock()
	defer mu.Unlock()
	return data[r][key]
}

// Clear forgets the request: its handler must call it when done.
func Clear(r *http.Request) {
	mu.Lock()
	defer mu.Unlock()
	delete(data, r)
}
