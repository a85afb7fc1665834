package report

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// budgetColumn is one column of the table.
type budgetColumn struct {
	label string
	none  bool
	unit  string
	value float64
	share float64
}

// WriteTable writes rows as terminal tables: one line per policy (in order of first appearance),
// one column per budget ("none" first, then by value), each cell "accuracy% / executions saved%".
// Rows of several samplings give one table per sampling, each under a title line.
func WriteTable(w io.Writer, rows []Row) error {
	if len(rows) == 0 {
		return errors.New("write table: no rows")
	}
	samplings, bySampling := groupBySampling(rows)
	for i, s := range samplings {
		if len(samplings) > 1 {
			if i > 0 {
				if _, err := fmt.Fprintln(w); err != nil {
					return fmt.Errorf("write table: %w", err)
				}
			}
			if _, err := fmt.Fprintf(w, "sampling %s (accuracy %% on unprofiled frames / executions saved %%; ✗: does not fit its budget)\n", s); err != nil {
				return fmt.Errorf("write table: %w", err)
			}
		}
		if err := writeOneTable(w, bySampling[s]); err != nil {
			return fmt.Errorf("write table for sampling %s: %w", s, err)
		}
	}
	return nil
}

// writeOneTable writes the table of rows that share one sampling.
func writeOneTable(w io.Writer, rows []Row) error {
	cols := budgetColumns(rows)
	cells := make(map[[2]string]Row) // (policy, budget label) → row
	for _, r := range rows {
		cells[[2]string{r.Policy, r.budgetLabel()}] = r
	}

	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	header := []string{"policy"}
	for _, c := range cols {
		if c.none {
			header = append(header, c.label)
		} else {
			header = append(header, fmt.Sprintf("%s (%.0f%%)", c.label, c.share*100))
		}
	}
	fmt.Fprintln(tw, tableLine(header))
	for _, p := range policies(rows) {
		line := []string{p}
		for _, c := range cols {
			r, ok := cells[[2]string{p, c.label}]
			if !ok {
				line = append(line, "-")
				continue
			}
			cell := fmt.Sprintf("%.1f / %.1f", r.AccuracyUnprofiled*100, r.ExecutionsSaved*100)
			if !r.Fits && !r.IsNone() {
				cell += " ✗"
			}
			line = append(line, cell)
		}
		fmt.Fprintln(tw, tableLine(line))
	}
	return tw.Flush() // tabwriter keeps the first write error and returns it here
}

// tableLine joins cells into one tabwriter line.
func tableLine(cells []string) string {
	return strings.Join(cells, "\t")
}

// budgetColumns lists the distinct budgets of rows: "none" first, then by unit and value.
func budgetColumns(rows []Row) []budgetColumn {
	var cols []budgetColumn
	seen := make(map[string]bool)
	for _, r := range rows {
		label := r.budgetLabel()
		if seen[label] {
			continue
		}
		seen[label] = true
		cols = append(cols, budgetColumn{label: label, none: r.IsNone(), unit: r.BudgetUnit, value: r.BudgetValue, share: r.BudgetShare})
	}
	slices.SortStableFunc(cols, func(a, b budgetColumn) int {
		if a.none != b.none {
			if a.none {
				return -1
			}
			return 1
		}
		return cmp.Or(cmp.Compare(a.unit, b.unit), cmp.Compare(a.value, b.value))
	})
	return cols
}
