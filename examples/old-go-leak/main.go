// old-go-leak is a notification service whose go.mod says go 1.16 and which
// does not import net/http/pprof: memgate reads it through the reader it
// adds to the build, which must compile at go 1.16.
// LEAKS: deliver never acknowledges, so every request leaves
// waitForAck blocked forever (see CULPRIT).
package main

import (
	"encoding/json"
	"log"
	"net/http"
	"os"
	"sync"
)

type server struct {
	mu   sync.Mutex
	sent int
}

type notification struct {
	To   string `json:"to"`
	Text string `json:"text"`
}

func (s *server) notify(w http.ResponseWriter, r *http.Request) {
	n := notification{To: r.URL.Query().Get("to"), Text: "your order shipped"}
	ack := make(chan bool)
	go s.waitForAck(ack)
	s.deliver(n, ack)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]interface{}{"queued": true, "to": n.To})
}

// waitForAck counts a delivery once the gateway acknowledges it.
func (s *server) waitForAck(ack chan bool) {
	if <-ack {
		s.mu.Lock()
		s.sent++
		s.mu.Unlock()
	}
}

// deliver hands the notification to the gateway. The leak: it forgets to
// pass the gateway's answer on, so waitForAck waits forever, one goroutine
// per request.
func (s *server) deliver(n notification, ack chan bool) {
	_ = n.Text != ""
}

func main() {
	s := &server{}
	http.HandleFunc("/notify", s.notify)
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	log.Fatal(http.ListenAndServe("127.0.0.1:"+port, nil))
}
