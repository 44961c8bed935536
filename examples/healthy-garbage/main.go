// healthy-garbage makes heavy short-lived garbage on every request (a
// 256 KiB scratch buffer and a big JSON document) and keeps none of it: the
// GC sawtooth is steep, the live heap flat. memgate should pass it.
package main

import (
	"bytes"
	"encoding/json"
	"log"
	"net/http"
	_ "net/http/pprof"
	"os"
)

func handleReport(w http.ResponseWriter, r *http.Request) {
	scratch := make([]byte, 256<<10)
	for i := range scratch {
		scratch[i] = byte(i)
	}
	rows := make([]map[string]any, 200)
	for i := range rows {
		rows[i] = map[string]any{"row": i, "checksum": int(scratch[i*7]), "label": "row-label"}
	}
	var buf bytes.Buffer
	json.NewEncoder(&buf).Encode(rows)
	w.Header().Set("Content-Type", "application/json")
	w.Write(buf.Bytes()[:64])
}

func main() {
	http.HandleFunc("/", handleReport)
	log.Fatal(http.ListenAndServe("127.0.0.1:"+port(), nil))
}

func port() string {
	if p := os.Getenv("PORT"); p != "" {
		return p
	}
	return "8080"
}
