package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/memgate/memgate/gate/config"
	"github.com/memgate/memgate/gate/pipeline"
	"github.com/memgate/memgate/gate/service"
)

// runDoctor makes a sandbox as gates would (same user, same cache
// directory) and says what it found: an operator's first check of a worker,
// and the container image's health check.
func runDoctor(ctx context.Context, getenv func(string) string, stdout io.Writer) int {
	dir := cacheDir(getenv)
	c := service.NewContainment(ctx, dir, service.ToolchainEnv(getenv))
	if !c.Sandboxed {
		fmt.Fprintf(stdout, "memgate doctor: NO SANDBOX: %s\n%s\n", c.Why, containmentHelp)
		return 1
	}
	who := "an unprivileged user: the sandbox maps memgate's uid to its own user, in its own namespaces"
	if c.Root {
		who = "root: each gate's build and service get users of their own"
	}
	fmt.Fprintf(stdout, "memgate doctor: sandbox OK (uid %d; %s)\n  GOROOT %s\n  caches %s\n", os.Geteuid(), who, c.GoRoot, dir)
	// What services' dependencies of each kind would run (docs/deploy.md).
	kinds := pipeline.KindPrograms()
	for _, k := range config.DependencyKinds {
		fmt.Fprintf(stdout, "  dependencies of kind %s: %s\n", k, kinds[k])
	}
	return 0
}
