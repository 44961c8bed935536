package config

import "testing"

// go test ./gate/config -run '^$' -fuzz FuzzParse -fuzztime 1m
func FuzzParse(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("load:\n  rate: 300\n  targets:\n    - {method: POST, path: /x, body: '{}'}\n"))
	f.Add([]byte("thresholds:\n  alpha: 0.9\n"))
	f.Add([]byte("load: [\n"))
	f.Add([]byte("run:\n  args: ['-addr', '127.0.0.1:{{port}}']\n  env: {A: b}\n"))
	f.Add([]byte("sampling:\n  interval: 1ns\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a message")
			}
			return
		}
		// Whatever parses is a config memgate can run with.
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Parse accepted an invalid config: %v", err)
		}
		if s := cfg.Effective(); s.Interval <= 0 || s.CheckpointInterval < s.Interval {
			t.Fatalf("sampling %+v", s)
		}
	})
}
