package report

import (
	"bytes"
	"fmt"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// sampleRows is a small hand-made bench outcome: two samplings, three policies, two budgets.
func sampleRows() []Row {
	scores := map[string]ModelScore{
		"faces":  {Accuracy: 0.9, AccuracyGraded: 0.95, Exact: 10, Predicted: 80, Reused: 5, Absent: 5},
		"people": {Accuracy: 1, AccuracyGraded: 1, Exact: 100},
	}
	return []Row{
		{Policy: "all", Budget: "none", Sampling: "native", Frames: 100, Accuracy: 1, AccuracyUnprofiled: 1, Fits: true, AccuracyGraded: 1, MSPerFrame: 1380, PerModel: scores},
		{Policy: "standalone", Budget: "460ms", BudgetValue: 460, BudgetUnit: "ms", BudgetShare: 0.333, Sampling: "native", Frames: 100, Accuracy: 0.62, AccuracyUnprofiled: 0.62, Fits: true, ExecutionsSaved: 0.667, PerModel: scores},
		{Policy: "standalone", Budget: "920ms", BudgetValue: 920, BudgetUnit: "ms", BudgetShare: 0.667, Sampling: "native", Frames: 100, Accuracy: 0.81, AccuracyUnprofiled: 0.81, Fits: true, ExecutionsSaved: 0.333, PerModel: scores},
		// Listed before the smaller budget on purpose: columns are ordered by value.
		{Policy: "mlink", Budget: "920ms", BudgetValue: 920, BudgetUnit: "ms", BudgetShare: 0.667, Sampling: "native", Frames: 100, Accuracy: 0.975, AccuracyUnprofiled: 0.975, Fits: true, ExecutionsSaved: 0.321, PerModel: scores},
		{Policy: "mlink", Budget: "460ms", BudgetValue: 460, BudgetUnit: "ms", BudgetShare: 0.333, Sampling: "native", Frames: 100, Accuracy: 0.941, AccuracyUnprofiled: 0.941, Fits: true, AccuracyGraded: 0.96, ExecutionsSaved: 0.667, ProfiledShare: 0.01, Selected: []string{"people"}, PerModel: scores},
		{Policy: "all", Budget: "none", Sampling: "1fps", Frames: 10, Accuracy: 1, AccuracyUnprofiled: 1, Fits: true, PerModel: scores},
		// Does not fit its budget: marked in the table, not plotted.
		{Policy: "skip", Budget: "460ms", BudgetValue: 460, BudgetUnit: "ms", BudgetShare: 0.333, Sampling: "native", Frames: 100, Accuracy: 0.5, AccuracyUnprofiled: 0.5, MSPerFrame: 470, PerModel: scores},
		{Policy: "mlink", Budget: "460ms", BudgetValue: 460, BudgetUnit: "ms", BudgetShare: 0.333, Sampling: "1fps", Frames: 10, Accuracy: 0.9, AccuracyUnprofiled: 0.9, Fits: true, ExecutionsSaved: 0.6, FilteredShare: 0.2, PerModel: scores},
	}
}

func TestWriteTable(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteTable(&buf, sampleRows()); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	t.Log("\n" + out)

	native, oneFPS, ok := strings.Cut(out, "sampling 1fps")
	if !ok || !strings.Contains(native, "sampling native") {
		t.Fatalf("want one titled table per sampling, got:\n%s", out)
	}
	header := lineStarting(t, native, "policy")
	none, small, large := strings.Index(header, "none"), strings.Index(header, "460ms (33%)"), strings.Index(header, "920ms (67%)")
	if none < 0 || small < 0 || large < 0 || !(none < small && small < large) {
		t.Fatalf("header %q: want columns none, 460ms (33%%), 920ms (67%%) in that order", header)
	}

	// Each cell sits under its budget's column: tabwriter aligns cells with their headers.
	mlink := lineStarting(t, native, "mlink")
	if i := strings.Index(mlink, "94.1 / 66.7"); i != small {
		t.Errorf("mlink line %q: want 94.1 / 66.7 at column %d (460ms), found at %d", mlink, small, i)
	}
	if i := strings.Index(mlink, "97.5 / 32.1"); i != large {
		t.Errorf("mlink line %q: want 97.5 / 32.1 at column %d (920ms), found at %d", mlink, large, i)
	}
	if i := strings.Index(mlink, "-"); i != none {
		t.Errorf("mlink line %q: want - (no row) at column %d (none), found at %d", mlink, none, i)
	}
	if all := lineStarting(t, native, "all"); strings.Index(all, "100.0 / 0.0") != none {
		t.Errorf("all line %q: want 100.0 / 0.0 under none", all)
	}

	// Policies keep their order of first appearance.
	if a, s, m := strings.Index(native, "\nall"), strings.Index(native, "\nstandalone"), strings.Index(native, "\nmlink"); !(a < s && s < m) {
		t.Errorf("policies out of order:\n%s", native)
	}
	if got := lineStarting(t, oneFPS, "mlink"); !strings.Contains(got, "90.0 / 60.0") {
		t.Errorf("1fps mlink line %q: want 90.0 / 60.0", got)
	}
	if skip := lineStarting(t, native, "skip"); !strings.Contains(skip, "50.0 / 0.0 ✗") {
		t.Errorf("skip line %q: want its cell marked as not fitting its budget", skip)
	}
	if mlink := lineStarting(t, native, "mlink"); strings.Contains(mlink, "✗") {
		t.Errorf("mlink line %q: marked although it fits", mlink)
	}
	if strings.Contains(oneFPS, "standalone") {
		t.Errorf("1fps table has a standalone line, but no such row:\n%s", oneFPS)
	}
}

func TestWriteTableSingleSamplingHasNoTitle(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteTable(&buf, sampleRows()[:5]); err != nil {
		t.Fatal(err)
	}
	if first, _, _ := strings.Cut(buf.String(), "\n"); !strings.HasPrefix(first, "policy") {
		t.Errorf("first line %q: want the header, no title, for one sampling", first)
	}
}

// lineStarting returns the first line of text that starts with the word prefix.
func lineStarting(t *testing.T, text, prefix string) string {
	t.Helper()
	for line := range strings.Lines(text) {
		if f := strings.Fields(line); len(f) > 0 && f[0] == prefix {
			return strings.TrimRight(line, "\n")
		}
	}
	t.Fatalf("no line starting with %q in:\n%s", prefix, text)
	return ""
}

func TestJSONRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out", "results.json") // parent does not exist yet
	want := sampleRows()
	if err := WriteJSON(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadJSON(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip differs:\n got %+v\nwant %+v", got, want)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte("[\n  {")) || !bytes.Contains(data, []byte(`"budget_share": 0.333`)) {
		t.Errorf("want an indented JSON list with the documented keys, got:\n%.300s", data)
	}
}

func TestReadJSONErrors(t *testing.T) {
	if _, err := ReadJSON(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("missing file: want an error")
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadJSON(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("bad JSON: want an error naming the file, got %v", err)
	}
}

func TestPlot(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "plots")
	paths, err := Plot(dir, sampleRows())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range paths {
		names = append(names, filepath.Base(p))
	}
	want := []string{
		"accuracy_vs_budget.svg", "accuracy_vs_budget.png", "accuracy_vs_saved.svg", "accuracy_vs_saved.png",
		"accuracy_vs_budget_1fps.svg", "accuracy_vs_budget_1fps.png", "accuracy_vs_saved_1fps.svg", "accuracy_vs_saved_1fps.png",
	}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("wrote %v, want %v (4 per sampling)", names, want)
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) == 0 {
			t.Errorf("%s is empty", p)
			continue
		}
		switch filepath.Ext(p) {
		case ".svg":
			if !bytes.HasPrefix(data, []byte("<?xml")) && !bytes.HasPrefix(data, []byte("<svg")) {
				t.Errorf("%s does not start like SVG: %.40q", p, data)
			}
			for _, text := range []string{"mlink", "accuracy on unprofiled frames (%)"} {
				if !bytes.Contains(data, []byte(text)) {
					t.Errorf("%s has no %q (legend, axis label)", p, text)
				}
			}
			if bytes.Contains(data, []byte(">skip<")) {
				t.Errorf("%s plots skip, whose only row does not fit its budget", p)
			}
		case ".png":
			checkPNG(t, p, data)
		}
	}
}

// checkPNG fails unless data decodes as a PNG of a real chart: a useful size and more than one colour.
func checkPNG(t *testing.T, path string, data []byte) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Errorf("%s: %v", path, err)
		return
	}
	b := img.Bounds()
	if b.Dx() < 200 || b.Dy() < 150 {
		t.Errorf("%s is only %dx%d", path, b.Dx(), b.Dy())
	}
	colours := make(map[[4]uint32]bool)
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, a := img.At(x, y).RGBA()
			colours[[4]uint32{r, g, bl, a}] = true
		}
	}
	// White background, black axes and text, and one colour per policy line at least.
	if len(colours) < 4 {
		t.Errorf("%s has %d colours: looks blank", path, len(colours))
	}
}

func TestPlotNoRows(t *testing.T) {
	dir := t.TempDir()
	paths, err := Plot(dir, nil)
	if err == nil || !strings.Contains(err.Error(), "no rows") {
		t.Errorf("Plot of no rows: got %v, want an error saying there are no rows", err)
	}
	if len(paths) != 0 {
		t.Errorf("Plot of no rows wrote %v", paths)
	}
}

func TestPolicyStylesStableAndDistinct(t *testing.T) {
	names := []string{"zeta", "mlink", "alpha", "all", "reducto", "beta"}
	a := policyStyles(names)
	b := policyStyles([]string{"beta", "alpha", "reducto", "all", "mlink", "zeta"})
	if !reflect.DeepEqual(a, b) {
		t.Errorf("styles depend on order: %v vs %v", a, b)
	}
	seen := make(map[int]string)
	for n, s := range a {
		if other, ok := seen[s]; ok {
			t.Errorf("%s and %s share style %d", n, other, s)
		}
		seen[s] = n
	}
	if a["mlink"] != knownPolicies["mlink"] {
		t.Errorf("mlink style %d, want its fixed %d", a["mlink"], knownPolicies["mlink"])
	}
}

// Every policy a bench draws today gets a colour of its own: with ten
// colours, mtl, skip-per-model and drls were the same pink.
func TestPolicyStylesGiveEveryBenchPolicyItsOwnColour(t *testing.T) {
	names := []string{"all", "standalone", "skip", "skip-per-model", "skip-per-model/track",
		"reducto", "reducto+mlink", "mlink", "mlink-hybrid", "mlink-hybrid/no-links",
		"mlink-hybrid/no-reuse", "mlink-hybrid/no-rotation", "coe", "jellybean", "dcta",
		"mtl", "drls", "drls/random"}
	styles := policyStyles(names)
	byColour := make(map[color.RGBA]string)
	for _, n := range names {
		c := palette[styles[n]%len(palette)]
		if other, ok := byColour[c]; ok {
			t.Errorf("%s and %s share colour %v", n, other, c)
		}
		byColour[c] = n
	}
	// Past the palette, colours repeat but the marker does not.
	many := make([]string, len(palette)+3)
	for i := range many {
		many[i] = fmt.Sprintf("policy-%02d", i)
	}
	seen := make(map[[2]int]string)
	for n, s := range policyStyles(many) {
		key := [2]int{s % len(palette), s % len(markerShapes)}
		if other, ok := seen[key]; ok {
			t.Errorf("%s and %s share colour and marker (style %d)", n, other, s)
		}
		seen[key] = n
	}
}

// Mean and capped budgets get charts of their own, each with the row that
// has no budget (all) beside the budgeted ones; the table shows all in both.
func TestPlotAndTableByBudgetMode(t *testing.T) {
	scores := map[string]ModelScore{"people": {Accuracy: 1, Exact: 10}}
	rows := []Row{
		{Policy: "all", Budget: "none", Sampling: "native", Frames: 10, Accuracy: 1, AccuracyUnprofiled: 1, PerModel: scores},
		{Policy: "skip", Budget: "460ms", BudgetValue: 460, BudgetUnit: "ms", BudgetShare: 0.33, BudgetMode: "mean", Sampling: "native", Frames: 10, AccuracyUnprofiled: 0.8, Fits: true, PerModel: scores},
		{Policy: "skip", Budget: "460ms", BudgetValue: 460, BudgetUnit: "ms", BudgetShare: 0.33, BudgetMode: "cap", Sampling: "native", Frames: 10, AccuracyUnprofiled: 0.7, Fits: true, PerModel: scores},
	}
	dir := t.TempDir()
	if _, err := Plot(dir, rows); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"accuracy_vs_budget.svg", "accuracy_vs_budget_cap.svg"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		for _, policy := range []string{">all<", ">skip<"} {
			if !bytes.Contains(data, []byte(policy)) {
				t.Errorf("%s has no %s line", name, policy)
			}
		}
	}
	var buf bytes.Buffer
	if err := WriteTable(&buf, rows); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(buf.String(), "\nall "); n != 2 {
		t.Errorf("all in %d tables, want both the mean and the cap one:\n%s", n, buf.String())
	}
}
