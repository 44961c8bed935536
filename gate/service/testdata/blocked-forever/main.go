// blocked-forever starts goroutines that wait on a channel nobody else
// holds, so nothing can ever wake them, then stays up for a minute (for
// memgate's reader to be asked about them).
package main

import (
	"fmt"
	"time"
)

//go:noinline
func awaitReply(reply chan string) { fmt.Println(<-reply) }

func main() {
	for i := 0; i < 7; i++ {
		reply := make(chan string)
		go awaitReply(reply)
	}
	time.Sleep(time.Minute)
}
