package service

import (
	"strconv"
	"strings"
)

// HeapProfileRate is the heap profile's sampling period a gate runs the
// service with: one allocation sampled per 64 KiB allocated, on average,
// instead of the runtime's 512 KiB.
//
// Why 64 KiB: a leak of 128 B per request over the default window (200
// requests/s for 40 s: 8,000 requests) retains 1,024,000 B, so its site
// gets on average 1,024,000/rate samples, a Poisson count. memgate names a
// site outright from gate.MinHeapSamples (3) samples on. At 512 KiB that
// leak rests on ~2 samples (fewer than 3 in 68% of gates); at 128 KiB on
// 7.8 (fewer than 3 in 1.6%); at 64 KiB on 15.6, fewer than 3 in 2 gates
// in 100,000. The cost is one stack unwind per sampled allocation, 8 times
// as many as by default (measured in docs/benchmarks.md); the profile's
// size depends on how many distinct stacks allocate, not on the rate.
const HeapProfileRate = 64 << 10

// WithHeapProfileRate sets the rate through GODEBUG=memprofilerate, which
// the runtime applies as it starts, before any allocation of any package's
// init (an init in the injected reader would come after them, and only
// where the reader is in the build; -ldflags -X sets strings, not
// runtime.MemProfileRate). It reaches every Go service, whether memgate
// reads its own pprof or the reader. A GODEBUG the repository set is kept
// (the last GODEBUG in env is the one a process sees), and so is a
// memprofilerate in it: the repository chose it. A service that assigns
// runtime.MemProfileRate itself overrides it from then on.
func WithHeapProfileRate(env []string) []string {
	out := append([]string(nil), env...)
	for i := len(out) - 1; i >= 0; i-- {
		v, ok := strings.CutPrefix(out[i], "GODEBUG=")
		if !ok {
			continue
		}
		for _, kv := range strings.Split(v, ",") {
			if strings.HasPrefix(strings.TrimSpace(kv), "memprofilerate=") {
				return out
			}
		}
		if v != "" {
			v += ","
		}
		out[i] = "GODEBUG=" + v + "memprofilerate=" + strconv.Itoa(HeapProfileRate)
		return out
	}
	return append(out, "GODEBUG=memprofilerate="+strconv.Itoa(HeapProfileRate))
}
