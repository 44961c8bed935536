package checks

import (
	"encoding/json"
	"flag"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/internal/golden"
)

var update = flag.Bool("update", false, "rewrite the golden files")

const runURL = "https://memgate.example/runs/7"

// leakReport is a failed gate over 8,000 requests, failing on the criteria
// named, with the sites given.
func leakReport(failing []string, heap []gate.HeapSite, gor []gate.GoroutineStack) *gate.Report {
	rep := &gate.Report{Verdict: gate.Fail, Reason: "a leak", Load: gate.Load{Requests: 8000, AchievedRate: 200},
		Attribution: gate.Attribution{Heap: heap, Goroutines: gor}}
	for _, name := range []string{gate.CritHeapFluctuation, gate.CritHeapGrowth, gate.CritGoroutineGrowth, gate.CritGoroutineSettle} {
		st := gate.StatusPass
		for _, f := range failing {
			if f == name {
				st = gate.StatusFail
			}
		}
		rep.Criteria = append(rep.Criteria, gate.Criterion{Name: name, Status: st})
	}
	return rep
}

func frame(fn, file string, line int) *gate.Frame {
	return &gate.Frame{Function: fn, File: file, Line: line}
}

// The kinds of site a report names, each with the annotations it gets.
var annotationCases = []struct {
	name string
	rep  *gate.Report
}{
	{"heap", leakReport([]string{gate.CritHeapGrowth}, []gate.HeapSite{
		// Whole requests retained: allocated by net/http, held by the
		// service's handler.
		{Function: "net/textproto.readMIMEHeader", Origin: "main.(*registry).keep", DeltaBytes: 3_250_000, Samples: 6,
			Stack:   []string{"net/textproto.readMIMEHeader", "net/http.readRequest", "main.(*registry).keep", "main.handle"},
			Culprit: frame("main.(*registry).keep", "registry.go", 41)},
		// Allocated by the repository's own function.
		{Function: "main.(*cache).put", Origin: "main.(*cache).put", DeltaBytes: 900_000, Samples: 2.2,
			Stack: []string{"main.(*cache).put", "main.handle"}, Culprit: frame("main.(*cache).put", "internal/cache/cache.go", 77)},
		// Nothing of the repository on the stack: not annotated.
		{Function: "runtime.malg", DeltaBytes: 700_000, Stack: []string{"runtime.malg", "runtime.newproc1"}},
		// A bystander: a small share of the growth.
		{Function: "main.newBuf", DeltaBytes: 20_000, Samples: 4, Stack: []string{"main.newBuf"}, Culprit: frame("main.newBuf", "buf.go", 9)},
		// Shrank: nothing to say.
		{Function: "main.gone", DeltaBytes: -50_000, Culprit: frame("main.gone", "gone.go", 3)},
	}, nil)},
	{"goroutines", leakReport([]string{gate.CritGoroutineSettle}, nil, []gate.GoroutineStack{
		{Top: "main.handleOrder.func1", Delta: 2400, Count: 2410,
			Stack:   []string{"runtime.gopark", "runtime.chanrecv1", "main.handleOrder.func1"},
			Culprit: frame("main.handleOrder.func1", "orders/handler.go", 58)},
		{Top: "net.(*netFD).Read", Delta: 1200, Count: 1200,
			Stack:   []string{"internal/poll.(*FD).Read", "net.(*netFD).Read", "net/http.(*persistConn).readLoop"},
			Culprit: nil},
		{Top: "time.Sleep", Delta: 300, Count: 300, Stack: []string{"time.Sleep", "main.poll"}, Culprit: frame("main.poll", "poll.go", 12)},
	})},
	{"vendored", leakReport([]string{gate.CritHeapGrowth}, []gate.HeapSite{
		{Function: "github.com/gorilla/sessions.(*Registry).Get", Origin: "github.com/gorilla/sessions.(*Registry).Get", DeltaBytes: 2 << 20, Samples: 4,
			Stack: []string{"github.com/gorilla/sessions.(*Registry).Get", "main.handle"},
			Culprit: &gate.Frame{Function: "github.com/gorilla/sessions.(*Registry).Get",
				File: "vendor/github.com/gorilla/sessions/sessions.go", Line: 120, Vendored: true}},
	}, nil)},
	// What the service's profile may claim: none of it is annotated but
	// the plain path, whose function name cannot break the message's lines.
	{"hostile", leakReport([]string{gate.CritHeapGrowth}, []gate.HeapSite{
		{Function: "f1", DeltaBytes: 1 << 20, Culprit: frame("net/http.(*conn).serve", "/usr/local/go/src/net/http/server.go", 2000)},
		{Function: "f2", DeltaBytes: 1 << 20, Culprit: frame("main.x", "/root/go/pkg/mod/github.com/a/b@v1.0.0/b.go", 10)},
		{Function: "f3", DeltaBytes: 1 << 20, Culprit: frame("main.x", "../../../etc/passwd", 1)},
		{Function: "f4", DeltaBytes: 1 << 20, Culprit: frame("main.x", "a/../../b.go", 1)},
		{Function: "f5", DeltaBytes: 1 << 20, Culprit: frame("main.x", "main.go", 0)},
		{Function: "f6", DeltaBytes: 1 << 20, Culprit: &gate.Frame{Function: "main.x", File: "github.com/a/b/b.go", Line: 3, Vendored: true}},
		{Function: "f7", DeltaBytes: 1 << 20, Culprit: frame("main.x", "main.go\n::error file=x::y", 3)},
		{Function: "f8\n::error::forged", DeltaBytes: 1 << 20, Culprit: frame("main.(*h).ServeHTTP\r\nInjected: yes", "handler.go", 30)},
	}, nil)},
	// A handler that allocates and starts the goroutines that pile up:
	// one annotation on its line, with both.
	{"same-line", leakReport([]string{gate.CritHeapGrowth, gate.CritGoroutineSettle}, []gate.HeapSite{
		{Function: "main.handle", DeltaBytes: 1 << 20, Samples: 8, Stack: []string{"main.handle"}, Culprit: frame("main.handle", "main.go", 30)},
		{Function: "runtime.malg", DeltaBytes: 1 << 19, Samples: 4, Stack: []string{"runtime.malg", "main.handle"}, Culprit: frame("main.handle", "main.go", 30)},
	}, []gate.GoroutineStack{
		{Top: "main.handle.func1", Delta: 500, Count: 510, Stack: []string{"runtime.gopark", "main.handle.func1"}, Culprit: frame("main.handle", "main.go", 30)},
	})},
	// Heap sites of a gate that failed on its goroutines only: notices.
	{"other-kind", leakReport([]string{gate.CritGoroutineGrowth}, []gate.HeapSite{
		{Function: "main.handle", DeltaBytes: 1 << 20, Samples: 8, Stack: []string{"main.handle"}, Culprit: frame("main.handle", "main.go", 30)},
	}, nil)},
}

func TestAnnotationsMatchGoldenFiles(t *testing.T) {
	for _, tc := range annotationCases {
		t.Run(tc.name, func(t *testing.T) {
			anns := annotations(tc.rep, runURL)
			for _, a := range anns {
				if strings.ContainsAny(a.GetPath(), "\\\n") || strings.HasPrefix(a.GetPath(), "/") || strings.Contains(a.GetPath(), "..") ||
					a.GetStartLine() <= 0 || a.GetEndLine() != a.GetStartLine() || a.GetMessage() == "" ||
					!strings.HasSuffix(a.GetMessage(), "Run page: "+runURL) || strings.Contains(a.GetTitle(), "\n") {
					t.Errorf("annotation %s", mustJSON(t, a))
				}
			}
			golden.Check(t, "annotations-"+tc.name+".json", mustJSON(t, anns), *update)
		})
	}
}

func TestAnnotationsOnlyForAFailedGate(t *testing.T) {
	for _, v := range []gate.Verdict{gate.Pass, gate.Inconclusive, gate.Error} {
		rep := annotationCases[0].rep
		cp := *rep
		cp.Verdict = v
		if anns := annotations(&cp, runURL); len(anns) != 0 {
			t.Errorf("%s: %d annotations", v, len(anns))
		}
	}
}

// A report naming more sites than GitHub takes in a request, each on its
// own line, with names as long as a profile may make them: every
// annotation within GitHub's limits, loudest first, at most maxAnnotations.
func TestAnnotationsOfManySitesStayWithinLimits(t *testing.T) {
	var heap []gate.HeapSite
	for i := range 400 {
		heap = append(heap, gate.HeapSite{Function: strings.Repeat("é", 40_000), DeltaBytes: int64(1000 + i), Samples: 5,
			Stack:   []string{strings.Repeat("ß", 70_000)},
			Culprit: frame(strings.Repeat("ü", 40_000), fmt.Sprintf("pkg/f%03d.go", i), i+1)})
	}
	rep := leakReport([]string{gate.CritHeapGrowth}, heap, nil)
	if s := Summary(rep, runURL); len(s) > maxOutputBytes || !utf8.ValidString(s) || !strings.Contains(s, "`pkg/f000.go:1`") {
		t.Errorf("summary of %d bytes (limit %d), valid UTF-8 %v", len(s), maxOutputBytes, utf8.ValidString(s))
	}
	anns := annotations(rep, runURL)
	if len(anns) != maxAnnotations {
		t.Fatalf("%d annotations, want %d", len(anns), maxAnnotations)
	}
	for i, a := range anns {
		if len(a.GetTitle()) > maxAnnotationTitleBytes || len(a.GetMessage()) > maxAnnotationTextBytes || len(a.GetRawDetails()) > maxAnnotationTextBytes ||
			!utf8.ValidString(a.GetTitle()) || !utf8.ValidString(a.GetMessage()) || !utf8.ValidString(a.GetRawDetails()) {
			t.Fatalf("annotation %d: title %d, message %d, details %d bytes", i, len(a.GetTitle()), len(a.GetMessage()), len(a.GetRawDetails()))
		}
		if i > 0 && rank(a.GetAnnotationLevel()) < rank(anns[i-1].GetAnnotationLevel()) {
			t.Fatalf("annotation %d (%s) after a %s one", i, a.GetAnnotationLevel(), anns[i-1].GetAnnotationLevel())
		}
	}
	if got := batches(anns); len(got) != 5 || len(got[4]) != 50 {
		t.Errorf("%d batches", len(got))
	}
	if got := batches(anns[:120]); len(got) != 3 || len(got[0]) != 50 || len(got[1]) != 50 || len(got[2]) != 20 {
		t.Errorf("120 annotations in batches of %d", len(got))
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}
