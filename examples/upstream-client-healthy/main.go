// upstream-client-healthy is upstream-client-leak fixed: one HTTP client,
// made once, whose connections to the upstream pricing API are reused.
package main

import (
	"io"
	"log"
	"net/http"
	_ "net/http/pprof"
	"os"
	"time"
)

var client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}

// getHTTPClient returns the one shared client.
func getHTTPClient() *http.Client { return client }

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
