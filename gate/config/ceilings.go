package config

import (
	"fmt"
	"strconv"
	"time"
)

// Ceilings are what a server lets any one gate ask for, whatever its
// repository's config says: the config is the repository's, the machine
// the operator's, shared with memgate and other gates. Zero is no ceiling.
type Ceilings struct {
	// Memory bounds the service's memory_limit plus every dependency's:
	// what the gate's control group may hold at once.
	Memory Bytes
	// Processes bounds run.max_processes.
	Processes uint64
	// FileSize bounds run.max_file_size.
	FileSize Bytes
}

// DefaultCeilings: four times the default service's memory (with its
// dependencies), four times its processes and files.
func DefaultCeilings() Ceilings {
	return Ceilings{Memory: 8 << 30, Processes: 4096, FileSize: 4 << 30}
}

// Within checks the config against the server's ceilings; the error names
// the key to lower and the ceiling's setting.
func (c Config) Within(l Ceilings) error {
	memory := c.Run.MemoryLimit
	for _, n := range c.DependencyNames() {
		memory += c.Dependencies[n].MemoryLimit
	}
	switch {
	case l.Memory > 0 && memory > l.Memory:
		what := "run.memory_limit"
		if len(c.Dependencies) > 0 {
			what = "run.memory_limit and the dependencies' memory_limit"
		}
		return keyErr(fmt.Sprintf("%s come to %s, more than this server lets a gate hold (%s, MEMGATE_MAX_MEMORY): lower %s",
			what, formatBytes(memory), formatBytes(l.Memory), what), "run", "memory_limit")
	case l.Processes > 0 && c.Run.MaxProcesses > l.Processes:
		return keyErr(fmt.Sprintf("%d is more than this server lets a gate start (%d, MEMGATE_MAX_PROCESSES)", c.Run.MaxProcesses, l.Processes),
			"run", "max_processes")
	case l.FileSize > 0 && c.Run.MaxFileSize > l.FileSize:
		return keyErr(fmt.Sprintf("%s is more than this server lets a gate write to one file (%s, MEMGATE_MAX_FILE_SIZE)",
			formatBytes(c.Run.MaxFileSize), formatBytes(l.FileSize)), "run", "max_file_size")
	}
	return nil
}

func formatBytes(b Bytes) string {
	for _, u := range []struct {
		s string
		m uint64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if uint64(b) >= u.m && uint64(b)%u.m == 0 {
			return strconv.FormatUint(uint64(b)/u.m, 10) + u.s
		}
	}
	return strconv.FormatUint(uint64(b), 10) + " bytes"
}

// Policy is what a server holds every repository's config to, beyond the
// config's own rules: the job's time (halved for a pull request gated
// beside its base in the same job), the ceilings, and whether the host's
// network is refused. The zero Policy holds nothing (memgate check, on the
// user's own machine).
type Policy struct {
	JobTimeout        time.Duration
	Pair              bool
	Ceilings          Ceilings
	RefuseHostNetwork bool
}

// Allowed checks the config against the server's policy; the error names
// the key to change.
func (c Config) Allowed(p Policy) error {
	if p.JobTimeout > 0 {
		fit := c.FitIn
		if p.Pair {
			fit = c.FitPairIn
		}
		if err := fit(p.JobTimeout); err != nil {
			return err
		}
	}
	if err := c.Within(p.Ceilings); err != nil {
		return err
	}
	if c.Run.Network == "host" && p.RefuseHostNetwork {
		return keyErr("host would give the service and its dependencies this worker's network, and this server does not allow it "+
			"(MEMGATE_ALLOW_HOST_NETWORK): remove the key, and declare what the service needs under dependencies", "run", "network")
	}
	return nil
}
