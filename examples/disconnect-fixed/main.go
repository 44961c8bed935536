// disconnect-fixed is disconnect-leak with its fix: the query closes the
// channel on every path, so the handler ends when the client goes away.
// memgate should pass it. It has no pprof, like its twin.
package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"os"
	"time"
)

type row struct {
	id    int
	total float64
}

// query sends the report's rows, one every 5 ms, until ctx ends.
func query(ctx context.Context, rows chan<- row) {
	defer close(rows)
	for i := 0; i < 20; i++ {
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Millisecond):
		}
		rows <- row{id: i, total: float64(i) * 1.5}
	}
}

func report(w http.ResponseWriter, r *http.Request) {
	rows := make(chan row)
	go query(r.Context(), rows)
	var sum float64
	for row := range rows {
		fmt.Fprintf(w, "%d,%.2f\n", row.id, row.total)
		sum += row.total
	}
	fmt.Fprintf(w, "total,%.2f\n", sum)
}

func main() {
	http.HandleFunc("/report", report)
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	log.Fatal(http.ListenAndServe("127.0.0.1:"+port(), nil))
}

func port() string {
	if p := os.Getenv("PORT"); p != "" {
		return p
	}
	return "8080"
}
