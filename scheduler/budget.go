package scheduler

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/mlink-project/mlink/pipeline"
)

// Cost is what running one model costs: the resources a budget limits.
type Cost struct {
	// Memory is GPU memory (measured with NVML on GPU hosts), else the
	// configured memory or the RSS growth measured at load.
	Memory int64
	// MS is the measured execution time per frame.
	MS float64
}

// Budget limits the models executed on a frame. A zero field is no limit.
type Budget struct {
	Memory int64
	MS     float64
	// Mode is what MS means: a mean over the run (the default) or a cap on
	// every frame.
	Mode TimeMode
}

// ParseBudget reads a budget such as "5GB", "40ms" or "5GB,40ms".
func ParseBudget(s string) (Budget, error) {
	var b Budget
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if ms, ok := strings.CutSuffix(part, "ms"); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(ms), 64)
			if err != nil || v <= 0 {
				return b, fmt.Errorf("budget %q: want a positive time per frame such as 40ms", part)
			}
			b.MS = v
			continue
		}
		size, err := pipeline.ParseByteSize(part)
		if err != nil || size <= 0 {
			return b, fmt.Errorf("budget %q: want a memory size such as 5GB or a time such as 40ms", part)
		}
		b.Memory = int64(size)
	}
	if b.Memory == 0 && b.MS == 0 {
		return b, fmt.Errorf("budget %q: empty", s)
	}
	return b, nil
}

func (b Budget) String() string {
	var parts []string
	if b.Memory > 0 {
		parts = append(parts, pipeline.ByteSize(b.Memory).String())
	}
	if b.MS > 0 {
		parts = append(parts, strconv.FormatFloat(b.MS, 'g', 4, 64)+"ms")
	}
	if len(parts) == 0 {
		return "unlimited"
	}
	return strings.Join(parts, ",")
}

// Unlimited reports whether the budget limits nothing.
func (b Budget) Unlimited() bool { return b.Memory == 0 && b.MS == 0 }

// Fits reports whether a total cost is within the budget.
func (b Budget) Fits(total Cost) bool {
	const eps = 1e-9
	if b.Memory > 0 && total.Memory > b.Memory {
		return false
	}
	if b.MS > 0 && total.MS > b.MS+eps {
		return false
	}
	return true
}

// Share is a model's cost as a share of the budget: the larger of its shares
// of each limited resource. It is the c_i of MLink's activation probability
// when the budget limits more than one resource.
func (b Budget) Share(c Cost) float64 {
	s := 0.0
	if b.Memory > 0 {
		s = math.Max(s, float64(c.Memory)/float64(b.Memory))
	}
	if b.MS > 0 {
		s = math.Max(s, c.MS/b.MS)
	}
	if b.Unlimited() {
		// No budget: rank by time, the resource every model spends.
		s = c.MS
	}
	return s
}

func sum(costs map[string]Cost, models []string) Cost {
	var t Cost
	for _, m := range models {
		t.Memory += costs[m].Memory
		t.MS += costs[m].MS
	}
	return t
}

// SelectStandalone is the Standalone baseline: the cheapest models that fit,
// added in order of cost share; the others are not served at all.
func SelectStandalone(models []string, costs map[string]Cost, b Budget) []string {
	order := append([]string(nil), models...)
	sort.SliceStable(order, func(i, j int) bool { return b.Share(costs[order[i]]) < b.Share(costs[order[j]]) })
	return greedyFit(order, costs, b)
}

// greedyFit takes models in order, skipping one that does not fit and going
// on with the next (a cheaper later model may still fit).
func greedyFit(order []string, costs map[string]Cost, b Budget) []string {
	var chosen []string
	for _, m := range order {
		if b.Fits(sum(costs, append(chosen, m))) {
			chosen = append(chosen, m)
		}
	}
	return chosen
}
