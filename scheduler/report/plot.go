package report

import (
	"cmp"
	"errors"
	"fmt"
	"hash/fnv"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Chart size: about half an A4 page, legible both in a browser (SVG) and as a PNG.
const (
	chartWidth  = 16 * vg.Centimeter
	chartHeight = 11 * vg.Centimeter
)

// palette holds clearly distinct colours: Tableau 10, then ten more of
// high contrast to them (a bench draws about twenty policies, and a colour
// shared by two lines makes the chart lie).
var palette = []color.RGBA{
	{31, 119, 180, 255},  // blue
	{255, 127, 14, 255},  // orange
	{44, 160, 44, 255},   // green
	{214, 39, 40, 255},   // red
	{148, 103, 189, 255}, // purple
	{140, 86, 75, 255},   // brown
	{227, 119, 194, 255}, // pink
	{64, 64, 64, 255},    // dark grey: policy all, the reference
	{188, 189, 34, 255},  // olive
	{23, 190, 207, 255},  // cyan
	{0, 0, 128, 255},     // navy
	{147, 170, 0, 255},   // lime
	{127, 24, 13, 255},   // maroon
	{244, 200, 0, 255},   // gold
	{0, 128, 128, 255},   // teal
	{200, 0, 200, 255},   // magenta
	{255, 160, 122, 255}, // salmon
	{83, 55, 122, 255},   // violet
	{150, 180, 220, 255}, // light blue
	{35, 90, 22, 255},    // dark green
}

// knownPolicies have fixed styles so that every report draws a policy alike.
var knownPolicies = map[string]int{
	"all": 7, "standalone": 1, "mlink": 0, "mlink-hybrid": 2, "reducto": 3, "reducto+mlink": 4,
	"skip": 5, "skip-per-model": 6,
}

// Plot draws, for each sampling, accuracy vs. budget share and accuracy vs. executions saved,
// one line per policy, each as SVG and PNG in dir (created if needed). The native sampling's
// files have no suffix (accuracy_vs_budget.svg), others one (accuracy_vs_budget_1fps.svg).
// It returns the paths written.
func Plot(dir string, rows []Row) ([]string, error) {
	if len(rows) == 0 {
		return nil, errors.New("plot results: no rows (did the bench replay run any policy?)")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("plot results: %w", err)
	}
	styles := policyStyles(policies(rows))
	samplings, bySampling := groupBySampling(rows)
	var written []string
	for _, s := range samplings {
		// Files: accuracy_vs_budget.svg for the native sampling under a
		// mean budget, _1fps for another sampling, _cap for capped budgets.
		group := bySampling[s]
		suffix := ""
		if sampling := group[0].samplingLabel(); sampling != "native" {
			suffix = "_" + fileSafe(sampling)
		}
		if group[len(group)-1].BudgetMode == "cap" { // the last row has a budget if any has
			suffix += "_cap"
		}
		// Only rows that meet their budget are plotted under it; ablations
		// (policy/ablation) are in the tables only.
		var fitting []Row
		for _, r := range bySampling[s] {
			if (r.Fits || r.IsNone()) && !strings.Contains(r.Policy, "/") {
				fitting = append(fitting, r)
			}
		}
		charts := []struct {
			name string
			p    *plot.Plot
		}{
			{"accuracy_vs_budget" + suffix, budgetChart(fitting, s, styles)},
			{"accuracy_vs_saved" + suffix, savedChart(fitting, s, styles)},
		}
		for _, c := range charts {
			for _, ext := range []string{".svg", ".png"} {
				path := filepath.Join(dir, c.name+ext)
				// Save picks the format from the extension.
				if err := c.p.Save(chartWidth, chartHeight, path); err != nil {
					return written, fmt.Errorf("plot %s: %w", path, err)
				}
				written = append(written, path)
			}
		}
	}
	return written, nil
}

// budgetChart plots accuracy against the budget's share of the models' total cost. Rows without
// a budget ran every model they wanted, so they stand at 100%.
func budgetChart(rows []Row, sampling string, styles map[string]int) *plot.Plot {
	p := newChart(fmt.Sprintf("Accuracy vs. budget (%s)", sampling),
		"budget (% of the total cost of all models)")
	addPolicyLines(p, rows, styles, func(r Row) float64 {
		if r.IsNone() {
			return 100
		}
		return r.BudgetShare * 100
	})
	return p
}

// savedChart plots accuracy against the share of model executions saved.
func savedChart(rows []Row, sampling string, styles map[string]int) *plot.Plot {
	p := newChart(fmt.Sprintf("Accuracy vs. executions saved (%s)", sampling),
		"executions saved (%)")
	addPolicyLines(p, rows, styles, func(r Row) float64 { return r.ExecutionsSaved * 100 })
	return p
}

// newChart makes an empty chart with fixed 0-100% axes, so charts of different runs compare at
// a glance, and the legend at the bottom right, where accuracy curves rarely go.
func newChart(title, xLabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xLabel
	p.Y.Label.Text = "accuracy on unprofiled frames (%)"
	// A little room past 0 and 100 so that markers there (policy all) are not cut by the axes.
	p.X.Min, p.X.Max = -axisMargin, 100+axisMargin
	p.Y.Min, p.Y.Max = 0, 100+axisMargin
	p.X.Tick.Marker = percentTicks{}
	p.Y.Tick.Marker = percentTicks{}
	p.Legend.Top = false
	p.Legend.Left = false
	p.Legend.XOffs = -vg.Millimeter * 2
	p.Legend.YOffs = vg.Millimeter * 2
	p.Add(plotter.NewGrid())
	return p
}

// addPolicyLines adds one line with point markers per policy, x given by xOf, y the accuracy.
func addPolicyLines(p *plot.Plot, rows []Row, styles map[string]int, xOf func(Row) float64) {
	for _, policy := range policies(rows) {
		var pts plotter.XYs
		for _, r := range rows {
			x, y := xOf(r), r.AccuracyUnprofiled*100
			if r.Policy != policy || !finite(x) || !finite(y) {
				continue
			}
			pts = append(pts, plotter.XY{X: x, Y: y})
			// Budgets above the total cost (share > 100%) still fit on the chart.
			p.X.Max = max(p.X.Max, x+axisMargin)
			p.Y.Max = max(p.Y.Max, y+axisMargin)
		}
		if len(pts) == 0 {
			continue
		}
		slices.SortStableFunc(pts, func(a, b plotter.XY) int { return cmp.Compare(a.X, b.X) })
		// NewLinePoints only fails on non-finite values, filtered out above.
		line, points, err := plotter.NewLinePoints(pts)
		if err != nil {
			continue
		}
		style := styles[policy]
		c := palette[style%len(palette)]
		line.Color = c
		line.Width = vg.Points(1.5)
		points.Color = c
		points.Radius = vg.Points(3)
		// A different marker shape per policy keeps lines apart in greyscale too.
		points.Shape = markerShapes[style%len(markerShapes)]
		p.Add(line, points)
		p.Legend.Add(policy, line, points)
	}
}

// axisMargin is how far, in percent, the axes reach past the data.
const axisMargin = 3

// percentTicks labels every 20% and marks every 10%, denser than the default ticker's 0/50/100,
// so values read off the grid.
type percentTicks struct{}

// Ticks implements plot.Ticker.
func (percentTicks) Ticks(min, max float64) []plot.Tick {
	var ticks []plot.Tick
	for v := math.Ceil(min/10)*10 + 0; v <= max; v += 10 { // + 0 turns -0 into 0
		label := ""
		if math.Mod(v, 20) == 0 {
			label = strconv.FormatFloat(v, 'f', -1, 64)
		}
		ticks = append(ticks, plot.Tick{Value: v, Label: label})
	}
	return ticks
}

var markerShapes = []draw.GlyphDrawer{
	draw.CircleGlyph{}, draw.SquareGlyph{}, draw.TriangleGlyph{},
	draw.PyramidGlyph{}, draw.RingGlyph{}, draw.BoxGlyph{}, draw.CrossGlyph{}, draw.CircleGlyph{},
}

// policyStyles gives each policy a style (an index into palette and markerShapes) that depends
// only on its name: fixed for the known policies, hashed for others, and moved to the next free
// colour when two would collide. Past len(palette) names, colours repeat with another marker.
func policyStyles(names []string) map[string]int {
	styles := make(map[string]int, len(names))
	used := make(map[int]bool)
	for _, n := range names {
		if i, ok := knownPolicies[n]; ok {
			styles[n] = i
			used[i] = true
		}
	}
	// Sorted so that probing, and so the colours, do not depend on the rows' order.
	others := slices.Sorted(slices.Values(names))
	for _, n := range others {
		if _, ok := styles[n]; ok {
			continue
		}
		h := fnv.New32a()
		h.Write([]byte(n))
		i := int(h.Sum32() % uint32(len(palette)))
		for probe := 0; probe < len(palette) && used[i]; probe++ {
			i = (i + 1) % len(palette)
		}
		for used[i] { // every colour taken: the same colours again, with other markers
			i += len(palette)
		}
		styles[n] = i
		used[i] = true
	}
	return styles
}

// fileSafe turns a sampling label into a file-name fragment.
func fileSafe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-':
			return r
		}
		return '_'
	}, s)
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
