// Package report renders the outcome of a bench replay (`mlink bench --trace`): a terminal table
// in the shape of Table 4 of the MLink paper, a results.json file and accuracy charts.
package report

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// Row is one (policy, budget, sampling) outcome of a bench replay.
type Row struct {
	Policy          string  `json:"policy"`
	Budget          string  `json:"budget"`       // as given/rendered, e.g. "460ms", "5GB", "none"
	BudgetValue     float64 `json:"budget_value"` // ms per frame, or bytes; 0 for none
	BudgetUnit      string  `json:"budget_unit"`  // "ms", "bytes" or "" (none)
	BudgetShare     float64 `json:"budget_share"` // budget / total cost of all models (0..1+; 0 for none)
	Sampling        string  `json:"sampling"`     // "native" or e.g. "1fps"
	Frames          int     `json:"frames"`
	Accuracy        float64 `json:"accuracy"`         // 0-1 strict metric over all frames, mean over models, executed = 1
	AccuracyGraded  float64 `json:"accuracy_graded"`  // 0-1 graded count metric over all frames
	ExecutionsSaved float64 `json:"executions_saved"` // 0-1
	MSPerFrame      float64 `json:"ms_per_frame"`     // mean model time per frame over the whole run, profiling included
	ProfiledShare   float64 `json:"profiled_share"`   // share of frames profiled (every model run: bootstrap, windows, active sampling, cost probe)
	// The headline: accuracy on the frames the policy did not profile
	// (profiled frames are exact for every policy by construction).
	AccuracyUnprofiled       float64 `json:"accuracy_unprofiled"`
	AccuracyGradedUnprofiled float64 `json:"accuracy_graded_unprofiled"`
	// The per-frame distribution of the executed models' cost.
	MSPerFrameP50           float64 `json:"ms_per_frame_p50"`
	MSPerFrameP95           float64 `json:"ms_per_frame_p95"`
	MSPerFrameMax           float64 `json:"ms_per_frame_max"`
	MSPerFrameMaxUnprofiled float64 `json:"ms_per_frame_max_unprofiled"`
	// OverBudgetShare is the share of frames whose own cost exceeds a time
	// budget (profiled frames included).
	OverBudgetShare float64 `json:"over_budget_share"`
	// BudgetMode is what a time budget means: "mean" (throughput) or "cap"
	// (no unprofiled frame over it); memory is always a cap.
	BudgetMode string `json:"budget_mode,omitempty"`
	// Fits is true exactly when the row meets its budget under its mode:
	// the mean ms per frame (profiling included) within a mean budget, every
	// unprofiled frame within a capped one, the models loaded at once within
	// a memory budget. A row that does not fit is not plotted.
	Fits bool `json:"fits"`
	// MemoryLoaded is the most memory the models a policy kept loaded
	// needed at once (see the replay for the window it is measured over).
	MemoryLoaded  int64                 `json:"memory_loaded,omitempty"`
	FilteredShare float64               `json:"filtered_share,omitempty"` // share of frames filtered (Reducto)
	Selected      []string              `json:"selected,omitempty"`       // models executed in the final selection
	PerModel      map[string]ModelScore `json:"per_model"`
	// PerCamera is each camera's strict accuracy on the frames the policy
	// did not profile (mean over its models), on a trace of several
	// cameras; AccuracyWeighted the same over every camera's outputs
	// weighted by their importance (policy dcta's objective), when the
	// bench was given importances.
	PerCamera        map[string]float64 `json:"per_camera,omitempty"`
	AccuracyWeighted float64            `json:"accuracy_weighted,omitempty"`
	// Cascades (policy coe) are each cascade's visits on the frames the
	// policy did not profile, and how far they went.
	Cascades []CascadeScore `json:"cascades,omitempty"`
}

// CascadeScore is one cascade's routing in a Row.
type CascadeScore struct {
	Task string `json:"task"`
	// Visits are the frames the cascade ran on; Reached[t] of them visited
	// tier t (Reached[0] = Visits). Tiers are the tiers run, each with its θ.
	Visits  int        `json:"visits"`
	Reached []int      `json:"reached"`
	Thetas  []float64  `json:"thetas"`
	Tiers   [][]string `json:"tiers"`
}

// Deferred is the share of tier t's visits deferred to the next tier.
func (c CascadeScore) Deferred(t int) float64 {
	if t+1 >= len(c.Reached) || c.Reached[t] == 0 {
		return 0
	}
	return float64(c.Reached[t+1]) / float64(c.Reached[t])
}

// ModelScore is one model's outcome in a Row.
type ModelScore struct {
	Accuracy       float64 `json:"accuracy"`
	AccuracyGraded float64 `json:"accuracy_graded"`
	Exact          int     `json:"exact"`     // frames where it executed
	Predicted      int     `json:"predicted"` // frames where links predicted it
	Reused         int     `json:"reused"`    // frames where its last exact output was reused
	Absent         int     `json:"absent"`    // frames where nothing served it
}

// IsNone reports whether the row ran without a budget.
func (r Row) IsNone() bool {
	return r.BudgetUnit == "" || r.Budget == "" || r.Budget == "none"
}

// budgetLabel is the budget as shown to people: "none" when there is none.
func (r Row) budgetLabel() string {
	if r.IsNone() {
		return "none"
	}
	return r.Budget
}

// samplingLabel is the sampling as shown to people: an empty one means native.
func (r Row) samplingLabel() string {
	if r.Sampling == "" {
		return "native"
	}
	return r.Sampling
}

// WriteJSON writes rows to path as an indented JSON list, creating the parent directory.
func WriteJSON(path string, rows []Row) error {
	if rows == nil {
		rows = []Row{} // "[]" rather than "null": readers expect a list
	}
	data, err := json.MarshalIndent(rows, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write results %s: %w", path, err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}

// ReadJSON reads rows written by WriteJSON.
func ReadJSON(path string) ([]Row, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read results: %w", err)
	}
	var rows []Row
	if err := json.Unmarshal(data, &rows); err != nil {
		return nil, fmt.Errorf("read results %s: %w", path, err)
	}
	return rows, nil
}

// group is the table or chart a row belongs to: its sampling, and the
// meaning of its time budget.
func (r Row) group() string {
	if r.BudgetMode == "" {
		return r.samplingLabel()
	}
	return r.samplingLabel() + ", " + r.BudgetMode + " budget"
}

// groupBySampling splits rows by sampling and budget mode, in order of
// first appearance. Rows without a budget (policy all) belong to every
// group of their sampling; alone they make a group of their own.
func groupBySampling(rows []Row) (samplings []string, bySampling map[string][]Row) {
	bySampling = make(map[string][]Row)
	hasBudgeted := map[string]bool{}
	for _, r := range rows {
		if !r.IsNone() {
			hasBudgeted[r.samplingLabel()] = true
		}
	}
	for _, r := range rows {
		if r.IsNone() && hasBudgeted[r.samplingLabel()] {
			continue
		}
		s := r.group()
		if _, ok := bySampling[s]; !ok {
			samplings = append(samplings, s)
		}
		bySampling[s] = append(bySampling[s], r)
	}
	for _, r := range rows {
		if !r.IsNone() || !hasBudgeted[r.samplingLabel()] {
			continue
		}
		for _, s := range samplings {
			if g := bySampling[s]; g[0].samplingLabel() == r.samplingLabel() {
				bySampling[s] = append([]Row{r}, g...)
			}
		}
	}
	return samplings, bySampling
}

// policies lists the rows' policies in order of first appearance.
func policies(rows []Row) []string {
	var names []string
	seen := make(map[string]bool)
	for _, r := range rows {
		if !seen[r.Policy] {
			seen[r.Policy] = true
			names = append(names, r.Policy)
		}
	}
	return names
}
