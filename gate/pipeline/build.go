package pipeline

import (
	"context"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/gate/service"
)

// build compiles the service in the gate's build sandbox.
func (r *run) build(ctx context.Context, g *gateContainment) (service.Built, error) {
	r.phase("build", g.dir)
	spec := g.buildSpec(r.opts.Config, r.opts.ToolEnv)
	built, err := service.Build(ctx, spec)
	r.report.Timings.Build = gate.Duration(built.Took)
	r.report.BuildOutput = service.LastLines(built.Output, 60)
	r.report.Environment.GoVersion = built.GoVersion
	if err != nil {
		return built, err
	}
	// The build saw the source at its root in the build (the checkout, or
	// its place in a GOPATH), g.dir, a copy of g.copied when there is
	// one: the profiles' files are under one of them.
	dirs := []string{spec.SourceRoot(), g.dir}
	if g.copied != "" {
		dirs = append(dirs, g.copied)
	}
	r.owner = repositoryOwner(g.dir, spec.GOPATHImportPath(), dirs...)
	if built.Note != "" {
		r.log.Info("reader", "note", built.Note)
	}
	return built, nil
}
