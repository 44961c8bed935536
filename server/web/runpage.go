package web

import (
	"fmt"
	"html/template"
	"math"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/gate/stats"
)

type runData struct {
	Run        gate.Run
	Report     *gate.Report
	Active     bool
	Duration   string
	HeapChart  template.HTML
	GorChart   template.HTML
	FDChart    template.HTML // empty when descriptors were not counted
	Profiles   []string
	DiffCmd    string
	GorDiffCmd string
	CanRerun   bool
	Pair       *pairData // the comparison with the base; nil for a run gated alone
}

func (p *Pages) run(c *gin.Context) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		p.NotFound(c)
		return
	}
	rd := p.reader(c)
	run, err := rd.Run(c.Request.Context(), id)
	if err != nil {
		p.fail(c, err)
		return
	}
	names, err := rd.ProfileNames(c.Request.Context(), id)
	if err != nil {
		p.fail(c, err)
		return
	}
	d := runData{Run: run, Report: run.Report, Active: run.Active(), Profiles: names,
		Duration: roundDur(run.Duration(p.now())), CanRerun: p.cfg.APIToken != ""}
	if len(names) > 0 {
		d.DiffCmd = "go tool pprof -sample_index=inuse_space -top -diff_base heap-warmup.pb.gz heap-end.pb.gz"
		d.GorDiffCmd = "go tool pprof -top -diff_base goroutine-warmup.pb.gz goroutine-end.pb.gz"
	}
	if run.Report != nil && len(run.Report.Samples) > 0 {
		d.HeapChart = heapChart(run.Report).SVG()
		d.GorChart = goroutineChart(run.Report).SVG()
		if run.Report.Settle.WindowStartFDs > 0 {
			d.FDChart = fdChart(run.Report).SVG()
		}
	}
	if d.Pair, err = pairOf(c.Request.Context(), rd, run); err != nil {
		p.fail(c, err)
		return
	}
	title := fmt.Sprintf("Run %d: %s", run.ID, run.Repository)
	p.render(c, http.StatusOK, "run", page{Title: title, Data: d})
}

// phaseBands shades the warm-up and the settle phase, and outlines the
// judged (steady) part of the window.
func phaseBands(r *gate.Report, end float64) []band {
	bl := r.Baseline
	return []band{
		{Label: "warm-up (not judged)", Fill: "rgba(107,114,128,0.13)", X0: 0, X1: bl.MeasureFrom},
		{Label: "settle", Fill: "rgba(86,180,233,0.16)", X0: bl.MeasureTo, X1: end},
	}
}

func lastOffset(r *gate.Report) float64 {
	end := 0.0
	for _, s := range r.Samples {
		end = math.Max(end, s.Offset)
	}
	return end
}

const mib = 1 << 20

func heapChart(r *gate.Report) chart {
	var raw, post series
	raw = series{Name: "heap in use (raw, 1 Hz)", Color: colOrange, Dash: "5 3", Width: 1.5}
	post = series{Name: "post-GC heap (checkpoints)", Color: colBlue, Width: 2.2, Markers: true}
	var steady []float64
	for _, s := range r.Samples {
		raw.X, raw.Y = append(raw.X, s.Offset), append(raw.Y, float64(s.HeapInuse)/mib)
		if s.PostGCHeap > 0 {
			post.X, post.Y = append(post.X, s.Offset), append(post.Y, float64(s.PostGCHeap)/mib)
			if s.Phase == gate.PhaseMeasure && s.Offset >= r.Baseline.SteadyFrom {
				steady = append(steady, float64(s.PostGCHeap))
			}
		}
	}
	end := lastOffset(r)
	bands := phaseBands(r, end)
	// The fluctuation rule's band: the limit's share of the (floored)
	// median, centred on the retained median of the judged window.
	if len(steady) > 0 {
		limit := r.Thresholds.HeapFluctuation
		if limit == 0 {
			limit = gate.DefaultThresholds().HeapFluctuation
		}
		med := stats.Median(stats.RollingMin(steady, 3))
		denom := math.Max(med, float64(r.Thresholds.HeapFloorBytes))
		half := limit * denom / 2
		bands = append(bands, band{Label: fmt.Sprintf("±%.1f%% band (fluctuation limit %.0f%%)", 100*limit/2, 100*limit), Fill: "rgba(0,158,115,0.10)",
			X0: r.Baseline.SteadyFrom, X1: r.Baseline.MeasureTo, Y0: (med - half) / mib, Y1: (med + half) / mib, Dash: true})
	}
	return chart{
		Title: "Heap", XLabel: "seconds since the load started", YLabel: "MiB",
		YFmt:   func(v float64) string { return trimFloat(v) },
		Series: []series{raw, post}, Bands: bands, YZero: true,
	}
}

func goroutineChart(r *gate.Report) chart {
	g := series{Name: "goroutines", Color: colBlue, Width: 2}
	for _, s := range r.Samples {
		g.X, g.Y = append(g.X, s.Offset), append(g.Y, float64(s.Goroutines))
	}
	end := lastOffset(r)
	c := chart{
		Title: "Goroutines", XLabel: "seconds since the load started", YLabel: "goroutines",
		YFmt:   func(v float64) string { return trimFloat(v) },
		Series: []series{g}, Bands: phaseBands(r, end), YZero: true,
	}
	tol := float64(r.Thresholds.GoroutineSettleTolerance)
	if r.Settle.WindowStart > 0 {
		c.Lines = append(c.Lines, hline{Label: fmt.Sprintf("settle limit: window start %d + %.0f", r.Settle.WindowStart, tol),
			Color: colRed, Y: float64(r.Settle.WindowStart) + tol})
	}
	return c
}

// fdChart is the goroutine chart's twin for open file descriptors, with
// the settle limit and, when the service came near it, its RLIMIT_NOFILE.
func fdChart(r *gate.Report) chart {
	fds := series{Name: "open files", Color: colOrange, Width: 2}
	socks := series{Name: "of them sockets", Color: colGrey, Width: 1}
	for _, s := range r.Samples {
		if s.FDs > 0 {
			fds.X, fds.Y = append(fds.X, s.Offset), append(fds.Y, float64(s.FDs))
			socks.X, socks.Y = append(socks.X, s.Offset), append(socks.Y, float64(s.Sockets))
		}
	}
	c := chart{
		Title: "Open file descriptors", XLabel: "seconds since the load started", YLabel: "descriptors",
		YFmt:   func(v float64) string { return trimFloat(v) },
		Series: []series{fds, socks}, Bands: phaseBands(r, lastOffset(r)), YZero: true,
	}
	st := r.Settle
	c.Lines = append(c.Lines, hline{Label: fmt.Sprintf("settle limit: window start %d + %d", st.WindowStartFDs, r.Thresholds.FDSettleTolerance),
		Color: colRed, Y: float64(st.WindowStartFDs + r.Thresholds.FDSettleTolerance)})
	if st.FDLimitReached() {
		c.Lines = append(c.Lines, hline{Label: fmt.Sprintf("RLIMIT_NOFILE %d", st.FDLimit), Color: colGrey, Y: float64(st.FDLimit)})
	}
	return c
}

func (p *Pages) rerunForm(c *gin.Context) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		p.NotFound(c)
		return
	}
	if !p.allowWrite(c) {
		p.render(c, http.StatusForbidden, "notfound", page{Title: "Not allowed",
			Message: "Re-running needs you to sign in with the API token, from this site."})
		return
	}
	newID, err := p.rerun.Rerun(c.Request.Context(), id)
	if err != nil {
		p.fail(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, fmt.Sprintf("/runs/%d", newID))
}
