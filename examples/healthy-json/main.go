// healthy-json is a well-behaved JSON API: memgate should pass it.
package main

import (
	"encoding/json"
	"log"
	"net/http"
	_ "net/http/pprof"
	"os"
	"time"
)

type order struct {
	ID       int       `json:"id"`
	Customer string    `json:"customer"`
	Items    []string  `json:"items"`
	Total    float64   `json:"total"`
	Placed   time.Time `json:"placed"`
}

func handleOrder(w http.ResponseWriter, r *http.Request) {
	o := order{ID: 42, Customer: "ada", Items: []string{"tea", "scones"}, Total: 12.5, Placed: time.Now()}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(o)
}

func main() {
	http.HandleFunc("/", handleOrder)
	log.Fatal(http.ListenAndServe("127.0.0.1:"+port(), nil))
}

func port() string {
	if p := os.Getenv("PORT"); p != "" {
		return p
	}
	return "8080"
}
