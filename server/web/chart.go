package web

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"strings"
)

// The charts are SVG drawn on the server: readable without hovering (axes,
// units, labels, a legend), in the Okabe-Ito palette, which stays distinct
// for colour-blind readers, and told apart by line style as well as colour.
const (
	colBlue   = "#0072B2"
	colOrange = "#E69F00"
	colGreen  = "#009E73"
	colRed    = "#D55E00"
	colGrey   = "#6b7280"
)

// series is one line of a chart.
type series struct {
	Name    string
	Color   string
	Dash    string // SVG stroke-dasharray, "" for solid
	Width   float64
	Markers bool
	X, Y    []float64
}

// band is a shaded region: a span of x (Y0 == Y1 == 0) or a box.
type band struct {
	Label          string
	Fill           string
	X0, X1, Y0, Y1 float64
	Dash           bool // outline the band
}

// hline is a horizontal reference line (a limit).
type hline struct {
	Label string
	Color string
	Y     float64
}

type chart struct {
	Title  string
	XLabel string
	YLabel string
	YFmt   func(float64) string // tick labels
	Series []series
	Bands  []band
	Lines  []hline
	YZero  bool // start the y axis at 0
}

const (
	svgW, svgH             = 760.0, 300.0
	padL, padR, padT, padB = 70.0, 16.0, 34.0, 62.0
	plotW, plotH           = svgW - padL - padR, svgH - padT - padB
)

// SVG renders the chart. An empty chart renders a short note instead.
func (c chart) SVG() template.HTML {
	xmin, xmax, ymin, ymax := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	points := 0
	for _, s := range c.Series {
		for i := range s.X {
			xmin, xmax = math.Min(xmin, s.X[i]), math.Max(xmax, s.X[i])
			ymin, ymax = math.Min(ymin, s.Y[i]), math.Max(ymax, s.Y[i])
			points++
		}
	}
	if points == 0 {
		return template.HTML(`<p class="muted">No samples to chart.</p>`)
	}
	for _, l := range c.Lines {
		ymin, ymax = math.Min(ymin, l.Y), math.Max(ymax, l.Y)
	}
	for _, b := range c.Bands {
		if b.Y0 != 0 || b.Y1 != 0 {
			ymin, ymax = math.Min(ymin, b.Y0), math.Max(ymax, b.Y1)
		}
	}
	if c.YZero {
		ymin = math.Min(0, ymin)
	}
	if ymax == ymin {
		ymax, ymin = ymax+1, ymin-1
	}
	if xmax == xmin {
		xmax++
	}
	yticks := niceTicks(ymin, ymax, 5)
	ymin, ymax = math.Min(ymin, yticks[0]), math.Max(ymax, yticks[len(yticks)-1])
	xticks := niceTicks(xmin, xmax, 8)
	px := func(x float64) float64 { return padL + (x-xmin)/(xmax-xmin)*plotW }
	py := func(y float64) float64 { return padT + plotH - (y-ymin)/(ymax-ymin)*plotH }
	clampX := func(x float64) float64 { return math.Max(padL, math.Min(padL+plotW, px(x))) }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %.0f %.0f" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg">`, svgW, svgH, esc(c.Title))
	fmt.Fprintf(&b, `<title>%s</title>`, esc(c.Title))
	fmt.Fprintf(&b, `<text x="%.0f" y="18" class="ct">%s</text>`, padL, esc(c.Title))
	for _, bd := range c.Bands {
		x0, x1 := clampX(bd.X0), clampX(bd.X1)
		if x1 <= x0 {
			continue
		}
		y0, y1 := padT, padT+plotH
		if bd.Y0 != 0 || bd.Y1 != 0 {
			y0, y1 = py(bd.Y1), py(bd.Y0)
		}
		stroke := ""
		if bd.Dash {
			stroke = fmt.Sprintf(` stroke="%s" stroke-dasharray="4 3"`, colGreen)
		}
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"%s><title>%s</title></rect>`,
			x0, y0, x1-x0, y1-y0, bd.Fill, stroke, esc(bd.Label))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" class="bl">%s</text>`, x0+4, y0+12, esc(bd.Label))
	}
	// Axes and grid.
	for _, t := range yticks {
		y := py(t)
		fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" class="grid"/>`, padL, padL+plotW, y, y)
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" class="yt">%s</text>`, padL-6, y+4, esc(c.YFmt(t)))
	}
	for _, t := range xticks {
		if t < xmin || t > xmax {
			continue
		}
		x := px(t)
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.0f" y2="%.0f" class="tick"/>`, x, x, padT+plotH, padT+plotH+4)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" class="xt">%s</text>`, x, padT+plotH+16, esc(trimFloat(t)))
	}
	fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.0f" y2="%.0f" class="axis"/>`, padL, padL+plotW, padT+plotH, padT+plotH)
	fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.0f" y2="%.0f" class="axis"/>`, padL, padL, padT, padT+plotH)
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" class="xl">%s</text>`, padL+plotW/2, padT+plotH+32, esc(c.XLabel))
	fmt.Fprintf(&b, `<text transform="translate(14 %.0f) rotate(-90)" class="yl">%s</text>`, padT+plotH/2, esc(c.YLabel))
	for _, l := range c.Lines {
		y := py(l.Y)
		fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="%s" stroke-dasharray="6 4" stroke-width="1.5"/>`, padL, padL+plotW, y, y, l.Color)
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" class="ll" fill="%s">%s</text>`, padL+plotW-4, y-4, l.Color, esc(l.Label))
	}
	for _, s := range c.Series {
		if len(s.X) == 0 {
			continue
		}
		var pts strings.Builder
		for i := range s.X {
			fmt.Fprintf(&pts, "%.1f,%.1f ", px(s.X[i]), py(s.Y[i]))
		}
		dash := ""
		if s.Dash != "" {
			dash = fmt.Sprintf(` stroke-dasharray="%s"`, s.Dash)
		}
		w := s.Width
		if w == 0 {
			w = 2
		}
		fmt.Fprintf(&b, `<polyline class="series" data-series="%s" points="%s" fill="none" stroke="%s" stroke-width="%.1f"%s/>`,
			esc(s.Name), strings.TrimSpace(pts.String()), s.Color, w, dash)
		if s.Markers {
			for i := range s.X {
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="2.6" fill="%s"/>`, px(s.X[i]), py(s.Y[i]), s.Color)
			}
		}
	}
	// Legend, under the x label.
	lx := padL
	for _, s := range c.Series {
		dash := ""
		if s.Dash != "" {
			dash = fmt.Sprintf(` stroke-dasharray="%s"`, s.Dash)
		}
		fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.0f" y2="%.0f" stroke="%s" stroke-width="3"%s/>`, lx, lx+22, svgH-10, svgH-10, s.Color, dash)
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" class="lg">%s</text>`, lx+28, svgH-6, esc(s.Name))
		lx += 40 + 7*float64(len(s.Name))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// niceTicks returns about n round tick values covering [lo, hi].
func niceTicks(lo, hi float64, n int) []float64 {
	span := hi - lo
	step := math.Pow(10, math.Floor(math.Log10(span/float64(n))))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if span/(step*m) <= float64(n) {
			step *= m
			break
		}
	}
	// From the step at or below lo to the first at or above hi, so the
	// axis covers every point.
	start := math.Floor(lo/step) * step
	var out []float64
	for i := 0; i < 50; i++ {
		v := math.Round((start+float64(i)*step)/step) * step
		out = append(out, v)
		if v >= hi-step*1e-9 && i > 0 {
			break
		}
	}
	return out
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.2f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "-0" {
		return "0"
	}
	return s
}

func esc(s string) string { return html.EscapeString(s) }
