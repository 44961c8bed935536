package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "fatal: cannot open database: connection refused")
	os.Exit(1)
}
