package attribution

import (
	"bytes"
	"runtime/pprof"
	"testing"
)

// Profiles come from the service under test: garbage must give an error,
// never a panic. go test ./gate/attribution -run '^$' -fuzz FuzzDiffs -fuzztime 1m
func FuzzDiffs(f *testing.F) {
	var heap, gor bytes.Buffer
	pprof.Lookup("heap").WriteTo(&heap, 0)
	pprof.Lookup("goroutine").WriteTo(&gor, 0)
	f.Add(heap.Bytes(), heap.Bytes())
	f.Add(gor.Bytes(), gor.Bytes())
	f.Add([]byte{0x1f, 0x8b}, []byte("not a profile"))
	f.Fuzz(func(t *testing.T, base, cur []byte) {
		if sites, err := HeapGrowth(base, cur, 5); err == nil && len(sites) > 5 {
			t.Fatalf("%d sites for top 5", len(sites))
		}
		if stacks, err := GoroutineGrowth(base, cur, 5); err == nil && len(stacks) > 5 {
			t.Fatalf("%d stacks for top 5", len(stacks))
		}
	})
}
