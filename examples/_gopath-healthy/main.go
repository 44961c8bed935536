// gopath-healthy is a GOPATH-era service: no go.mod, its own package imported by
// its import path (github.com/memgate-examples/gopath-healthy/sessions) and a
// dependency in vendor/. memgate builds it in GOPATH mode at the import
// path its .memgate.yml names (build.import_path).
// Sessions are removed when their request ends.
package main

import (
	"log"
	"net/http"
	"os"

	"github.com/memgate-examples/gopath-healthy/sessions"
	"github.com/oldlib/token"
)

func main() {
	store := sessions.NewStore()
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		id := token.New()
		s := store.Open(id, r.URL.Path)
		defer store.Close(s)
		w.Write([]byte("session " + id + "\n"))
	})
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	log.Fatal(http.ListenAndServe("127.0.0.1:"+port, nil))
}
