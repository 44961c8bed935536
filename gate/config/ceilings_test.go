package config

import (
	"strings"
	"testing"
)

// A repository's config cannot ask for more than the server lets a gate
// have (an attacker's review: memory_limit and max_processes were
// unbounded, so one repository's gate could take a shared worker down).
func TestCeilingsBoundWhatAConfigAsks(t *testing.T) {
	l := DefaultCeilings()
	if err := Default().Within(l); err != nil {
		t.Fatalf("the defaults: %v", err)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"run:\n  memory_limit: 64GiB\n", "run.memory_limit: run.memory_limit come to 64GiB, more than this server lets a gate hold (8GiB, MEMGATE_MAX_MEMORY)"},
		{"run:\n  memory_limit: 6GiB\ndependencies:\n  db: {kind: postgres, memory_limit: 3GiB}\n", "run.memory_limit and the dependencies' memory_limit come to 9GiB"},
		{"run:\n  max_processes: 1000000\n", "run.max_processes: 1000000 is more than this server lets a gate start (4096, MEMGATE_MAX_PROCESSES)"},
		{"run:\n  max_file_size: 1TiB\n", "run.max_file_size: 1TiB is more than this server lets a gate write to one file (4GiB, MEMGATE_MAX_FILE_SIZE)"},
	} {
		cfg, err := Parse([]byte(tc.yaml))
		if err != nil {
			t.Fatalf("%q: %v", tc.yaml, err)
		}
		if err := cfg.Within(l); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.yaml, err, tc.want)
		}
		if err := cfg.Within(Ceilings{}); err != nil {
			t.Errorf("%q with no ceilings: %v", tc.yaml, err)
		}
	}
}

// The server's policy refuses the host's network unless its operator
// allows it; a config read without a policy (memgate check, on the user's
// own machine) keeps it.
func TestPolicyRefusesTheHostNetworkOnlyWhenSet(t *testing.T) {
	host := []byte("run:\n  network: host\n")
	if _, err := Parse(host); err != nil {
		t.Fatalf("without a policy: %v", err)
	}
	if _, err := ParseFor(host, Policy{RefuseHostNetwork: true}); err == nil ||
		!strings.Contains(err.Error(), "line 2: run.network: host would give the service and its dependencies this worker's network") {
		t.Fatalf("refused: %v", err)
	}
}
