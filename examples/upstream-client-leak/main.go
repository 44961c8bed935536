// upstream-client-leak asks an upstream pricing API for every request with
// an HTTP client made for that request: each client's transport keeps its
// idle connection open forever (two goroutines and a file descriptor
// apiece) and is never used again. memgate should fail it and name
// getHTTPClient. Its fixed twin is upstream-client-healthy.
package main

import (
	"io"
	"log"
	"net/http"
	_ "net/http/pprof"
	"os"
	"time"
)

// getHTTPClient makes a client for one call: the bug.
func getHTTPClient() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
}

func handlePrice(upstream string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		resp, err := getHTTPClient().Get(upstream + "/price?sku=A-1")
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Content-Type", "application/json")
		io.Copy(w, resp.Body)
	}
}

func main() {
	http.HandleFunc("/", handlePrice(os.Getenv("UPSTREAM_URL")))
	log.Fatal(http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil))
}
