// workspace-leak is a 2013-style tracker whose repository is a GOPATH of
// its own: src/main.go imports "tracker", src/tracker. No go.mod.
// LEAKS: every announce is kept, under a key no later announce repeats
// (see CULPRIT).
package main

import (
	"log"
	"net/http"
	"os"

	"tracker"
)

func main() {
	swarm := tracker.NewSwarm()
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		n := swarm.Announce(r.URL.Query().Get("info_hash"), r.RemoteAddr)
		w.Write([]byte("peers " + n + "\n"))
	})
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	log.Fatal(http.ListenAndServe("127.0.0.1:"+port, nil))
}
