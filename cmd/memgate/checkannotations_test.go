package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/memgate/memgate/gate"
)

// The check run of a failed gate whose report names 121 lines of the
// repository gets all of them as annotations, in requests GitHub takes (the
// fake refuses more than 50 in one, as GitHub does): 50, 50 and 21 on the
// one check run, completed once. Sites outside the repository, and paths
// the service's profile made up, get none.
func TestServeAnnotatesTheNamedLinesInBatchesOfFifty(t *testing.T) {
	gh := newFakeGitHub(t)
	c := &serveConfig{apiURL: gh.srv.URL + "/", appID: 7, appKeyFile: appKey(t), publicURL: "https://memgate.example"}
	reporter, err := newReporter(c, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	run := gate.Run{ID: 31, Repository: testRepo, HeadSHA: strings.Repeat("c", 40), InstallationID: testInstallation}
	if run.CheckRunID, err = reporter.Queued(ctx, run); err != nil {
		t.Fatal(err)
	}

	rep := &gate.Report{Verdict: gate.Fail, Reason: "heap +410 B/request", Load: gate.Load{Requests: 8000},
		Criteria: []gate.Criterion{{Name: gate.CritHeapGrowth, Status: gate.StatusFail}}}
	want := map[string]bool{}
	site := func(culprit *gate.Frame) {
		rep.Attribution.Heap = append(rep.Attribution.Heap, gate.HeapSite{Function: "main.alloc",
			DeltaBytes: int64(1<<20 - len(rep.Attribution.Heap)), Samples: 5, Stack: []string{"main.alloc"}, Culprit: culprit})
	}
	for i := range 120 {
		f := &gate.Frame{Function: fmt.Sprintf("main.handler%d", i), File: fmt.Sprintf("svc/h%03d.go", i), Line: 10 + i}
		site(f)
		want[fmt.Sprintf("%s:%d", f.File, f.Line)] = true
	}
	site(&gate.Frame{Function: "github.com/a/b.Get", File: "vendor/github.com/a/b/b.go", Line: 7, Vendored: true})
	want["vendor/github.com/a/b/b.go:7"] = true
	// The same line again: no second annotation.
	site(&gate.Frame{Function: "main.handler0", File: "svc/h000.go", Line: 10})
	for _, bad := range []*gate.Frame{
		nil, // nothing of the repository on the stack
		{Function: "net/http.(*conn).serve", File: "/usr/local/go/src/net/http/server.go", Line: 2000},
		{Function: "github.com/a/b.Get", File: "/root/go/pkg/mod/github.com/a/b@v1.2.3/b.go", Line: 7},
		{Function: "main.x", File: "../outside.go", Line: 1},
		{Function: "main.x", File: "svc/../../outside.go", Line: 1},
		{Function: "main.x", File: "github.com/a/b/b.go", Line: 1, Vendored: true},
		{Function: "main.x", File: "svc/x.go\nother.go", Line: 1},
		{Function: "main.x", File: "svc/x.go", Line: 0},
	} {
		site(bad)
	}
	if err := reporter.Completed(ctx, run, rep); err != nil {
		t.Fatal(err)
	}

	check := gh.checkRuns()[run.CheckRunID]
	if check == nil || check.Conclusion != "failure" || fmt.Sprint(check.Statuses) != "[queued completed]" {
		t.Fatalf("check run %+v", check)
	}
	if fmt.Sprint(check.Batches) != "[50 50 21]" {
		t.Errorf("annotations sent in batches of %v, want [50 50 21]", check.Batches)
	}
	got := map[string]bool{}
	for _, a := range check.Annotations {
		where := fmt.Sprintf("%s:%v", a["path"], a["start_line"])
		if got[where] || !want[where] {
			t.Errorf("annotation on %s: repeated (%v) or not a line the report named in the repository", where, got[where])
		}
		got[where] = true
		if msg := str(a["message"]); !strings.Contains(msg, "in-use over the window, 8,000 requests; ") ||
			!strings.HasSuffix(msg, "Run page: https://memgate.example/runs/31") {
			t.Errorf("annotation on %s says %q", where, msg)
		}
		if where == "vendor/github.com/a/b/b.go:7" && !strings.Contains(str(a["message"]), "vendored code") {
			t.Errorf("the vendored line's annotation does not say so: %q", a["message"])
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d lines annotated, want %d", len(got), len(want))
	}
	gh.mu.Lock()
	defer gh.mu.Unlock()
	if len(gh.badAuth) > 0 {
		t.Errorf("calls without the right credentials: %v", gh.badAuth)
	}
}
