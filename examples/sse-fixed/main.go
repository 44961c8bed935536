// sse-fixed is sse-leak with its fix: the ticker stops with the request,
// so nothing is left when the client goes away. memgate should pass it.
package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	_ "net/http/pprof"
	"os"
	"time"
)

// ticker sends an event every 100 ms until ctx ends.
func ticker(ctx context.Context, out chan<- string) {
	for i := 0; ; i++ {
		time.Sleep(100 * time.Millisecond)
		select {
		case out <- fmt.Sprintf(`{"seq":%d,"at":%q}`, i, time.Now().Format(time.RFC3339Nano)):
		case <-ctx.Done():
			return
		}
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
	go ticker(r.Context(), out)
	for {
		select {
		case <-r.Context().Done():
			return // the ticker sees the same context and ends too
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
