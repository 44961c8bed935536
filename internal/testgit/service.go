package testgit

// EchoService is the main.go of a service (module example.com/shop) that
// prints the first request body it is sent: a targets file that made
// memgate read a secret and send it would show it in the report.
const EchoService = `package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
)

func main() {
	var once sync.Once
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		if len(b) > 0 {
			once.Do(func() { fmt.Printf("BODY %q\n", b) })
		}
		w.Write([]byte("ok"))
	})
	http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil)
}
`

// GoMod is the go.mod of EchoService.
const GoMod = "module example.com/shop\n\ngo 1.22\n"
