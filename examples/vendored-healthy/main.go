// vendored-healthy is a module that builds from vendor/ (its dependency
// example.com/auditfmt is vendored, and no module is downloaded): memgate
// builds it with -mod=vendor, as the go command does by default.
// It keeps the last 256 audit entries.
package main

import (
	"log"
	"net/http"
	"os"
	"sync"

	"example.com/auditfmt"
)

// auditTrail keeps recent audit entries for the /audit page.
type auditTrail struct {
	mu      sync.Mutex
	entries [][]byte
	next    int
}

// record keeps the entry in a ring of the last 256.
//
//go:noinline
func (a *auditTrail) record(line string) {
	entry := make([]byte, 0, 1024)
	entry = append(entry, line...)
	a.mu.Lock()
	if len(a.entries) < 256 {
		a.entries = append(a.entries, entry)
	} else {
		a.entries[a.next] = entry
		a.next = (a.next + 1) % 256
	}
	a.mu.Unlock()
}

func (a *auditTrail) handle(w http.ResponseWriter, r *http.Request) {
	line := auditfmt.Format(map[string]string{"method": r.Method, "path": r.URL.Path, "agent": r.UserAgent()})
	a.record(line)
	w.Write([]byte(line + "\n"))
}

func main() {
	a := &auditTrail{}
	http.HandleFunc("/", a.handle)
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	log.Fatal(http.ListenAndServe("127.0.0.1:"+port, nil))
}
