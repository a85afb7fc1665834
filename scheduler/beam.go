package scheduler

import (
	"fmt"
	"sort"
)

// BeamWidth is JellyBean's beam: the partial assignments kept at each step.
const BeamWidth = 10

// Variant is one model that can serve a task: its measured cost per frame
// and its accuracy for the task (1 for the reference; the others' agreement
// with it measured on the profiling frames).
type Variant struct {
	Model    string
	MS       float64
	Accuracy float64
}

// Task is an operator of the workflow: the variants that can serve it and
// its accuracy target (0: none).
type Task struct {
	Name     string
	Target   float64
	Variants []Variant
}

// Assignment chooses one variant per task: Choice[i] indexes
// tasks[i].Variants.
type Assignment struct {
	Choice []int
	// MS is the chosen variants' cost per frame; Accuracy their mean
	// accuracy over the tasks.
	MS, Accuracy float64
}

// Models are the assignment's chosen variants, in task order.
func (a Assignment) Models(tasks []Task) []string {
	out := make([]string, len(tasks))
	for i, c := range a.Choice {
		out[i] = tasks[i].Variants[c].Model
	}
	return out
}

// SLOError is a plan refused: an SLO no plan meets, and the best any plan
// achieves.
type SLOError struct {
	// SLO names the objective ("throughput_fps", "accuracy", "accuracy of
	// task faces").
	SLO        string
	Want, Best float64
	// Detail says what achieves Best and what to change.
	Detail string
}

func (e *SLOError) Error() string {
	return fmt.Sprintf("SLO %s %.3g cannot be met: the best achievable is %.3g%s", e.SLO, e.Want, e.Best, e.Detail)
}

// BeamSearch is JellyBean's model selection: from the sink backwards (the
// last task first), each partial assignment is extended by every variant
// that meets its task's target and leaves the end-to-end target (the mean
// accuracy over tasks, meanTarget) reachable by the best variants of the
// tasks still to assign — the requirement propagated from downstream — and
// the k cheapest partial assignments (by cost per frame) are kept. It
// returns the complete assignments left, cheapest first: the candidates
// placement prices. Keeping k, not 1, matters: the cheapest choice for one
// task can force expensive ones upstream. An *SLOError says which target
// no assignment meets.
func BeamSearch(tasks []Task, meanTarget float64, k int) ([]Assignment, error) {
	k = max(1, k)
	n := len(tasks)
	// best[i]: the highest accuracy sum tasks[0..i) can reach.
	best := make([]float64, n+1)
	for i, t := range tasks {
		top, model := -1.0, ""
		for _, v := range t.Variants {
			if v.Accuracy > top {
				top, model = v.Accuracy, v.Model
			}
		}
		if top < t.Target-1e-9 {
			return nil, &SLOError{SLO: "accuracy of task " + t.Name, Want: t.Target, Best: max(top, 0),
				Detail: fmt.Sprintf(" (by %s, measured on the profiling frames): lower scheduler.jellybean.slo.tasks.%s or add a more accurate variant", model, t.Name)}
		}
		best[i+1] = best[i] + top
	}
	need := meanTarget * float64(n)
	if n > 0 && best[n] < need-1e-9 {
		return nil, &SLOError{SLO: "accuracy", Want: meanTarget, Best: best[n] / float64(n),
			Detail: " (every task's most accurate variant): lower scheduler.jellybean.slo.accuracy"}
	}
	type partial struct {
		choice []int // indexed by task; set from i on
		ms     float64
		acc    float64 // sum over the tasks assigned
	}
	beam := []partial{{choice: make([]int, n)}}
	for i := n - 1; i >= 0; i-- {
		var next []partial
		for _, p := range beam {
			for vi, v := range tasks[i].Variants {
				if v.Accuracy < tasks[i].Target-1e-9 {
					continue
				}
				if p.acc+v.Accuracy+best[i] < need-1e-9 {
					continue // upstream cannot make up for it
				}
				c := append([]int(nil), p.choice...)
				c[i] = vi
				next = append(next, partial{choice: c, ms: p.ms + v.MS, acc: p.acc + v.Accuracy})
			}
		}
		sort.SliceStable(next, func(a, b int) bool { return next[a].ms < next[b].ms })
		beam = next[:min(k, len(next))]
	}
	out := make([]Assignment, len(beam))
	for j, p := range beam {
		out[j] = Assignment{Choice: p.choice, MS: p.ms}
		if n > 0 {
			out[j].Accuracy = p.acc / float64(n)
		}
	}
	return out, nil
}
