package runner

import (
	"context"
	"testing"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/gate/pipeline"
)

// A repository without go.mod builds in GOPATH mode at its import path:
// the gate knows it from the repository (github.com/acme/api) unless the
// config names another (a vanity import path).
func TestGateGetsTheRepositorysImportPath(t *testing.T) {
	pass := func(context.Context, pipeline.Options) pipeline.Result {
		return pipeline.Result{Report: &gate.Report{Verdict: gate.Pass, Reason: "fine"}}
	}
	for yml, want := range map[string]string{
		"load:\n  duration: 5s\n":                  "github.com/acme/api",
		"build:\n  import_path: go.acme.dev/api\n": "go.acme.dev/api",
	} {
		r, _, id, seen := gateRun(t, yml, pass)
		if err := r.Execute(context.Background(), id, 9, true); err != nil {
			t.Fatal(err)
		}
		if cfgs := seen(); len(cfgs) != 1 || cfgs[0].Build.ImportPath != want {
			t.Errorf("config %q: the gate got %+v, want import path %s", yml, cfgs, want)
		}
	}
}
