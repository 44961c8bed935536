// Package token makes request tokens (a vendored GOPATH-era dependency).
package token

import (
	"strconv"
	"sync"
)

var (
	mu   sync.Mutex
	last uint64
)

// New returns a token unique in this process.
func New() string {
	mu.Lock()
	defer mu.Unlock()
	last++
	return "t" + strconv.FormatUint(last, 36)
}
