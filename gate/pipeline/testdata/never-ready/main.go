// never-ready ignores PORT and listens elsewhere, so memgate never sees it.
package main

import (
	"net"
	"net/http"
)

func main() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	http.Serve(ln, nil)
}
