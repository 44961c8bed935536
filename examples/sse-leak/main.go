// sse-leak streams server-sent events. Each stream's events come from a
// ticker goroutine; when the client goes away the handler returns, but the
// ticker stays blocked for good on its next send. memgate should fail it
// (goroutine_growth, goroutine_settle) and name main.ticker.
package main

import (
	"fmt"
	"log"
	"net/http"
	_ "net/http/pprof"
	"os"
	"time"
)

// ticker sends an event every 100 ms for as long as someone receives.
func ticker(out chan<- string) {
	for i := 0; ; i++ {
		time.Sleep(100 * time.Millisecond)
		out <- fmt.Sprintf(`{"seq":%d,"at":%q}`, i, time.Now().Format(time.RFC3339Nano))
	}
}

func events(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	flusher.Flush()
	out := make(chan string)
	go ticker(out)
	for {
		select {
		case <-r.Context().Done():
			return // the client left; nothing stops the ticker
		case ev := <-out:
			fmt.Fprintf(w, "data: %s\n\n", ev)
			flusher.Flush()
		}
	}
}

func main() {
	http.HandleFunc("/events", events)
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	log.Fatal(http.ListenAndServe("127.0.0.1:"+port(), nil))
}

func port() string {
	if p := os.Getenv("PORT"); p != "" {
		return p
	}
	return "8080"
}
