package web

import (
	"context"
	"errors"
	"html/template"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/server/access"
	"github.com/memgate/memgate/storage"
)

// pairData is a compared run's page beside its base: the comparison's
// verdict and rows, each run's criteria in two columns, the base's and the
// head's numbers on one chart, and the acceptance, if any.
type pairData struct {
	Comparison *gate.Comparison
	Criteria   []criterionPair
	HeapChart  template.HTML
	GorChart   template.HTML
	// BaseRun is the run whose base result this comparison used: the run
	// itself when it measured its base.
	BaseRun  int64
	Accepted *storage.Acceptance
}

// criterionPair is one criterion of base and head, side by side.
type criterionPair struct {
	Name             string
	Base, Head       gate.Criterion
	HasBase, HasHead bool
}

// pairOf reads what a run's page shows of its comparison; nil for a run
// gated alone.
func pairOf(ctx context.Context, rd access.Reader, run gate.Run) (*pairData, error) {
	c, err := rd.Comparison(ctx, run.ID)
	if err != nil || c == nil {
		return nil, err
	}
	d := &pairData{Comparison: c, BaseRun: c.Base.RunID}
	if d.BaseRun == 0 {
		d.BaseRun = run.ID
	}
	d.Criteria = pairCriteria(c.Base.Report, c.Head.Report)
	if c.Base.Report != nil && c.Head.Report != nil && len(c.Head.Report.Samples) > 0 {
		d.HeapChart = pairHeapChart(c.Base.Report, c.Head.Report).SVG()
		d.GorChart = pairGoroutineChart(c.Base.Report, c.Head.Report).SVG()
	}
	a, err := rd.AcceptanceOf(ctx, run.Repository, run.PR, run.HeadSHA, run.BaseSHA)
	switch {
	case err == nil:
		d.Accepted = &a
	case !errors.Is(err, storage.ErrNotFound):
		return nil, err
	}
	return d, nil
}

// pairCriteria lines the two reports' criteria up by name, head's order
// first, then any the base alone has.
func pairCriteria(base, head *gate.Report) []criterionPair {
	var out []criterionPair
	seen := map[string]bool{}
	if head != nil {
		for _, hc := range head.Criteria {
			p := criterionPair{Name: hc.Name, Head: hc, HasHead: true}
			if base != nil {
				p.Base, p.HasBase = base.Criterion(hc.Name)
			}
			out = append(out, p)
			seen[hc.Name] = true
		}
	}
	if base != nil {
		for _, bc := range base.Criteria {
			if !seen[bc.Name] {
				out = append(out, criterionPair{Name: bc.Name, Base: bc, HasBase: true})
			}
		}
	}
	return out
}

// pairHeapChart overlays the base's and the head's post-GC heap: the
// numbers the heap criteria judge, on one time axis.
func pairHeapChart(base, head *gate.Report) chart {
	post := func(r *gate.Report, name, color, dash string) series {
		s := series{Name: name, Color: color, Dash: dash, Width: 2.2, Markers: true}
		for _, smp := range r.Samples {
			if smp.PostGCHeap > 0 {
				s.X, s.Y = append(s.X, smp.Offset), append(s.Y, float64(smp.PostGCHeap)/mib)
			}
		}
		return s
	}
	return chart{Title: "Heap after GC: base and head", XLabel: "seconds since the load started", YLabel: "MiB",
		YFmt:   trimFloat,
		Series: []series{post(base, "base post-GC heap", colOrange, "6 4"), post(head, "head post-GC heap", colBlue, "")},
		Bands:  phaseBands(head, lastOffset(head)), YZero: true}
}

// pairGoroutineChart overlays the base's and the head's goroutines.
func pairGoroutineChart(base, head *gate.Report) chart {
	count := func(r *gate.Report, name, color, dash string) series {
		s := series{Name: name, Color: color, Dash: dash, Width: 2}
		for _, smp := range r.Samples {
			s.X, s.Y = append(s.X, smp.Offset), append(s.Y, float64(smp.Goroutines))
		}
		return s
	}
	return chart{Title: "Goroutines: base and head", XLabel: "seconds since the load started", YLabel: "goroutines",
		YFmt:   trimFloat,
		Series: []series{count(base, "base goroutines", colOrange, "6 4"), count(head, "head goroutines", colBlue, "")},
		Bands:  phaseBands(head, lastOffset(head)), YZero: true}
}
