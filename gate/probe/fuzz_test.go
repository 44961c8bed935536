package probe

import "testing"

// go test ./gate/probe -run '^$' -fuzz FuzzParseHeapText -fuzztime 1m
func FuzzParseHeapText(f *testing.F) {
	f.Add([]byte("heap profile: 1: 2 [3: 4] @ heap/1048576\n# runtime.MemStats\n# HeapInuse = 4202496\n# NumGC = 17\n"))
	f.Add([]byte("# HeapInuse = 18446744073709551615\n# NumGC = 0\n"))
	f.Add([]byte("<html>catch-all</html>"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseHeapText(data)
		if err == nil && r.Goroutines != 0 {
			t.Fatal("heap text set goroutines")
		}
	})
}

// go test ./gate/probe -run '^$' -fuzz FuzzParseGoroutineTotal -fuzztime 1m
func FuzzParseGoroutineTotal(f *testing.F) {
	f.Add("goroutine profile: total 35012\n")
	f.Add("goroutine profile: total -1")
	f.Add("")
	f.Fuzz(func(t *testing.T, line string) {
		n, err := ParseGoroutineTotal(line)
		if err == nil && n < 0 {
			t.Fatalf("negative total %d from %q", n, line)
		}
	})
}
