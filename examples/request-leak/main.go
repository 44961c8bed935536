// request-leak keeps every request it serves alive: it reads the caller's
// session through a registry keyed by *http.Request (a stand-in for
// gorilla/sessions on gorilla/context, vendored) and never clears it. The
// growth is mostly net/http's own allocations (the request's headers, URL,
// context), none of them the service's; memgate should say whole requests
// are retained and name currentUser, the service's code that calls the
// registry.
package main

import (
	"fmt"
	"log"
	"net/http"
	_ "net/http/pprof"
	"os"

	"example.com/sessions"
)

// currentUser reads the caller's session, which the registry keeps for
// the request until it is cleared: nothing here clears it.
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
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"user":%q}`, currentUser(r))
	})
	log.Fatal(http.ListenAndServe("127.0.0.1:"+port(), nil))
}

func port() string {
	if p := os.Getenv("PORT"); p != "" {
		return p
	}
	return "8080"
}
