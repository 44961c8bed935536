package checks

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/memgate/memgate/gate"
)

func failingReport() *gate.Report {
	return &gate.Report{
		Verdict: gate.Fail,
		Reason:  "goroutines +2,400 over 60 s, stuck in main.handleOrder.func1",
		Criteria: []gate.Criterion{
			{Name: gate.CritHeapFluctuation, Status: gate.StatusPass, Value: 0.031, Limit: 0.15, Unit: "ratio", Comparison: "<="},
			{Name: gate.CritGoroutineSettle, Status: gate.StatusFail, Value: 2400, Limit: 5, Unit: "goroutines", Comparison: "<=", Detail: "still 2,410 | after 10 s"},
		},
		Load: gate.Load{RequestedRate: 200, AchievedRate: 199.9, Requests: 8000, SuccessRatio: 1},
		Attribution: gate.Attribution{
			Heap:       []gate.HeapSite{{Function: "runtime.malg", DeltaBytes: 3 << 20}},
			Goroutines: []gate.GoroutineStack{{Top: "main.handleOrder.func1", Delta: 2400, Stack: []string{"runtime.gopark", "runtime.chanrecv1", "main.handleOrder.func1"}}},
		},
	}
}

func TestSummaryStatesTheFindingAndWhereToLook(t *testing.T) {
	rep := failingReport()
	s := Summary(rep, "https://memgate.example/runs/7")
	for _, want := range []string{"**memgate: FAIL**", "stuck in main.handleOrder.func1", "| heap fluctuation | ✅ pass | 3.1% | <= 15.0% |",
		"| goroutine settle | ❌ fail | 2400 | <= 5 |", "8,000 requests at 199.9/s", "**+2,400** waiting in `main.handleOrder.func1`",
		"runtime.gopark", "[Full report, charts and profiles](https://memgate.example/runs/7)"} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
	if Title(rep) != rep.Reason {
		t.Errorf("title %q", Title(rep))
	}
	if !strings.Contains(Text(rep), `still 2,410 \| after 10 s`) {
		t.Errorf("text does not escape table pipes: %s", Text(rep))
	}
}

func TestOutputRespectsGitHubLimits(t *testing.T) {
	rep := failingReport()
	rep.Verdict = gate.Error
	rep.Reason = strings.Repeat("é", 400)
	rep.ServiceOutput = strings.Repeat("panic: ünïcödé\n", 10000)
	rep.Criteria[1].Detail = strings.Repeat("ß", 70000)
	for name, out := range map[string]string{"title": Title(rep), "summary": Summary(rep, ""), "text": Text(rep)} {
		limit := maxOutputBytes
		if name == "title" {
			limit = maxTitleBytes
		}
		if len(out) > limit || !utf8.ValidString(out) {
			t.Errorf("%s: %d bytes (limit %d), valid UTF-8 %v", name, len(out), limit, utf8.ValidString(out))
		}
	}
	d := StatusDescription(strings.Repeat("ü", 300))
	if utf8.RuneCountInString(d) != maxStatusChars || !utf8.ValidString(d) {
		t.Errorf("status description of %d characters", utf8.RuneCountInString(d))
	}
}

func TestRetryHonoursRetryAfterAndGivesUp(t *testing.T) {
	var calls atomic.Int32
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies = append(bodies, string(b))
		switch calls.Add(1) {
		case 1:
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		case 2:
			w.WriteHeader(http.StatusBadGateway)
		default:
			w.WriteHeader(http.StatusCreated)
			w.Write([]byte(`{"id": 5}`))
		}
	}))
	defer srv.Close()
	s, err := NewStatuses("tok", Options{APIURL: srv.URL, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = s.post(context.Background(), gate.Run{Repository: "acme/api", HeadSHA: "abc"}, "pending", "queued")
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 3 || time.Since(start) < time.Second {
		t.Errorf("%d calls in %v; want 3, waiting the 1 s Retry-After", calls.Load(), time.Since(start))
	}
	for _, b := range bodies {
		var m map[string]any
		if json.Unmarshal([]byte(b), &m) != nil || m["context"] != "memgate" {
			t.Errorf("a retried request lost its body: %q", b)
		}
	}

	// A client error is not retried.
	calls.Store(0)
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusUnprocessableEntity)
	}))
	defer bad.Close()
	s, _ = NewStatuses("tok", Options{APIURL: bad.URL})
	if err := s.post(context.Background(), gate.Run{Repository: "acme/api", HeadSHA: "abc"}, "pending", "x"); err == nil || calls.Load() != 1 {
		t.Errorf("422: err %v after %d calls", err, calls.Load())
	}
}

func TestStatusesSendTheVerdict(t *testing.T) {
	var got map[string]any
	var auth, path string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth, path = r.Header.Get("Authorization"), r.URL.Path
		json.NewDecoder(r.Body).Decode(&got)
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	s, _ := NewStatuses("ghp_x", Options{APIURL: srv.URL + "/", PublicURL: "https://memgate.example/"})
	run := gate.Run{ID: 9, Repository: "acme/api", HeadSHA: "0123456789abcdef0123456789abcdef01234567"}
	if err := s.Completed(context.Background(), run, failingReport()); err != nil {
		t.Fatal(err)
	}
	if auth != "Bearer ghp_x" || path != "/repos/acme/api/statuses/"+run.HeadSHA {
		t.Errorf("auth %q path %q", auth, path)
	}
	if got["state"] != "failure" || got["context"] != "memgate" || got["target_url"] != "https://memgate.example/runs/9" ||
		!strings.Contains(got["description"].(string), "stuck in main.handleOrder.func1") {
		t.Errorf("status %+v", got)
	}
}

// Beside each site it names, the summary shows the line of the repository
// to open, when the site has one; a table without any keeps its columns.
func TestSummaryShowsTheCulpritsLines(t *testing.T) {
	s := Summary(annotationCases[0].rep, runURL)
	for _, want := range []string{"| growth | function | from | code |",
		"| +3.1 MiB | `net/textproto.readMIMEHeader` | `main.(*registry).keep` | `registry.go:41` |",
		"| +878.9 KiB | `main.(*cache).put` | `main.(*cache).put` | `internal/cache/cache.go:77` |",
		"| +683.6 KiB | `runtime.malg` | ` ` |  |"} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
	s = Summary(annotationCases[1].rep, runURL)
	for _, want := range []string{"**+2,400** waiting in `main.handleOrder.func1` from `main.handleOrder.func1` at `orders/handler.go:58`:",
		"**+1,200** waiting in `net.(*netFD).Read`:", "**+300** waiting in `time.Sleep` from `main.poll` at `poll.go:12`:"} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
	s = Summary(annotationCases[2].rep, runURL)
	if want := "`vendor/github.com/gorilla/sessions/sessions.go:120` (vendored) |"; !strings.Contains(s, want) {
		t.Errorf("summary lacks %q:\n%s", want, s)
	}
	// Made-up paths are not shown; a hostile name stays inside its cell.
	hostile := *annotationCases[3].rep
	sites := hostile.Attribution.Heap
	hostile.Attribution.Heap = append([]gate.HeapSite{sites[7]}, sites[:4]...)
	s = Summary(&hostile, runURL)
	if strings.Contains(s, "passwd") || strings.Contains(s, "/usr/local/go") || strings.Contains(s, "\n::error") ||
		!strings.Contains(s, "`main.(*h).ServeHTTP  Injected: yes` at `handler.go:30` |") {
		t.Errorf("hostile sites in the summary:\n%s", s)
	}
	if s := Summary(failingReport(), runURL); !strings.Contains(s, "| growth | function | from |\n|---|---|---|\n") {
		t.Errorf("a report without culprits changed its table:\n%s", s)
	}
}

func TestSummaryShowsTheRuntimesProofOrWhyNot(t *testing.T) {
	rep := failingReport()
	rep.Attribution.ProvenLeaks = &gate.ProvenLeaks{Read: true, Total: 2400, Stacks: []gate.GoroutineStack{
		{Top: "main.handleOrder.func1", Count: 2400, Stack: []string{"runtime.gopark", "runtime.chansend1", "main.handleOrder.func1"}}}}
	s := Summary(rep, "")
	for _, want := range []string{"### Proven leaked by the runtime", "2,400 goroutines are blocked", "**2,400** in `main.handleOrder.func1`", "runtime.chansend1"} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
	rep.Attribution.ProvenLeaks = &gate.ProvenLeaks{Note: "built without GOEXPERIMENT=goroutineleakprofile: go: unknown GOEXPERIMENT"}
	if s := Summary(rep, ""); !strings.Contains(s, "Goroutine leak profile not read: built without GOEXPERIMENT=goroutineleakprofile") {
		t.Errorf("summary does not say why there is no proof:\n%s", s)
	}
	rep.Attribution.ProvenLeaks = nil
	if s := Summary(rep, ""); strings.Contains(s, "leak profile") || strings.Contains(s, "Proven") {
		t.Errorf("a report without the profile mentions it:\n%s", s)
	}
}
