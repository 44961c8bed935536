package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/memgate/memgate/gate"
)

var bars = []rune("▁▂▃▄▅▆▇█")

// writeChart draws the post-GC heap and the goroutines over the load, one
// column per slice of time, with the warm-up, the measured window and its
// judged (steady) half marked below.
func writeChart(w io.Writer, rep *gate.Report, width int) {
	b := rep.Baseline
	end := b.MeasureTo
	if end <= 0 || len(rep.Samples) == 0 {
		return
	}
	width = max(width, 20)
	step := end / float64(width)
	heap, gor, fds := make([]float64, width), make([]float64, width), make([]float64, width)
	counted := false
	for _, s := range rep.Samples {
		if s.Phase == gate.PhaseIdle || s.Phase == gate.PhaseSettle || s.Offset < 0 || s.Offset > end {
			continue
		}
		i := min(int(s.Offset/step), width-1)
		gor[i] = max(gor[i], float64(s.Goroutines))
		fds[i] = max(fds[i], float64(s.FDs))
		counted = counted || s.FDs > 0
		if s.PostGCHeap > 0 {
			heap[i] = float64(s.PostGCHeap)
		}
	}
	fill(gor)
	fill(heap)
	fmt.Fprintln(w)
	row := func(label string, ys []float64, format func(float64) string) {
		lo, hi := span(ys)
		// Bars rise from half the maximum or lower: noise of a few percent
		// stays a step or two, a leak still climbs the whole height.
		fmt.Fprintf(w, "  %-13s %s  %s … %s\n", label, spark(ys, min(lo, hi/2), hi), format(lo), format(hi))
	}
	row("post-GC heap", heap, gate.FormatBytes)
	row("goroutines", gor, func(v float64) string { return gate.FormatCount(int64(v)) })
	if counted {
		fill(fds)
		row("open files", fds, func(v float64) string { return gate.FormatCount(int64(v)) })
	}
	marks := make([]rune, width)
	for i := range marks {
		t := (float64(i) + 0.5) * step
		switch {
		case t < b.MeasureFrom:
			marks[i] = '╌'
		case t < b.SteadyFrom:
			marks[i] = '─'
		default:
			marks[i] = '━'
		}
	}
	fmt.Fprintf(w, "  %-13s %s  ╌ warm-up  ─ window  ━ judged\n", "", string(marks))
	axisEnd := (time.Duration(end * float64(time.Second))).Round(time.Second).String()
	fmt.Fprintf(w, "  %-13s 0s%s%s\n", "", strings.Repeat(" ", max(width-2-len(axisEnd), 1)), axisEnd)
}

// fill carries the last value into columns no sample fell in (and the
// first one back), so a sparse series (post-GC heap is read at checkpoints
// only) draws as steps, not gaps.
func fill(ys []float64) {
	last := 0.0
	for i, y := range ys {
		if y != 0 {
			last = y
		} else {
			ys[i] = last
		}
	}
	for i := len(ys) - 1; i >= 0; i-- {
		if ys[i] != 0 {
			last = ys[i]
		} else {
			ys[i] = last
		}
	}
}

func span(ys []float64) (lo, hi float64) {
	lo, hi = ys[0], ys[0]
	for _, y := range ys {
		lo, hi = min(lo, y), max(hi, y)
	}
	return lo, hi
}

func spark(ys []float64, lo, hi float64) string {
	out := make([]rune, len(ys))
	for i, y := range ys {
		k := 0
		if hi > lo {
			k = int((y - lo) / (hi - lo) * float64(len(bars)-1))
		}
		out[i] = bars[min(max(k, 0), len(bars)-1)]
	}
	return string(out)
}
