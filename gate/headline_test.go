package gate

import (
	"strings"
	"testing"
)

// A function is named outright only when its growth rests on enough heap
// profile samples; a single sample may land on any allocation of the window
// (seen: a 128 B/request leak reported "held by hash/crc32.slicingMakeTable").
func TestHeadlineHedgesAttributionOnFewSamples(t *testing.T) {
	report := func(samples float64) *Report {
		return &Report{
			Verdict:  Fail,
			Criteria: []Criterion{{Name: CritHeapGrowth, Status: StatusFail, Value: 160, Limit: 32}},
			Load:     Load{AchievedRate: 200},
			Baseline: Baseline{SteadyFrom: 30, MeasureTo: 50},
			Attribution: Attribution{Heap: []HeapSite{{
				Function: "main.(*orderStore).remember", DeltaBytes: int64(samples * 524288), Samples: samples,
			}}},
		}
	}
	cases := []struct {
		samples float64
		want    string
	}{
		{1, "perhaps held by main.(*orderStore).remember (1 heap profile sample: too few to be sure)"},
		{2.2, "perhaps held by main.(*orderStore).remember (2 heap profile samples: too few to be sure)"},
		{8, ", held by main.(*orderStore).remember"},
		{0, ", held by main.(*orderStore).remember"}, // unknown: as before
	}
	for _, c := range cases {
		got := Headline(report(c.samples))
		if !strings.Contains(got, c.want) {
			t.Errorf("%v samples: %q, want it to contain %q", c.samples, got, c.want)
		}
		if c.samples >= MinHeapSamples && strings.Contains(got, "perhaps") {
			t.Errorf("%v samples hedged: %q", c.samples, got)
		}
	}
}

// The headline names the repository's frame with its file and line, and
// says the kind of leak when attribution recognised one.
func TestHeadlineNamesTheCulpritAndTheKind(t *testing.T) {
	report := func(a Attribution) *Report {
		return &Report{
			Verdict: Fail,
			Criteria: []Criterion{{Name: CritHeapGrowth, Status: StatusFail, Value: 1024, Limit: 32},
				{Name: CritGoroutineSettle, Status: StatusFail}},
			Load:        Load{AchievedRate: 200},
			Baseline:    Baseline{SteadyFrom: 30, MeasureFrom: 10, MeasureTo: 50},
			Settle:      Settle{WindowStart: 10, Final: 4010},
			Attribution: a,
		}
	}
	get := &Frame{Function: "main.getHttpClient", File: "exporter.go", Line: 123}
	holder := &Frame{Function: "main.rememberUser", File: "internal/api/user.go", Line: 40}
	for _, c := range []struct {
		name string
		a    Attribution
		want string
	}{
		{"culprits, no kind", Attribution{
			Heap:       []HeapSite{{Function: "net/textproto.readMIMEHeader", Origin: "github.com/dep/x.F", Culprit: holder, DeltaBytes: 8 << 20}},
			Goroutines: []GoroutineStack{{Top: "net/http.(*persistConn).readLoop", Delta: 4000}},
		}, "heap +1.0 KiB/request (+3.9 MiB over 20 s), held by main.rememberUser (internal/api/user.go:40); goroutines +4,000 over 40 s, stuck in net/http.(*persistConn).readLoop"},
		{"kinds", Attribution{
			Heap:       []HeapSite{{Function: "net/textproto.readMIMEHeader", DeltaBytes: 8 << 20}},
			Goroutines: []GoroutineStack{{Top: "net/http.(*persistConn).readLoop", Delta: 4000}},
			Findings: []Finding{
				{Kind: KindRequestsRetained, Summary: "whole requests retained (their headers, URL and context, as net/http read them), held per request by " + holder.String(), Culprit: holder},
				{Kind: KindConnectionsLeaked, Summary: "2,000 HTTP client connections leaked, made by " + get.String(), Culprit: get},
			},
		}, "heap +1.0 KiB/request (+3.9 MiB over 20 s), whole requests retained (their headers, URL and context, as net/http read them), held per request by main.rememberUser (internal/api/user.go:40); goroutines +4,000 over 40 s: 2,000 HTTP client connections leaked, made by main.getHttpClient (exporter.go:123)"},
	} {
		if got := Headline(report(c.a)); got != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.name, got, c.want)
		}
	}
}

// The runtime's goroutine records grow with leaked goroutines: the heap
// part says so instead of naming runtime.malg.
func TestHeadlineSaysLeakedGoroutinesHoldTheirRecords(t *testing.T) {
	f := &Frame{Function: "main.handleOrder.func1.1", File: "main.go", Line: 23}
	r := &Report{
		Verdict:  Fail,
		Criteria: []Criterion{{Name: CritHeapGrowth, Status: StatusFail, Value: 720, Limit: 32}, {Name: CritGoroutineSettle, Status: StatusFail}},
		Load:     Load{AchievedRate: 200},
		Baseline: Baseline{SteadyFrom: 30, MeasureFrom: 10, MeasureTo: 50},
		Settle:   Settle{WindowStart: 10, Final: 4010},
		Attribution: Attribution{
			Heap:     []HeapSite{{Function: "runtime.malg", DeltaBytes: 2 << 20}},
			Findings: []Finding{{Kind: KindGoroutinesBlocked, Summary: "blocked on a channel receive with no sender, in " + f.String(), Culprit: f}},
		},
	}
	want := "heap +720 B/request (+2.7 MiB over 20 s), held by the goroutines that leaked; goroutines +4,000 over 40 s: blocked on a channel receive with no sender, in main.handleOrder.func1.1 (main.go:23)"
	if got := Headline(r); got != want {
		t.Errorf("headline\n got %q\nwant %q", got, want)
	}
}

// What the leaked goroutines built before they blocked is theirs: a real
// tracker built each answer with its encoder, then blocked sending it, and
// the headline called the encoder's growth a cache.
func TestHeadlineSaysWhatLeakedGoroutinesBuiltIsTheirs(t *testing.T) {
	f := &Frame{Function: "goat.TrackerAnnounce", File: "tracker.go", Line: 47}
	r := &Report{
		Verdict:  Fail,
		Criteria: []Criterion{{Name: CritHeapGrowth, Status: StatusFail, Value: 522, Limit: 32}, {Name: CritGoroutineSettle, Status: StatusFail}},
		Load:     Load{AchievedRate: 200},
		Baseline: Baseline{SteadyFrom: 30, MeasureFrom: 10, MeasureTo: 50},
		Settle:   Settle{WindowStart: 1023, Final: 5020},
		Attribution: Attribution{
			Heap: []HeapSite{{Function: "bencode.EncDictMap", DeltaBytes: 1313729, DeltaObjs: 4456, Samples: 3,
				Culprit: &Frame{Function: "bencode.EncDictMap", File: "bencode.go", Line: 54},
				Stack:   []string{"bencode.EncDictMap", "goat.fakeAnnounceResponse", "goat.TrackerAnnounce"}}},
			Findings: []Finding{{Kind: KindGoroutinesBlocked, Summary: "blocked on a channel send with no receiver, in " + f.String(), Culprit: f, Count: 3997}},
		},
	}
	want := "heap +522 B/request (+2.0 MiB over 20 s), held by the goroutines that leaked, built by bencode.EncDictMap (bencode.go:54) before they blocked; goroutines +3,997 over 40 s: blocked on a channel send with no receiver, in goat.TrackerAnnounce (tracker.go:47)"
	if got := Headline(r); got != want {
		t.Errorf("headline\n got %q\nwant %q", got, want)
	}
	// Allocated elsewhere by the repository (a real exporter's probe: its
	// leaked collectors kept clients whose buffers getClusterName had
	// allocated): allocated by, not held by.
	r.Attribution.Heap[0].Stack = []string{"bencode.EncDictMap", "goat.statusPage"}
	want = "heap +522 B/request (+2.0 MiB over 20 s), allocated by bencode.EncDictMap (bencode.go:54) (perhaps kept by the goroutines that leaked); goroutines"
	if got := Headline(r); !strings.HasPrefix(got, want) {
		t.Errorf("headline\n got %q\nwant %q…", got, want)
	}
	// Many more objects than goroutines: a cache on the same path.
	r.Attribution.Heap[0].Stack = []string{"bencode.EncDictMap", "goat.fakeAnnounceResponse", "goat.TrackerAnnounce"}
	r.Attribution.Heap[0].DeltaObjs = 100 * 3997
	if got := Headline(r); strings.Contains(got, "built by") {
		t.Errorf("a site of 100 objects per leaked goroutine called theirs: %q", got)
	}
}

// A handler blocked for ever keeps its connection, and so the buffers
// net/http gave it: the heap part says so instead of naming bufio (a real
// SSE server's headline said "held by bufio.NewWriterSize").
func TestHeadlineSaysBlockedHandlersHoldTheirConnections(t *testing.T) {
	f := &Frame{Function: "main.(*Broker).ServeHTTP", File: "server.go", Line: 145}
	r := &Report{
		Verdict:  Fail,
		Criteria: []Criterion{{Name: CritHeapGrowth, Status: StatusFail, Value: 14848, Limit: 32}, {Name: CritGoroutineSettle, Status: StatusFail}},
		Load:     Load{AchievedRate: 20},
		Baseline: Baseline{SteadyFrom: 30, MeasureFrom: 10, MeasureTo: 50},
		Settle:   Settle{WindowStart: 10, Final: 810},
		Attribution: Attribution{
			Heap: []HeapSite{{Function: "bufio.NewWriterSize", DeltaBytes: 4 << 20,
				Stack: []string{"bufio.NewWriterSize", "net/http.newBufioWriterSize", "net/http.(*conn).serve"}}},
			Findings: []Finding{{Kind: KindGoroutinesBlocked, Summary: "blocked on a channel receive with no sender, in " + f.String(), Culprit: f}},
		},
	}
	want := "heap +14.5 KiB/request (+5.7 MiB over 20 s), held by the connections of the handlers that never return (net/http's per-connection bufio.NewWriterSize); goroutines +800 over 40 s: blocked on a channel receive with no sender, in main.(*Broker).ServeHTTP (server.go:145)"
	if got := Headline(r); got != want {
		t.Errorf("headline\n got %q\nwant %q", got, want)
	}
	// A client connection's buffers, kept by the connections that leaked.
	client := *r
	client.Attribution = Attribution{
		Heap: []HeapSite{{Function: "bufio.NewReaderSize", DeltaBytes: 4 << 20,
			Stack: []string{"bufio.NewReaderSize", "net/http.(*Transport).dialConn", "net/http.(*Transport).dialConnFor"}}},
		Findings: []Finding{{Kind: KindConnectionsLeaked, Summary: "7,948 HTTP client connections leaked, made by main.getHTTPClient (main.go:19)"}},
	}
	if got := Headline(&client); !strings.Contains(got, "held by the HTTP client connections that leaked (net/http's per-connection bufio.NewReaderSize); goroutines +800 over 40 s: 7,948 HTTP client connections leaked, made by main.getHTTPClient") {
		t.Errorf("client connections' headline: %q", got)
	}
	// Without leaked goroutines the allocation site is all there is.
	r.Attribution.Findings = nil
	if got := Headline(r); !strings.Contains(got, "held by bufio.NewWriterSize") {
		t.Errorf("headline without a goroutine leak: %q", got)
	}
}

// The runtime's proof stands beside the growth evidence, naming where the
// proven goroutines wait; a gate without it reads as before.
func TestHeadlineAddsTheRuntimesProof(t *testing.T) {
	rep := &Report{
		Verdict:     Fail,
		Criteria:    []Criterion{{Name: CritGoroutineSettle, Status: StatusFail}},
		Settle:      Settle{WindowStart: 10, Final: 2410},
		Baseline:    Baseline{MeasureFrom: 10, MeasureTo: 50},
		Attribution: Attribution{Goroutines: []GoroutineStack{{Top: "main.handleOrder.func1", Delta: 2400}}},
	}
	without := Headline(rep)
	if strings.Contains(without, "proven") {
		t.Fatalf("no proof, yet: %q", without)
	}
	rep.Attribution.ProvenLeaks = &ProvenLeaks{Read: true, Total: 2403, Stacks: []GoroutineStack{
		{Top: "main.handleOrder.func1", Count: 2400}, {Top: "main.init.func1", Count: 3}}}
	got := Headline(rep)
	want := without + "; proven leaked by the runtime: 2,400 in main.handleOrder.func1 (+3 elsewhere)"
	if got != want {
		t.Fatalf("headline\n%q\nwant\n%q", got, want)
	}
	rep.Attribution.ProvenLeaks = &ProvenLeaks{Read: true}
	if got := Headline(rep); got != without {
		t.Fatalf("a proof of nothing changed the headline: %q", got)
	}
}
