// Command leaks writes the real profiles the attribution rules are tested
// on: for each kind of leak it starts, in a process of its own, an HTTP
// service on 127.0.0.1 that leaks that way, drives requests at it, and
// writes the heap and goroutine profiles taken before and after the load
// (after forced GCs), as memgate's gate takes them. Regenerate with
//
//	cd gate/attribution/testdata/leaks && go run -trimpath . -out ../profiles
//
// -trimpath makes the files module-path-prefixed ("example.com/leaks/main.go"),
// as a build with -trimpath records them; the tests map them to the
// repository's files.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"example.com/reqctx"
)

// kinds are the leaks, each a handler.
var kinds = map[string]func(upstream string) http.HandlerFunc{
	"requests":    requestsKind,
	"connections": connectionsKind,
	"blocked":     blockedKind,
	"timers":      timersKind,
	"cache":       cacheKind,
}

func main() {
	out := flag.String("out", "../profiles", "directory to write <kind>/{heap,goroutine}-{0,1}.pb.gz into")
	kind := flag.String("kind", "", "run one kind in this process (the parent runs each in a child)")
	upstream := flag.String("upstream", "", "the URL the connections kind calls")
	requests := flag.Int("requests", 2000, "requests between the two profiles")
	flag.Parse()
	if *kind != "" {
		if err := runKind(*kind, *upstream, filepath.Join(*out, *kind), *requests); err != nil {
			log.Fatalf("%s: %v", *kind, err)
		}
		return
	}
	// The upstream the connections kind's clients call: in this process,
	// so that its server-side goroutines stay out of the child's profiles.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	for name := range kinds {
		cmd := exec.Command(os.Args[0], "-kind", name, "-out", *out, "-upstream", "http://"+ln.Addr().String(), "-requests", strconv.Itoa(*requests))
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			log.Fatalf("%s: %v", name, err)
		}
	}
}

func runKind(kind, upstream, dir string, n int) error {
	handler := kinds[kind]
	if handler == nil {
		return fmt.Errorf("no kind %q", kind)
	}
	// Sample finely: the profiles are small and every leak shows.
	runtime.MemProfileRate = 4096
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: handler(upstream)}
	go srv.Serve(ln)
	defer srv.Close()
	url := "http://" + ln.Addr().String()
	if err := drive(url, 200); err != nil {
		return err
	}
	if err := snapshot(dir, "0"); err != nil {
		return err
	}
	if err := drive(url, n); err != nil {
		return err
	}
	// Let the last goroutines reach where they wait.
	time.Sleep(500 * time.Millisecond)
	return snapshot(dir, "1")
}

// drive sends n requests over four keep-alive connections, with the
// headers a browser sends.
func drive(url string, n int) error {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}, Timeout: 10 * time.Second}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				req, _ := http.NewRequest("GET", fmt.Sprintf("%s/orders/%d", url, i), nil)
				req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36")
				req.Header.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
				req.Header.Set("Accept-Language", "en-GB,en;q=0.9")
				req.Header.Set("Cookie", fmt.Sprintf("session=%032d; theme=dark", i))
				req.Header.Set("X-Request-Id", fmt.Sprintf("req-%d", i))
				resp, err := client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	client.CloseIdleConnections()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

func snapshot(dir, n string) error {
	runtime.GC()
	runtime.GC()
	for _, name := range []string{"heap", "goroutine"} {
		f, err := os.Create(filepath.Join(dir, name+"-"+n+".pb.gz"))
		if err != nil {
			return err
		}
		err = pprof.Lookup(name).WriteTo(f, 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// requestsKind keeps every request: the handler stores the user in the
// request registry and never clears it.
func requestsKind(string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rememberUser(r)
		fmt.Fprintf(w, "hello %v", reqctx.Get(r, "user"))
	}
}

//go:noinline
func rememberUser(r *http.Request) {
	reqctx.Set(r, "user", r.Header.Get("Cookie"))
}

// connectionsKind makes an HTTP client per request, whose idle connection
// to the upstream nobody closes.
func connectionsKind(upstream string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		resp, err := getHttpClient().Get(upstream)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		io.Copy(w, resp.Body)
		resp.Body.Close()
	}
}

//go:noinline
func getHttpClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}, Timeout: 5 * time.Second}
}

// blockedKind leaves a goroutine behind on every request, waiting on a
// channel or a lock in one of five ways, by the request's number.
func blockedKind(string) http.HandlerFunc {
	var n atomic.Int64
	var held sync.Mutex
	held.Lock() // never unlocked: every waitForLock waits forever
	cond := sync.NewCond(&sync.Mutex{})
	return func(w http.ResponseWriter, r *http.Request) {
		switch n.Add(1) % 5 {
		case 0:
			go sendReply(make(chan string))
		case 1:
			go awaitConfirmation(make(chan string))
		case 2:
			go awaitEither(make(chan int), make(chan int))
		case 3:
			go waitForLock(&held)
		case 4:
			go waitForSignal(cond)
		}
		io.WriteString(w, "accepted")
	}
}

//go:noinline
func sendReply(reply chan string) { reply <- "done" }

//go:noinline
func awaitConfirmation(c chan string) { log.Println(<-c) }

//go:noinline
func awaitEither(a, b chan int) {
	select {
	case <-a:
	case <-b:
	}
}

//go:noinline
func waitForLock(mu *sync.Mutex) {
	mu.Lock()
	defer mu.Unlock()
}

//go:noinline
func waitForSignal(c *sync.Cond) {
	c.L.Lock()
	c.Wait()
	c.L.Unlock()
}

// timersKind schedules an expiry an hour away for every request: the
// timers and what their functions hold stay until then.
func timersKind(string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		scheduleExpiry(r.URL.Path)
		io.WriteString(w, "ok")
	}
}

//go:noinline
func scheduleExpiry(key string) {
	time.AfterFunc(time.Hour, func() { log.Println("expired", key) })
}

// cacheKind caches every response by its path, without a bound.
func cacheKind(string) http.HandlerFunc {
	c := &responseCache{entries: map[string][]byte{}}
	return func(w http.ResponseWriter, r *http.Request) {
		body := c.get(r.URL.Path)
		if body == nil {
			body = []byte(fmt.Sprintf(`{"order":%q,"status":"accepted"}`, r.URL.Path))
			c.put(r.URL.Path, body)
		}
		w.Write(body)
	}
}

type responseCache struct {
	mu      sync.Mutex
	entries map[string][]byte
}

//go:noinline
func (c *responseCache) get(k string) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries[k]
}

//go:noinline
func (c *responseCache) put(k string, v []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries[k] = v
}
