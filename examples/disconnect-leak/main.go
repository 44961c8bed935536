// disconnect-leak serves a report built from rows a query sends on a
// channel. When the client goes away mid-report the query stops, but it
// does not close the channel, so the handler waits on it for good (and
// holds its connection open). memgate should fail it under requests that
// leave early and name main.report. It has no pprof: memgate reads it
// through the reader it adds to the build.
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
	for i := 0; i < 20; i++ {
		select {
		case <-ctx.Done():
			return // rows is never closed on this path
		case <-time.After(5 * time.Millisecond):
		}
		rows <- row{id: i, total: float64(i) * 1.5}
	}
	close(rows)
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
