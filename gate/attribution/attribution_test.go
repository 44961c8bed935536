package attribution

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/internal/gzipbomb"
)

func heapProfile(t *testing.T) []byte {
	t.Helper()
	runtime.GC()
	var b bytes.Buffer
	if err := pprof.Lookup("heap").WriteTo(&b, 0); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func goroutineProfile(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&b, 0); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

var retained [][]byte

//go:noinline
func leakyRemember(n int) {
	for i := 0; i < n; i++ {
		retained = append(retained, make([]byte, 4096))
	}
}

func TestHeapGrowthNamesTheAllocatingFunction(t *testing.T) {
	old := runtime.MemProfileRate
	runtime.MemProfileRate = 1
	defer func() { runtime.MemProfileRate = old }()

	base := heapProfile(t)
	leakyRemember(2000)
	// The profile is "as of the last completed GC": two cycles publish it.
	runtime.GC()
	cur := heapProfile(t)

	sites, err := HeapGrowth(base, cur, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(sites) == 0 {
		t.Fatal("no growth found")
	}
	top := sites[0]
	if !strings.HasSuffix(top.Function, "attribution.leakyRemember") {
		t.Fatalf("top site %q, want leakyRemember; all: %+v", top.Function, sites)
	}
	if top.DeltaBytes < 2000*4096 {
		t.Errorf("delta %d bytes, want >= %d", top.DeltaBytes, 2000*4096)
	}
	// Growth over the sampling period: how many samples it rests on.
	if want := float64(top.DeltaBytes) / float64(runtime.MemProfileRate); top.Samples < want*0.99 || top.Samples > want*1.01 || top.Uncertain() {
		t.Errorf("samples %.1f, want %.1f (and certain)", top.Samples, want)
	}
	if top.Where() != top.Function || top.Origin == "" {
		t.Errorf("origin %q", top.Origin)
	}
	retained = nil
}

func TestGoroutineGrowthNamesTheStack(t *testing.T) {
	base := goroutineProfile(t)
	block := make(chan struct{})
	for i := 0; i < 40; i++ {
		go parkedForever(block)
	}
	defer close(block)
	// On a loaded machine some of them may not have run to their receive
	// yet (their stack then differs): wait until all 40 are parked.
	var stacks []gate.GoroutineStack
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var err error
		stacks, err = GoroutineGrowth(base, goroutineProfile(t), 3)
		if err != nil {
			t.Fatal(err)
		}
		if (len(stacks) > 0 && stacks[0].Delta == 40) || time.Now().After(deadline) {
			break
		}
	}
	if len(stacks) == 0 || !strings.HasSuffix(stacks[0].Top, "attribution.parkedForever") || stacks[0].Delta != 40 {
		t.Fatalf("stacks %+v", stacks)
	}
	if stacks[0].Stack[0] != "runtime.gopark" {
		t.Errorf("stack starts %q, want the runtime's park", stacks[0].Stack[0])
	}
}

//go:noinline
func parkedForever(c chan struct{}) { <-c }

func TestBadProfiles(t *testing.T) {
	if _, err := HeapGrowth([]byte("nope"), []byte("nope"), 3); err == nil {
		t.Error("garbage heap profiles accepted")
	}
	g := goroutineProfile(t)
	if _, err := HeapGrowth(g, g, 3); err == nil {
		t.Error("goroutine profiles accepted as heap profiles")
	}
	if _, err := GoroutineGrowth([]byte{}, g, 3); err == nil {
		t.Error("empty goroutine profile accepted")
	}
}

func TestIsStd(t *testing.T) {
	for fn, want := range map[string]bool{
		"runtime.gopark":                          true,
		"encoding/json.(*Decoder).Decode":         true,
		"net/http.(*conn).serve":                  true,
		"main.handleOrder.func1":                  false,
		"main.(*store).add":                       false,
		"github.com/acme/api/orders.(*Repo).Save": false,
		"example.com/svc.handler":                 false,
	} {
		if got := IsStd(fn); got != want {
			t.Errorf("IsStd(%q) = %v, want %v", fn, got, want)
		}
	}
}

// A 4 GiB gzip bomb (4 MiB) as either profile of either diff is refused
// once MaxProfile bytes are inflated, with gate.ErrTooLarge, in bounded
// memory and time; pprof's ParseData inflated all of it.
func TestGzipBombIsRefusedInBoundedMemory(t *testing.T) {
	bomb := gzipbomb.New(4 << 10).Bytes()
	heap, gor := heapProfile(t), goroutineProfile(t)
	for _, tc := range []struct {
		name string
		diff func() error
		want string
	}{
		{"heap, later", func() error { _, err := HeapGrowth(heap, bomb, 5); return err }, "heap diff: the later profile: too large"},
		{"heap, earlier", func() error { _, err := HeapGrowth(bomb, heap, 5); return err }, "heap diff: the earlier profile: too large"},
		{"goroutines, later", func() error { _, err := GoroutineGrowth(gor, bomb, 5); return err }, "goroutine diff: the later profile: too large"},
	} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		start := time.Now()
		err := tc.diff()
		took := time.Since(start)
		runtime.ReadMemStats(&after)
		alloc := after.TotalAlloc - before.TotalAlloc
		t.Logf("%s: %s, %.0f MiB allocated: %v", tc.name, took.Round(time.Millisecond), float64(alloc)/(1<<20), err)
		if !errors.Is(err, gate.ErrTooLarge) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v", tc.name, err)
		}
		if alloc > 4*MaxProfile || took > 20*time.Second {
			t.Errorf("%s: %.0f MiB and %s to refuse a bomb", tc.name, float64(alloc)/(1<<20), took)
		}
	}
}

// amplifier is a valid profile proto of one sample whose packed location
// ids are n bytes of 1s: each byte becomes a uint64 and a *Location when
// parsed, and more when merged.
func amplifier(n int) []byte {
	ids := bytes.Repeat([]byte{1}, n)
	var st, loc, sample, p []byte
	st = protowire.AppendTag(st, 1, protowire.VarintType)
	st = protowire.AppendVarint(st, 1)
	loc = protowire.AppendTag(loc, 1, protowire.VarintType)
	loc = protowire.AppendVarint(loc, 1)
	sample = protowire.AppendTag(sample, 1, protowire.BytesType)
	sample = protowire.AppendBytes(sample, ids)
	sample = protowire.AppendTag(sample, 2, protowire.BytesType)
	sample = protowire.AppendBytes(sample, []byte{1})
	for _, s := range []string{"", "inuse_space"} {
		p = protowire.AppendTag(p, 6, protowire.BytesType)
		p = protowire.AppendString(p, s)
	}
	p = protowire.AppendTag(p, 1, protowire.BytesType)
	p = protowire.AppendBytes(p, st)
	p = protowire.AppendTag(p, 4, protowire.BytesType)
	p = protowire.AppendBytes(p, loc)
	p = protowire.AppendTag(p, 2, protowire.BytesType)
	return protowire.AppendBytes(p, sample)
}

// Under the decompressed bound, a profile can still be built to cost the
// parser many times its size: 60 MiB of location ids (60 KiB gzipped) once
// took 960 MiB to parse and 2.8 GiB to diff. Its cost is estimated from
// the wire format first, and it is refused unparsed.
func TestAmplifyingProfileIsRefusedUnparsed(t *testing.T) {
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	zw.Write(amplifier(60 << 20))
	zw.Close()
	heap := heapProfile(t)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := HeapGrowth(heap, gz.Bytes(), 5)
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d KiB gzipped: %.0f MiB allocated: %v", gz.Len()>>10, float64(alloc)/(1<<20), err)
	if !errors.Is(err, gate.ErrTooLarge) || !strings.Contains(err.Error(), "the later profile: too large: parsing it would take about 1.4 GiB of memory, over 128.0 MiB") {
		t.Fatalf("err = %v", err)
	}
	if alloc > 4*MaxProfile {
		t.Errorf("%.0f MiB allocated", float64(alloc)/(1<<20))
	}
	// A small one of the same shape parses: the estimate refuses by size,
	// not by shape.
	if _, err := parse(amplifier(1000)); err != nil {
		t.Errorf("a 1000-frame sample: %v", err)
	}
	// Real profiles cost little.
	for name, p := range map[string][]byte{"heap": heap, "goroutine": goroutineProfile(t)} {
		zr, _ := gzip.NewReader(bytes.NewReader(p))
		raw, _ := io.ReadAll(zr)
		cost, err := parseCost(raw)
		t.Logf("this test's %s profile: %d KiB raw, cost %.1f MiB", name, len(raw)>>10, float64(cost)/(1<<20))
		if err != nil || cost <= 0 || cost > MaxParseCost/8 {
			t.Errorf("%s: cost %d, %v", name, cost, err)
		}
	}
}
