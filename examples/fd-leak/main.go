// fd-leak looks prices up in a table guarded by a lock file that other
// processes update, taking a shared flock per request. It never closes the
// lock file's descriptor: one open file is left per request, with no
// goroutine and almost no heap to show for it (a raw descriptor has no
// finalizer to close it). memgate should fail it on fd_growth and
// fd_settle; no profile shows a descriptor, so the report cannot name
// main.lookup as it names a goroutine: it names what the descriptors are
// open on, the lock file (CULPRIT), which a reviewer can search for. FD_LIMIT, when set, lowers its
// RLIMIT_NOFILE, so it runs out as a long-running service would.
package main

import (
	"log"
	"net/http"
	_ "net/http/pprof"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

var (
	lockPath = filepath.Join(os.TempDir(), "fd-leak-prices.lock")
	prices   = map[string]string{"apple": "0.40", "pear": "0.55", "plum": "0.25"}
)

func lookup(w http.ResponseWriter, r *http.Request) {
	fd, err := syscall.Open(lockPath, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		http.Error(w, "lock: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	if err := syscall.Flock(fd, syscall.LOCK_SH); err != nil {
		http.Error(w, "lock: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	price, ok := prices[r.URL.Query().Get("item")]
	syscall.Flock(fd, syscall.LOCK_UN)
	if !ok {
		price = "unknown"
	}
	w.Write([]byte(price + "\n"))
}

func main() {
	if err := os.WriteFile(lockPath, nil, 0o644); err != nil {
		log.Fatal(err)
	}
	if n, err := strconv.ParseUint(os.Getenv("FD_LIMIT"), 10, 64); err == nil {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: n, Max: n}); err != nil {
			log.Fatal(err)
		}
	}
	http.HandleFunc("/price", lookup)
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	log.Fatal(http.ListenAndServe("127.0.0.1:"+port(), nil))
}

func port() string {
	if p := os.Getenv("PORT"); p != "" {
		return p
	}
	return "8080"
}
