// panics-under-load crashes the whole process after 300 requests.
package main

import (
	"net/http"
	_ "net/http/pprof"
	"os"
	"sync/atomic"
)

var n atomic.Int64

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 300 {
			go func() { panic("orders: nil map write in reconcile loop") }()
		}
		w.Write([]byte("ok"))
	})
	http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil)
}
