package report

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// WriteMarkdown writes rows as Markdown tables for the README: one per
// sampling, one line per policy (all, which has no budget, is left out),
// one column per budget and budget mode (mean before cap), each cell the
// strict / graded accuracy (%) on the frames the policy did not profile,
// marked ✗ when the row does not fit its budget. The pinning test renders
// the same tables from a fresh bench and compares them cell by cell with
// the README's.
func WriteMarkdown(w io.Writer, rows []Row) error {
	var budgeted []Row
	for _, r := range rows {
		if !r.IsNone() {
			budgeted = append(budgeted, r)
		}
	}
	if len(budgeted) == 0 {
		return errors.New("write markdown: no rows with a budget")
	}
	var samplings []string
	bySampling := map[string][]Row{}
	for _, r := range budgeted {
		s := r.samplingLabel()
		if _, ok := bySampling[s]; !ok {
			samplings = append(samplings, s)
		}
		bySampling[s] = append(bySampling[s], r)
	}
	var b strings.Builder
	for i, s := range samplings {
		if i > 0 {
			b.WriteString("\n")
		}
		writeMarkdownTable(&b, s, bySampling[s])
	}
	_, err := io.WriteString(w, b.String())
	return err
}

type markdownColumn struct {
	budget string
	value  float64
	share  float64
	mode   string
}

func writeMarkdownTable(b *strings.Builder, sampling string, rows []Row) {
	var cols []markdownColumn
	for _, r := range rows {
		c := markdownColumn{budget: r.Budget, value: r.BudgetValue, share: r.BudgetShare, mode: r.BudgetMode}
		if !slices.ContainsFunc(cols, func(o markdownColumn) bool { return o.budget == c.budget && o.mode == c.mode }) {
			cols = append(cols, c)
		}
	}
	slices.SortStableFunc(cols, func(a, b markdownColumn) int {
		return cmp.Or(cmp.Compare(modeOrder(a.mode), modeOrder(b.mode)), cmp.Compare(a.value, b.value))
	})
	cells := map[[3]string]Row{}
	for _, r := range rows {
		cells[[3]string{r.Policy, r.Budget, r.BudgetMode}] = r
	}
	fmt.Fprintf(b, "| policy (%s) |", sampling)
	for _, c := range cols {
		fmt.Fprintf(b, " %s (%.0f%%) %s |", c.budget, c.share*100, c.mode)
	}
	b.WriteString("\n|---|")
	for range cols {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, p := range policies(rows) {
		fmt.Fprintf(b, "| %s |", p)
		for _, c := range cols {
			r, ok := cells[[3]string{p, c.budget, c.mode}]
			switch {
			case !ok:
				b.WriteString(" – |")
			case r.Fits:
				fmt.Fprintf(b, " %.1f / %.1f |", r.AccuracyUnprofiled*100, r.AccuracyGradedUnprofiled*100)
			default:
				fmt.Fprintf(b, " %.1f / %.1f ✗ |", r.AccuracyUnprofiled*100, r.AccuracyGradedUnprofiled*100)
			}
		}
		b.WriteString("\n")
	}
}

func modeOrder(mode string) int {
	if mode == "cap" {
		return 1
	}
	return 0
}

// WriteCostMarkdown writes, for one budget, each row's cost under the one
// cost rule: mean ms per frame over the whole run (profiling included),
// p50/p95/max per frame, the heaviest unprofiled frame, the share of frames
// over the budget, the share profiled and the executions saved.
func WriteCostMarkdown(w io.Writer, rows []Row, budget string) error {
	var b strings.Builder
	b.WriteString("| policy | mode | fits | ms/frame mean | p50 | p95 | max | max unprofiled | frames over budget | profiled | executions saved |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	n := 0
	for _, r := range rows {
		if r.Budget != budget {
			continue
		}
		n++
		fits := "yes"
		if !r.Fits {
			fits = "**no**"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.1f%% | %.1f%% | %.1f%% |\n",
			r.Policy, r.BudgetMode, fits, r.MSPerFrame, r.MSPerFrameP50, r.MSPerFrameP95, r.MSPerFrameMax,
			r.MSPerFrameMaxUnprofiled, r.OverBudgetShare*100, r.ProfiledShare*100, r.ExecutionsSaved*100)
	}
	if n == 0 {
		return fmt.Errorf("write cost table: no rows at budget %s", budget)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
