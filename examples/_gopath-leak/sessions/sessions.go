// Package sessions tracks the sessions of requests in flight.
package sessions

import "sync"

// Session is one request's state.
type Session struct {
	ID      string
	Path    string
	scratch []byte
}

// Store holds the open sessions.
type Store struct {
	mu   sync.Mutex
	open map[string]*Session
}

// NewStore returns an empty store.
func NewStore() *Store { return &Store{open: map[string]*Session{}} }

// Open starts a session with a 1 KiB scratch buffer.
//
//go:noinline
func (s *Store) Open(id, path string) *Session {
	sess := &Session{ID: id, Path: path, scratch: make([]byte, 1024)}
	s.mu.Lock()
	s.open[id] = sess
	s.mu.Unlock()
	return sess
}

// Close ends a session. The leak: it never removes it from the store, so
// every session Open made stays (1 KiB a request).
func (s *Store) Close(sess *Session) {
	s.mu.Lock()
	sess.Path = ""
	s.mu.Unlock()
}
