package main

import (
	"os"
	"testing"

	"github.com/memgate/memgate/internal/gatetest"
)

// The gates these tests run, in this process and in memgate child
// processes (which inherit the environment), share the Go caches of every
// gate test: the standard library is compiled once per test run.
func TestMain(m *testing.M) {
	if os.Getenv("MEMGATE_CACHE_DIR") == "" {
		os.Setenv("MEMGATE_CACHE_DIR", gatetest.CacheDir())
	}
	os.Exit(m.Run())
}
