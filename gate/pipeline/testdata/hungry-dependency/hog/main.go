// hog holds HOG_MIB MiB, touched, then listens on $PORT.
package main

import (
	"log"
	"net/http"
	"os"
	"strconv"
)

var held []byte

func main() {
	mib, _ := strconv.Atoi(os.Getenv("HOG_MIB"))
	held = make([]byte, mib<<20)
	for i := range held {
		if i%4096 == 0 {
			held[i] = 1
		}
	}
	log.Printf("holding %d MiB", mib)
	log.Fatal(http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil))
}
