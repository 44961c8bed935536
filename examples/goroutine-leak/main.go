// goroutine-leak starts a goroutine for every LEAK_EVERY-th request (default
// every one) that waits for a reply nobody sends: memgate should fail it
// and name handleOrder.func1.
package main

import (
	"log"
	"net/http"
	_ "net/http/pprof"
	"os"
	"strconv"
	"sync/atomic"
)

var served atomic.Int64

func handleOrder(every int64) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if served.Add(1)%every == 0 {
			reply := make(chan string)
			go func() {
				// Waits for a confirmation that is never sent.
				log.Println(<-reply)
			}()
		}
		w.Write([]byte(`{"accepted":true}`))
	}
}

func main() {
	every := int64(1)
	if v, err := strconv.ParseInt(os.Getenv("LEAK_EVERY"), 10, 64); err == nil && v > 0 {
		every = v
	}
	http.HandleFunc("/", handleOrder(every))
	log.Fatal(http.ListenAndServe("127.0.0.1:"+port(), nil))
}

func port() string {
	if p := os.Getenv("PORT"); p != "" {
		return p
	}
	return "8080"
}
