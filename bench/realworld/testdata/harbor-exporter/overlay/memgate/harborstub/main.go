// Command harborstub answers the Harbor API calls harbor_exporter makes on
// a scrape, with empty but valid answers: enough for the exporter to run
// its collectors against it. Written for Go 1.14, the repository's go line.
package main

import (
	"flag"
	"log"
	"net/http"
	"strings"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8500", "address")
	flag.Parse()
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch p := r.URL.Path; {
		case strings.HasSuffix(p, "/systeminfo"):
			w.Write([]byte(`{"harbor_version":"v2.1.0"}`))
		case strings.HasSuffix(p, "/health"):
			w.Write([]byte(`{"status":"healthy","components":[{"name":"core","status":"healthy"}]}`))
		case strings.HasSuffix(p, "/statistics"), strings.HasSuffix(p, "/volumes"):
			w.Write([]byte(`{}`))
		default:
			w.Write([]byte(`[]`))
		}
	})
	log.Fatal(http.ListenAndServe(*listen, nil))
}
