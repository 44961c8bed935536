// Package attribution says where a failing gate should look: it diffs two
// heap profiles, as `pprof -diff_base` does, and two goroutine profiles, and
// ranks the functions and stacks that grew.
package attribution

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/google/pprof/profile"

	"github.com/memgate/memgate/gate"
)

// MaxProfile bounds a profile once decompressed. A service's profile is
// gzipped, and 64 MiB of gzip can hold 64 GiB of zeros: pprof's own
// ParseData would inflate them all. A real heap profile of a large service
// is a few MiB decompressed.
const MaxProfile = 64 << 20

// parse decompresses a profile through a limit and parses the raw proto.
// Not profile.ParseData: it inflates without a bound, and a profile
// gzipped twice, or in a legacy text format, is nothing a service sends.
func parse(data []byte) (*profile.Profile, error) {
	raw := data
	if len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b {
		gz, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("decompressing: %w", err)
		}
		if raw, err = io.ReadAll(io.LimitReader(gz, MaxProfile+1)); err != nil {
			return nil, fmt.Errorf("decompressing: %w", err)
		}
	}
	if len(raw) > MaxProfile {
		return nil, fmt.Errorf("%w: it decompresses to more than %s", gate.ErrTooLarge, gate.FormatBytes(MaxProfile))
	}
	cost, err := parseCost(raw)
	if err != nil {
		return nil, fmt.Errorf("parsing: %w", err)
	}
	if cost > MaxParseCost {
		return nil, fmt.Errorf("%w: parsing it would take about %s of memory, over %s", gate.ErrTooLarge,
			gate.FormatBytes(float64(cost)), gate.FormatBytes(MaxParseCost))
	}
	p, err := profile.ParseUncompressed(raw)
	if err != nil {
		return nil, fmt.Errorf("parsing: %w", err)
	}
	if err := p.CheckValid(); err != nil {
		return nil, fmt.Errorf("malformed: %w", err)
	}
	return p, nil
}

// maxStack bounds the frames kept per entry: reports stay readable and
// small whatever the service's stacks look like.
const maxStack = 32

// HeapGrowth ranks the functions whose in-use heap grew from base to cur,
// both heap profiles taken after a forced GC, as the zero Owner sees them.
func HeapGrowth(base, cur []byte, top int) ([]gate.HeapSite, error) {
	return Owner{}.HeapGrowth(base, cur, top)
}

// GoroutineGrowth ranks the goroutine stacks whose count grew from base to
// cur, as the zero Owner sees them.
func GoroutineGrowth(base, cur []byte, top int) ([]gate.GoroutineStack, error) {
	return Owner{}.GoroutineGrowth(base, cur, top)
}

// HeapGrowth ranks the functions whose in-use heap grew from base to cur,
// both heap profiles taken after a forced GC; each names the first frame
// the repository owns on its stack. top <= 0 keeps them all.
func (o Owner) HeapGrowth(base, cur []byte, top int) ([]gate.HeapSite, error) {
	diff, err := diffProfiles(base, cur)
	if err != nil {
		return nil, fmt.Errorf("heap diff: %w", err)
	}
	space, objs := sampleIndex(diff, "inuse_space"), sampleIndex(diff, "inuse_objects")
	if space < 0 {
		return nil, fmt.Errorf("heap diff: no inuse_space in profile (is it a heap profile?)")
	}
	type acc struct {
		site      gate.HeapSite
		bestDelta int64
	}
	byFn := map[string]*acc{}
	for _, s := range diff.Sample {
		fs := framesOf(s)
		if len(fs) == 0 {
			continue
		}
		stack := names(fs)
		fn := allocatingFunction(stack)
		a := byFn[fn]
		if a == nil {
			a = &acc{site: gate.HeapSite{Function: fn}}
			byFn[fn] = a
		}
		d := s.Value[space]
		a.site.DeltaBytes += d
		if objs >= 0 {
			a.site.DeltaObjs += s.Value[objs]
		}
		if a.site.Stack == nil || d > a.bestDelta {
			a.bestDelta = d
			a.site.Stack = clip(stack)
			a.site.Origin = origin(stack)
			a.site.Culprit = o.culprit(fs)
		}
	}
	// A space-sampled profile says how many bytes one sample stands for.
	period := int64(0)
	if diff.PeriodType != nil && diff.PeriodType.Unit == "bytes" && diff.Period > 0 {
		period = diff.Period
	}
	var out []gate.HeapSite
	for _, a := range byFn {
		if a.site.DeltaBytes > 0 {
			if period > 0 {
				a.site.Samples = float64(a.site.DeltaBytes) / float64(period)
			}
			out = append(out, a.site)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].DeltaBytes != out[j].DeltaBytes {
			return out[i].DeltaBytes > out[j].DeltaBytes
		}
		return out[i].Function < out[j].Function
	})
	return head(out, top), nil
}

// GoroutineGrowth ranks the goroutine stacks whose count grew from base to
// cur; each names the first frame the repository owns on it. top <= 0
// keeps them all.
func (o Owner) GoroutineGrowth(base, cur []byte, top int) ([]gate.GoroutineStack, error) {
	b, err := parse(base)
	if err != nil {
		return nil, fmt.Errorf("goroutine diff: the earlier profile: %w", err)
	}
	c, err := parse(cur)
	if err != nil {
		return nil, fmt.Errorf("goroutine diff: the later profile: %w", err)
	}
	// Stacks are told apart by their functions, as before; the frames of
	// the later profile say where each function's code is.
	counts := func(p *profile.Profile, where map[string][]frame) map[string]int64 {
		m := map[string]int64{}
		for _, s := range p.Sample {
			fs := framesOf(s)
			key := strings.Join(names(fs), "\n")
			m[key] += s.Value[0]
			if where != nil {
				where[key] = fs
			}
		}
		return m
	}
	later := map[string][]frame{}
	before, after := counts(b, nil), counts(c, later)
	var out []gate.GoroutineStack
	for key, n := range after {
		if d := n - before[key]; d > 0 && key != "" {
			stack := strings.Split(key, "\n")
			out = append(out, gate.GoroutineStack{Top: waitsIn(stack), Delta: d, Count: n, Stack: clip(stack), Culprit: o.culprit(later[key])})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Delta != out[j].Delta {
			return out[i].Delta > out[j].Delta
		}
		return strings.Join(out[i].Stack, "\n") < strings.Join(out[j].Stack, "\n")
	})
	return head(out, top), nil
}

// diffProfiles is cur - base, the way pprof -diff_base computes it.
func diffProfiles(base, cur []byte) (*profile.Profile, error) {
	b, err := parse(base)
	if err != nil {
		return nil, fmt.Errorf("the earlier profile: %w", err)
	}
	c, err := parse(cur)
	if err != nil {
		return nil, fmt.Errorf("the later profile: %w", err)
	}
	b.Scale(-1)
	return profile.Merge([]*profile.Profile{c, b})
}

func sampleIndex(p *profile.Profile, name string) int {
	for i, st := range p.SampleType {
		if st.Type == name {
			return i
		}
	}
	return -1
}

// framesOf lists a sample's frames, leaf first, inlined calls included.
func framesOf(s *profile.Sample) []frame {
	var out []frame
	for _, loc := range s.Location {
		for _, l := range loc.Line {
			if l.Function != nil {
				out = append(out, frame{fn: l.Function.Name, file: l.Function.Filename, line: int(l.Line)})
			}
		}
	}
	return out
}

func names(fs []frame) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.fn
	}
	return out
}

func clip(stack []string) []string {
	if len(stack) > maxStack {
		stack = append(append([]string(nil), stack[:maxStack-1]...), fmt.Sprintf("... %d more frames", len(stack)-maxStack+1))
	}
	return stack
}

func head[T any](s []T, n int) []T {
	if n > 0 && len(s) > n {
		return s[:n]
	}
	return s
}

// allocatorPrefixes are the runtime's allocation helpers: a heap profile
// stack may start in them, but they never hold memory on their own account.
var allocatorPrefixes = []string{
	"runtime.mallocgc", "runtime.newobject", "runtime.newarray", "runtime.makeslice", "runtime.growslice",
	"runtime.makemap", "runtime.mapassign", "runtime.makechan", "runtime.rawbyteslice", "runtime.rawstring",
	"runtime.rawruneslice", "runtime.slicebytetostring", "runtime.concatstring", "runtime.convT",
	"runtime.stringtoslice", "runtime.hashGrow", "internal/runtime/maps.",
}

// allocatingFunction is the first frame that is not an allocation helper:
// the function that asked for the memory.
func allocatingFunction(stack []string) string {
	for _, f := range stack {
		helper := false
		for _, p := range allocatorPrefixes {
			if strings.HasPrefix(f, p) {
				helper = true
				break
			}
		}
		if !helper {
			return f
		}
	}
	return stack[0]
}

// origin is the first frame of the service's own code (or a third-party
// module): the function a reviewer can change.
func origin(stack []string) string {
	for _, f := range stack {
		if !IsStd(f) {
			return f
		}
	}
	return ""
}

// waitsIn names where goroutines are parked: the first frame of the
// service's own code, else the first frame outside the runtime.
func waitsIn(stack []string) string {
	if o := origin(stack); o != "" {
		return o
	}
	for _, f := range stack {
		if !strings.HasPrefix(f, "runtime.") && !strings.HasPrefix(f, "internal/") {
			return f
		}
	}
	if len(stack) > 0 {
		return stack[0]
	}
	return ""
}

// IsStd reports whether a function belongs to the Go runtime or standard
// library: its package path has no dot in its first element and is not
// "main".
func IsStd(fn string) bool {
	path := fn
	slash := strings.LastIndexByte(path, '/')
	if dot := strings.IndexByte(path[slash+1:], '.'); dot >= 0 {
		path = path[:slash+1+dot]
	}
	if path == "main" {
		return false
	}
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

// ProvenLeaks reads the runtime's goroutineleak profile, as the zero
// Owner sees it.
func ProvenLeaks(data []byte, top int) (gate.ProvenLeaks, error) {
	return Owner{}.ProvenLeaks(data, top)
}

// ProvenLeaks reads the runtime's goroutineleak profile: every goroutine
// in it is one the GC proved can never run again. Stacks are ranked by
// count and named like the goroutine growth: where they wait, and the
// first frame the repository owns.
func (o Owner) ProvenLeaks(data []byte, top int) (gate.ProvenLeaks, error) {
	p, err := parse(data)
	if err != nil {
		return gate.ProvenLeaks{}, fmt.Errorf("goroutine leak profile: %w", err)
	}
	if len(p.SampleType) != 1 || p.SampleType[0].Type != "goroutineleak" {
		return gate.ProvenLeaks{}, fmt.Errorf("goroutine leak profile: not a goroutineleak profile (sample types %v)", p.SampleType)
	}
	byStack := map[string]int64{}
	where := map[string][]frame{}
	out := gate.ProvenLeaks{Read: true}
	for _, s := range p.Sample {
		n := s.Value[0]
		if n <= 0 {
			continue
		}
		out.Total += n
		fs := framesOf(s)
		key := strings.Join(names(fs), "\n")
		byStack[key] += n
		where[key] = fs
	}
	for key, n := range byStack {
		if key == "" {
			continue
		}
		stack := strings.Split(key, "\n")
		out.Stacks = append(out.Stacks, gate.GoroutineStack{Top: waitsIn(stack), Delta: n, Count: n, Stack: clip(stack), Culprit: o.culprit(where[key])})
	}
	sort.Slice(out.Stacks, func(i, j int) bool {
		if out.Stacks[i].Count != out.Stacks[j].Count {
			return out.Stacks[i].Count > out.Stacks[j].Count
		}
		return strings.Join(out.Stacks[i].Stack, "\n") < strings.Join(out.Stacks[j].Stack, "\n")
	})
	out.Stacks = head(out.Stacks, top)
	return out, nil
}
