// healthy-requests is request-leak's twin done right: the same session
// registry keyed by *http.Request, with every handler wrapped in
// sessions.ClearHandler, which forgets the request once it is served.
// memgate should pass it.
package main

import (
	"fmt"
	"log"
	"net/http"
	_ "net/http/pprof"
	"os"

	"example.com/sessions"
)

// currentUser reads the caller's session; ClearHandler forgets it.
//
//go:noinline
func currentUser(r *http.Request) string {
	s := sessions.Get(r, "user")
	if s.Values["id"] == nil {
		s.Values["id"] = r.RemoteAddr
	}
	return fmt.Sprint(s.Values["id"])
}

func main() {
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"user":%q}`, currentUser(r))
	})
	// The pprof handlers stay on the default mux, outside the wrapper.
	http.Handle("/", sessions.ClearHandler(app))
	log.Fatal(http.ListenAndServe("127.0.0.1:"+port(), nil))
}

func port() string {
	if p := os.Getenv("PORT"); p != "" {
		return p
	}
	return "8080"
}
