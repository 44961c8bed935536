package gate

// Dependency is one of the service's declared dependencies as the gate ran
// it. Its heap and goroutines are never the service's (those are read
// from the service's own runtime); its memory and output are kept apart.
type Dependency struct {
	Name    string `json:"name"`
	Program string `json:"program"` // what ran: a kind's program, a worker's program, or the repository's package
	Port    int    `json:"port"`
	// ReadyAfter is how long it took to answer its readiness check.
	ReadyAfter Duration `json:"ready_after"`
	// PeakMemoryBytes is the most memory (resident, and in their own tmpfs)
	// the dependencies held together when memgate looked; 0 when it did
	// not look.
	PeakMemoryBytes uint64 `json:"peak_memory_bytes,omitempty"`
	Output          string `json:"output,omitempty"` // tail, apart from the service's
}
