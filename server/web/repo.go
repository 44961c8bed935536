package web

import (
	"fmt"
	"html/template"
	"net/http"
	"regexp"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/storage"
)

var repoPart = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,100}$`)

type prRow struct {
	Number int
	Run    gate.Run
	HasRun bool
}

type repoData struct {
	Repository string
	Runs       int
	Completed  int
	Passed     int
	PassRate   string
	OpenPRs    []prRow
	Charts     []template.HTML
	Recent     []gate.Run
	// Counts are the flakes (failures that did not confirm) and the
	// accepted changes; Acceptances the newest of those.
	Counts      storage.RepoCounts
	Acceptances []storage.Acceptance
}

// repoWindow is how many recent runs the trend charts cover.
const repoWindow = 200

func (p *Pages) repo(c *gin.Context) {
	owner, name := c.Param("owner"), c.Param("repo")
	if !repoPart.MatchString(owner) || !repoPart.MatchString(name) {
		p.NotFound(c)
		return
	}
	repo := owner + "/" + name
	ctx := c.Request.Context()
	rd := p.reader(c)
	// A repository the viewer may not see lists no runs: the same answer
	// as for one memgate never gated.
	runs, _, err := rd.List(ctx, storage.Filter{Repository: repo, Limit: repoWindow})
	if err != nil {
		p.fail(c, err)
		return
	}
	if len(runs) == 0 {
		p.render(c, http.StatusNotFound, "notfound", page{Title: "No runs of " + repo,
			Message: "memgate has not gated " + repo + " yet. Install the GitHub App on it, or open a pull request."})
		return
	}
	d := repoData{Repository: repo, Runs: len(runs)}
	for _, r := range runs {
		if r.Status == gate.RunCompleted {
			d.Completed++
			if r.Verdict == gate.Pass {
				d.Passed++
			}
		}
	}
	if d.Completed > 0 {
		d.PassRate = fmt.Sprintf("%.0f%%", 100*float64(d.Passed)/float64(d.Completed))
	}
	if len(runs) > 10 {
		d.Recent = runs[:10]
	} else {
		d.Recent = runs
	}
	open, err := rd.OpenPullRequests(ctx, repo, 50)
	if err != nil {
		p.fail(c, err)
		return
	}
	for _, n := range open {
		row := prRow{Number: n}
		if r, err := rd.LatestForPR(ctx, repo, n); err == nil {
			row.Run, row.HasRun = r, true
		}
		d.OpenPRs = append(d.OpenPRs, row)
	}
	if d.Counts, err = rd.CountRepo(ctx, repo); err != nil {
		p.fail(c, err)
		return
	}
	if d.Acceptances, err = rd.RecentAcceptances(ctx, repo, 10); err != nil {
		p.fail(c, err)
		return
	}
	d.Charts = trendCharts(runs)
	p.render(c, http.StatusOK, "repo", page{Title: repo, Data: d})
}

// trendCharts plots each criterion across the repository's completed runs,
// oldest first, with its limit.
func trendCharts(runs []gate.Run) []template.HTML {
	type crit struct {
		title, unit string
		get         func(gate.Run) *float64
		scale       float64
		limit       float64
	}
	th := gate.DefaultThresholds()
	crits := []crit{
		{"Heap fluctuation", "% of the retained heap", func(r gate.Run) *float64 { return r.HeapFluctuation }, 100, 100 * th.HeapFluctuation},
		{"Heap growth", "bytes per request", func(r gate.Run) *float64 { return r.HeapGrowth }, 1, th.HeapGrowthBytesPerRequest},
		{"Goroutine growth", "goroutines per 1,000 requests", func(r gate.Run) *float64 { return r.GoroutineGrowth }, 1, th.GoroutineGrowthPer1kRequests},
	}
	var out []template.HTML
	for _, cr := range crits {
		pass := series{Name: "passed runs", Color: colBlue, Width: 1.5, Markers: true}
		fail := series{Name: "failed runs", Color: colRed, Dash: "2 3", Width: 1, Markers: true}
		for i := len(runs) - 1; i >= 0; i-- {
			r := runs[i]
			v := cr.get(r)
			if v == nil || r.Status != gate.RunCompleted {
				continue
			}
			x := float64(len(runs) - i)
			if r.Verdict == gate.Pass {
				pass.X, pass.Y = append(pass.X, x), append(pass.Y, *v*cr.scale)
			} else {
				fail.X, fail.Y = append(fail.X, x), append(fail.Y, *v*cr.scale)
			}
		}
		ch := chart{Title: cr.title, XLabel: fmt.Sprintf("run (oldest to newest of the last %d)", len(runs)), YLabel: cr.unit,
			YFmt: trimFloat, Series: []series{pass, fail}, YZero: true,
			Lines: []hline{{Label: "default limit", Color: colRed, Y: cr.limit}}}
		out = append(out, ch.SVG())
	}
	return out
}

// badge is a README badge of the repository's latest verdict. A
// repository without runs, or one the viewer may not see, is a 404 with a
// "no runs" badge: the same bytes either way.
func (p *Pages) badge(c *gin.Context) {
	owner, name := c.Param("owner"), strings.TrimSuffix(c.Param("repo"), ".svg")
	label, color, status := "no runs", "#6b7280", http.StatusNotFound
	if repoPart.MatchString(owner) && repoPart.MatchString(name) {
		if r, err := p.reader(c).LatestCompleted(c.Request.Context(), owner+"/"+name); err == nil {
			status = http.StatusOK
			label = string(r.Verdict)
			color = map[gate.Verdict]string{gate.Pass: "#1a7f37", gate.Fail: "#cf222e", gate.Neutral: "#57606a"}[r.Verdict]
			if color == "" {
				color = "#9a6700"
			}
		}
	}
	// private: a badge may be of a private repository, shown to one viewer.
	c.Header("Cache-Control", "private, no-cache, max-age=0")
	c.Data(status, "image/svg+xml; charset=utf-8", badgeSVG("memgate", label, color))
}

func badgeSVG(left, right, color string) []byte {
	lw, rw := 8+7*len(left), 10+7*len(right)
	return []byte(fmt.Sprintf(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="20" role="img" aria-label="%s: %s">`+
		`<title>%s: %s</title><rect width="%d" height="20" fill="#555"/><rect x="%d" width="%d" height="20" fill="%s"/>`+
		`<g fill="#fff" font-family="DejaVu Sans,Verdana,sans-serif" font-size="11">`+
		`<text x="%d" y="14">%s</text><text x="%d" y="14">%s</text></g></svg>`,
		lw+rw, esc(left), esc(right), esc(left), esc(right), lw, lw, rw, color, 5, esc(left), lw+5, esc(right)))
}
