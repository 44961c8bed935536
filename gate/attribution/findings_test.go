package attribution

// The real profiles the rules are tested on, from services that leak each
// way (about two minutes):
//go:generate sh -c "cd testdata/leaks && go run -trimpath . -out ../profiles"

import (
	"bufio"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/memgate/memgate/gate"
)

// leaksOwner is the generator's module (testdata/leaks) as a repository:
// its profiles were written by a -trimpath build, so their files are
// import-path-prefixed; example.com/reqctx is vendored.
var leaksOwner = Owner{
	Packages: []Root{{ImportPath: "example.com/leaks"}},
	Vendored: []Root{{ImportPath: "example.com/reqctx", Dir: "vendor/example.com/reqctx"}},
}

// kindProfiles diffs the real profiles testdata/leaks wrote for a kind.
func kindProfiles(t *testing.T, kind string) ([]gate.HeapSite, []gate.GoroutineStack) {
	t.Helper()
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", "profiles", kind, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	heap, err := leaksOwner.HeapGrowth(read("heap-0.pb.gz"), read("heap-1.pb.gz"), 0)
	if err != nil {
		t.Fatal(err)
	}
	gor, err := leaksOwner.GoroutineGrowth(read("goroutine-0.pb.gz"), read("goroutine-1.pb.gz"), 0)
	if err != nil {
		t.Fatal(err)
	}
	return heap, gor
}

// lineOf is the line of the generator's main.go that contains text (after
// the lines with the texts before it, separated by "|"): the line the
// profiles must name.
func lineOf(t *testing.T, text string) int {
	t.Helper()
	f, err := os.Open("testdata/leaks/main.go")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	texts := strings.Split(text, "|")
	for n := 1; sc.Scan(); n++ {
		if strings.Contains(sc.Text(), texts[0]) {
			if texts = texts[1:]; len(texts) == 0 {
				return n
			}
		}
	}
	t.Fatalf("no line with %q in the generator", text)
	return 0
}

func TestFindingsOfEachKind(t *testing.T) {
	for _, tc := range []struct {
		kind     string
		want     gate.LeakKind
		function string
		line     string // the text of the line the culprit is at
		summary  string
	}{
		{"requests", gate.KindRequestsRetained, "main.rememberUser", `reqctx.Set(r, "user"`, "whole requests retained (their headers, URL and context, as net/http read them), held per request by main.rememberUser (main.go:"},
		{"connections", gate.KindConnectionsLeaked, "main.getHttpClient", "return &http.Client{Transport", "2,000 HTTP client connections leaked, made by main.getHttpClient (main.go:"},
		{"timers", gate.KindTimersNotStopped, "main.scheduleExpiry", "time.AfterFunc(time.Hour", "timers never stopped (time.AfterFunc), started by main.scheduleExpiry (main.go:"},
		{"cache", gate.KindUnboundedCache, "main.(*responseCache).put", "c.entries[k] = v", "a cache without a bound: main.(*responseCache).put (main.go:"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			heap, gor := kindProfiles(t, tc.kind)
			fs := Findings(heap, gor)
			if len(fs) == 0 {
				t.Fatalf("no findings; heap %+v", heap[:min(5, len(heap))])
			}
			f := fs[0]
			if tc.want.Goroutines() {
				for _, g := range fs {
					if g.Kind.Goroutines() {
						f = g
						break
					}
				}
			}
			t.Logf("%s: %s", f.Kind, f.Summary)
			if f.Kind != tc.want || f.Culprit == nil {
				t.Fatalf("finding %+v, want kind %s", f, tc.want)
			}
			want := gate.Frame{Function: tc.function, File: "main.go", Line: lineOf(t, tc.line)}
			if *f.Culprit != want {
				t.Errorf("culprit %+v, want %+v", *f.Culprit, want)
			}
			if !strings.Contains(f.Summary, tc.summary) || !strings.Contains(f.Summary, want.String()) {
				t.Errorf("summary %q, want it to contain %q and %q", f.Summary, tc.summary, want)
			}
			for _, g := range fs {
				if g.Kind != tc.want && g.Kind != gate.KindGoroutinesBlocked {
					t.Errorf("also a finding of another kind: %+v", g)
				}
			}
		})
	}
}

// The request registry is vendored: its frame is the first of the
// repository's on the stack, but the culprit is the service's own handler
// code calling it; the registry's site itself names the vendored frame
// only when no frame of the repository's own is there.
func TestRequestsRetainedNamesTheHandlerNotTheVendoredRegistry(t *testing.T) {
	heap, _ := kindProfiles(t, "requests")
	var reading int
	for _, h := range heap {
		if readsRequests(h.Stack) {
			reading++
			if h.Culprit != nil {
				t.Errorf("net/http's %s has a culprit %+v", h.Function, h.Culprit)
			}
		}
		if h.Function == "example.com/reqctx.Set" && (h.Culprit == nil || h.Culprit.Function != "main.rememberUser") {
			t.Errorf("reqctx.Set's culprit %+v, want main.rememberUser", h.Culprit)
		}
	}
	if reading < 2 {
		t.Errorf("%d request-reading sites", reading)
	}
	vendorOnly := Owner{Vendored: leaksOwner.Vendored, Packages: []Root{{ImportPath: "example.com/other"}}}
	c := vendorOnly.culprit([]frame{
		{fn: "example.com/reqctx.Set", file: "example.com/reqctx/reqctx.go", line: 20},
		{fn: "net/http.HandlerFunc.ServeHTTP", file: "net/http/server.go", line: 2300},
	})
	if c == nil || !c.Vendored || c.File != "vendor/example.com/reqctx/reqctx.go" || c.Line != 20 {
		t.Errorf("vendored culprit %+v", c)
	}
}

func TestBlockedGoroutinesSayHowTheyWait(t *testing.T) {
	_, gor := kindProfiles(t, "blocked")
	fs := Findings(nil, gor)
	want := map[string]struct{ words, line string }{
		"main.sendReply":         {"on a channel send with no receiver", `reply <- "done"`},
		"main.awaitConfirmation": {"on a channel receive with no sender", "log.Println(<-c)"},
		"main.awaitEither":       {"in a select with no ready case", "func awaitEither|select {"},
		"main.waitForLock":       {"on a sync.Mutex never unlocked", "mu.Lock()"},
		"main.waitForSignal":     {"in sync.Cond.Wait, never signalled", "c.Wait()"},
	}
	for _, f := range fs {
		t.Logf("%s", f.Summary)
		if f.Kind != gate.KindGoroutinesBlocked || f.Culprit == nil {
			t.Errorf("finding %+v", f)
			continue
		}
		w, ok := want[f.Culprit.Function]
		if !ok {
			t.Errorf("unexpected culprit %+v", f.Culprit)
			continue
		}
		delete(want, f.Culprit.Function)
		frame := gate.Frame{Function: f.Culprit.Function, File: "main.go", Line: lineOf(t, w.line)}
		if f.Count != 400 || *f.Culprit != frame || f.Summary != "blocked "+w.words+", in "+frame.String() {
			t.Errorf("finding %+v (culprit %+v), want 400 %s at %+v", f, f.Culprit, w.words, frame)
		}
	}
	for fn := range want {
		t.Errorf("no finding for %s", fn)
	}
}

func TestOwnerPlacesFrames(t *testing.T) {
	o := Owner{
		Packages:  []Root{{ImportPath: "github.com/acme/svc"}, {ImportPath: "github.com/acme/svc/tools", Dir: "tools"}, {ImportPath: "github.com/acme/legacy", Dir: "legacy"}},
		Vendored:  []Root{{ImportPath: "github.com/gorilla/context", Dir: "vendor/github.com/gorilla/context"}},
		BuildDirs: []string{"/tmp/memgate-run-1/src"},
	}
	for _, tc := range []struct {
		f    frame
		want where
		rel  string
	}{
		// Absolute build-time paths, in the scratch copy.
		{frame{"main.handler", "/tmp/memgate-run-1/src/cmd/api/main.go", 3}, own, "cmd/api/main.go"},
		{frame{"github.com/gorilla/context.Set", "/tmp/memgate-run-1/src/vendor/github.com/gorilla/context/context.go", 3}, vendored, "vendor/github.com/gorilla/context/context.go"},
		{frame{"net/http.(*conn).serve", "/usr/local/go/src/net/http/server.go", 3}, foreign, ""},
		{frame{"github.com/acme/svc/sdk.Do", "/root/go/pkg/mod/github.com/acme/svc/sdk@v1.0.0/do.go", 3}, foreign, ""},
		// -trimpath: import-path-prefixed files.
		{frame{"github.com/acme/svc/internal/api.(*H).Serve", "github.com/acme/svc/internal/api/h.go", 3}, own, "internal/api/h.go"},
		{frame{"github.com/acme/svc/tools/gen.Run", "github.com/acme/svc/tools/gen/run.go", 3}, own, "tools/gen/run.go"},
		{frame{"github.com/acme/svc/sdk.Do", "github.com/acme/svc/sdk@v1.0.0/do.go", 3}, foreign, ""},
		{frame{"github.com/acme/svcx.Do", "github.com/acme/svcx/do.go", 3}, foreign, ""},
		{frame{"github.com/gorilla/context.Set", "github.com/gorilla/context/context.go", 3}, vendored, "vendor/github.com/gorilla/context/context.go"},
		// A GOPATH-era import path, built in a GOPATH of its own.
		{frame{"main.main", "/home/sandbox/go/src/github.com/acme/legacy/main.go", 3}, own, "legacy/main.go"},
		{frame{"github.com/lib/pq.Open", "/home/sandbox/go/src/github.com/acme/legacy/vendor/github.com/lib/pq/conn.go", 3}, vendored, "legacy/vendor/github.com/lib/pq/conn.go"},
		{frame{"github.com/lib/pq.Open", "/home/sandbox/go/src/github.com/lib/pq/conn.go", 3}, foreign, ""},
		// A GOPATH-era import path.
		{frame{"github.com/acme/legacy/store.Put", "github.com/acme/legacy/store/put.go", 3}, own, "legacy/store/put.go"},
		// No file: the package path says.
		{frame{"github.com/acme/svc.handler", "", 0}, own, ""},
		{frame{"main.main", "", 0}, own, ""},
		{frame{"encoding/json.Unmarshal", "", 0}, foreign, ""},
	} {
		w, rel := o.place(tc.f)
		if w != tc.want || rel != tc.rel {
			t.Errorf("%s in %s: %v %q, want %v %q", tc.f.fn, tc.f.file, w, rel, tc.want, tc.rel)
		}
	}
}

// This test binary's own profiles record absolute build-time paths: the
// culprit's file is made relative to the repository's root.
func TestCulpritOfAnAbsolutePathProfile(t *testing.T) {
	_, here, _, _ := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(filepath.Dir(here))) // gate/attribution/x.go
	o := Owner{Packages: []Root{{ImportPath: "github.com/memgate/memgate"}}, BuildDirs: []string{"/elsewhere", root}}
	base := goroutineProfile(t)
	block := make(chan struct{})
	defer close(block)
	for i := 0; i < 10; i++ {
		go parkedForever(block)
	}
	var stacks []gate.GoroutineStack
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var err error
		if stacks, err = o.GoroutineGrowth(base, goroutineProfile(t), 0); err != nil {
			t.Fatal(err)
		}
		if (len(stacks) > 0 && stacks[0].Delta == 10) || time.Now().After(deadline) {
			break
		}
	}
	if len(stacks) == 0 || stacks[0].Culprit == nil {
		t.Fatalf("stacks %+v", stacks)
	}
	c := *stacks[0].Culprit
	if c.Function != "github.com/memgate/memgate/gate/attribution.parkedForever" || c.File != "gate/attribution/attribution_test.go" || c.Line == 0 || c.Vendored {
		t.Errorf("culprit %+v", c)
	}
	fs := Findings(nil, stacks)
	if len(fs) == 0 || fs[0].Kind != gate.KindGoroutinesBlocked || fs[0].Count != 10 || !strings.Contains(fs[0].Summary, "blocked on a channel receive with no sender, in github.com/memgate/memgate/gate/attribution.parkedForever (gate/attribution/attribution_test.go:") {
		t.Errorf("findings %+v", fs)
	}
}

// What a handler allocates for the goroutines it starts and that leak
// (their closures, channels) is theirs, not a cache's.
func TestLeakedGoroutinesClosuresAreNotACache(t *testing.T) {
	fn := "main.handleOrder.func1"
	heap := []gate.HeapSite{{Function: fn, DeltaBytes: 1 << 20, DeltaObjs: 4000, Culprit: &gate.Frame{Function: fn, File: "main.go", Line: 20},
		Stack: []string{fn, "net/http.HandlerFunc.ServeHTTP"}}}
	gor := []gate.GoroutineStack{{Top: fn + ".1", Delta: 4000, Stack: []string{"runtime.gopark", "runtime.chanrecv", "runtime.chanrecv1", fn + ".1"},
		Culprit: &gate.Frame{Function: fn + ".1", File: "main.go", Line: 23}}}
	fs := Findings(heap, gor)
	if len(fs) != 1 || fs[0].Kind != gate.KindGoroutinesBlocked {
		t.Errorf("findings %+v", fs)
	}
	// Without the goroutines, the same growth is a cache's.
	if fs := Findings(heap, nil); len(fs) != 1 || fs[0].Kind != gate.KindUnboundedCache {
		t.Errorf("findings %+v", fs)
	}
}

// What a leaked goroutine allocated before it blocked (the answer it then
// sends forever, seen on a real tracker) is held by the goroutines, not
// by a cache in the encoder that built it.
func TestWhatLeakedGoroutinesBuiltIsNotACache(t *testing.T) {
	announce := &gate.Frame{Function: "goat.TrackerAnnounce", File: "tracker.go", Line: 47}
	heap := []gate.HeapSite{{Function: "bencode.EncDictMap", DeltaBytes: 1313729, DeltaObjs: 5000,
		Culprit: &gate.Frame{Function: "bencode.EncDictMap", File: "bencode.go", Line: 54},
		Stack:   []string{"bencode.EncDictMap", "goat.fakeAnnounceResponse", "goat.TrackerAnnounce"}}}
	gor := []gate.GoroutineStack{{Top: "goat.TrackerAnnounce", Delta: 3997, Culprit: announce,
		Stack: []string{"runtime.gopark", "runtime.chansend", "runtime.chansend1", "goat.TrackerAnnounce"}}}
	fs := Findings(heap, gor)
	if len(fs) != 1 || fs[0].Kind != gate.KindGoroutinesBlocked || *fs[0].Culprit != *announce {
		t.Errorf("findings %+v", fs)
	}
	// An encoder called from elsewhere keeps its cache's name.
	heap[0].Stack = []string{"bencode.EncDictMap", "goat.statusPage"}
	if fs := Findings(heap, gor); len(fs) != 2 || fs[0].Kind != gate.KindUnboundedCache {
		t.Errorf("findings %+v", fs)
	}
	// On the goroutines' path, but an object per request where a few
	// goroutines leaked (a handler that caches every request and blocks
	// now and then, found by an attacker's review): still a cache.
	heap[0].Stack = []string{"bencode.EncDictMap", "goat.fakeAnnounceResponse", "goat.TrackerAnnounce"}
	heap[0].DeltaObjs = 8000
	gor[0].Delta = 10
	if fs := Findings(heap, gor); len(fs) != 2 || fs[0].Kind != gate.KindUnboundedCache {
		t.Errorf("findings %+v", fs)
	}
}

// Two heap-profile samples that landed on requests in flight are not
// whole requests retained.
func TestRequestsRetainedNeedsSamples(t *testing.T) {
	read := []string{"net/textproto.readMIMEHeader", "net/http.readRequest", "net/http.(*conn).readRequest", "net/http.(*conn).serve"}
	heap := func(samples float64) []gate.HeapSite {
		return []gate.HeapSite{
			{Function: "net/textproto.readMIMEHeader", DeltaBytes: 512 << 10, Samples: samples, Stack: read},
			{Function: "net/http.readRequest", DeltaBytes: 512 << 10, Samples: samples, Stack: read[1:]},
			{Function: "main.remember", DeltaBytes: 512 << 10, Samples: samples, Stack: []string{"main.remember", "net/http.HandlerFunc.ServeHTTP"},
				Culprit: &gate.Frame{Function: "main.remember", File: "main.go", Line: 9}},
		}
	}
	if fs := Findings(heap(1), nil); len(fs) != 0 {
		t.Errorf("on 2 samples: %+v", fs)
	}
	if fs := Findings(heap(4), nil); len(fs) != 1 || fs[0].Kind != gate.KindRequestsRetained || fs[0].Culprit.Function != "main.remember" {
		t.Errorf("on 8 samples: %+v", fs)
	}
}

// Of the handler's per-request growth, its call into the registry names
// the line, however the samples fell between it and its own allocations.
func TestRequestsRetainedNamesTheCallIntoTheRegistry(t *testing.T) {
	read := []string{"net/textproto.readMIMEHeader", "net/http.readRequest", "net/http.(*conn).readRequest", "net/http.(*conn).serve"}
	handler := []string{"main.currentUser", "net/http.HandlerFunc.ServeHTTP"}
	for _, own := range []int64{1 << 20, 4 << 20} {
		heap := []gate.HeapSite{
			{Function: "net/http.readRequest", DeltaBytes: 8 << 20, Stack: read[1:]},
			{Function: "net/textproto.readMIMEHeader", DeltaBytes: 4 << 20, Stack: read},
			{Function: "main.currentUser", DeltaBytes: own, Stack: handler, Culprit: &gate.Frame{Function: "main.currentUser", File: "main.go", Line: 27}},
			{Function: "example.com/sessions.Get", DeltaBytes: 2 << 20, Stack: append([]string{"example.com/sessions.Get"}, handler...),
				Culprit: &gate.Frame{Function: "main.currentUser", File: "main.go", Line: 25}},
		}
		sort.Slice(heap, func(i, j int) bool { return heap[i].DeltaBytes > heap[j].DeltaBytes })
		fs := Findings(heap, nil)
		if len(fs) != 1 || fs[0].Culprit == nil || fs[0].Culprit.Line != 25 || fs[0].Bytes != 14<<20+own {
			t.Errorf("own %d: findings %+v", own, fs)
		}
	}
}

// Client connections are counted by their read loops, HTTP/1 (a read and
// a write loop each) and HTTP/2 (a read loop), whatever the read loop
// waits in; other stacks are not connections.
func TestClientConnectionsCountsReadLoops(t *testing.T) {
	gor := []gate.GoroutineStack{
		{Delta: 5, Stack: []string{"internal/poll.runtime_pollWait", "net/http.(*persistConn).Read", "bufio.(*Reader).Peek", "net/http.(*persistConn).readLoop"}},
		{Delta: 1, Stack: []string{"runtime.selectgo", "net/http.(*persistConn).readLoop"}},
		{Delta: 6, Stack: []string{"runtime.selectgo", "net/http.(*persistConn).writeLoop"}},
		{Delta: 2, Stack: []string{"internal/poll.runtime_pollWait", "net/http.(*http2ClientConn).readLoop"}},
		{Delta: 3, Stack: []string{"internal/poll.runtime_pollWait", "golang.org/x/net/http2.(*ClientConn).readLoop"}},
		{Delta: 40, Stack: []string{"runtime.chanrecv1", "main.worker"}},
	}
	if conns, goroutines := ClientConnections(gor); conns != 11 || goroutines != 17 {
		t.Fatalf("conns %d, goroutines %d; want 11 and 17", conns, goroutines)
	}
}
