// Command memgate is a pre-merge memory gate for Go services: it builds a
// service, drives it with HTTP load, samples its heap and goroutines, and
// fails when it leaks.
//
//	memgate check [flags] DIR    gate the service in DIR
//	memgate serve [flags]        the GitHub webhook server and gate workers
//	memgate migrate              bring the database schema up to date
//	memgate doctor               can this machine sandbox pull requests' code?
//	memgate version              print the version
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func memgateVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

const usage = `memgate: a pre-merge memory gate for Go services

usage:
  memgate check [flags] [DIR]   gate the Go service in DIR (default .)
  memgate serve [flags]         receive GitHub webhooks, queue and run gates, report checks
  memgate worker [flags]        run queued gates without serving HTTP (shares serve's settings)
  memgate migrate [flags]       bring the database schema up to date
  memgate doctor                say whether this machine can sandbox pull requests' code (exit 1 if not)
  memgate version               print memgate's version

Run "memgate check -h" for the check flags. Exit status of check:
0 pass, 1 the gate failed, 2 memgate could not run the gate, 3 inconclusive.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "check":
		return runCheck(ctx, args[1:], os.Getenv, stdout, stderr)
	case "serve":
		return runServe(ctx, args[1:], os.Getenv, stderr)
	case "worker":
		return runWorker(ctx, args[1:], os.Getenv, stderr)
	case "migrate":
		return runMigrate(ctx, args[1:], os.Getenv, stderr)
	case "doctor":
		return runDoctor(ctx, os.Getenv, stdout)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "memgate", memgateVersion())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "memgate: unknown command %q\n\n%s", args[0], usage)
	return 2
}
