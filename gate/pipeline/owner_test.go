package pipeline

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/memgate/memgate/gate/attribution"
)

// The repository's go.mod files (the root's, a nested module's) and its
// vendored modules are its own; a go.mod that is a symlink, one under
// testdata, and one too big are not read.
func TestRepositoryOwnerReadsModulesAndVendor(t *testing.T) {
	root := t.TempDir()
	secret := filepath.Join(t.TempDir(), "secret")
	files := map[string]string{
		"go.mod":                     "module github.com/acme/svc\n\ngo 1.22\n",
		"vendor/modules.txt":         "# github.com/gorilla/context v1.1.1\n## explicit\ngithub.com/gorilla/context\n# example.com/x v0.1.0 => ./x\n",
		"vendor/github.com/x/go.mod": "module github.com/vendored/ignored\n",
		"tools/go.mod":               "module github.com/acme/svc/tools\n",
		"testdata/fixture/go.mod":    "module example.com/fixture\n",
		"big/go.mod":                 "module example.com/big\n" + string(make([]byte, ownerMaxFile)),
		"linked/placeholder.txt":     "",
	}
	for name, body := range files {
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(secret, []byte("module example.com/secret\n"), 0o600)
	if err := os.Symlink(secret, filepath.Join(root, "linked", "go.mod")); err != nil {
		t.Fatal(err)
	}
	got := repositoryOwner(root, "", "/build/src", root)
	want := attribution.Owner{
		Packages: []attribution.Root{{ImportPath: "github.com/acme/svc"}, {ImportPath: "github.com/acme/svc/tools", Dir: "tools"}},
		Vendored: []attribution.Root{
			{ImportPath: "github.com/gorilla/context", Dir: "vendor/github.com/gorilla/context"},
			{ImportPath: "example.com/x", Dir: "vendor/example.com/x"},
		},
		BuildDirs: []string{"/build/src", root},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("owner\n got %+v\nwant %+v", got, want)
	}
	// A GOPATH-era repository: no go.mod, its import path given.
	if got := repositoryOwner(t.TempDir(), "github.com/acme/legacy"); !reflect.DeepEqual(got.Packages, []attribution.Root{{ImportPath: "github.com/acme/legacy"}}) {
		t.Errorf("GOPATH owner %+v", got)
	}
}
