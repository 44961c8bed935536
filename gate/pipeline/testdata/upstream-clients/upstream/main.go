// upstream is a stub of the pricing API the service calls: memgate builds
// it from this repository and starts it as the service's dependency.
package main

import (
	"log"
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	http.HandleFunc("/price", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"sku":"` + r.URL.Query().Get("sku") + `","cents":1999}`))
	})
	log.Printf("upstream stub on 127.0.0.1:%s", os.Getenv("PORT"))
	log.Fatal(http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil))
}
