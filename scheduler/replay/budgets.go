package replay

import (
	"cmp"
	"math"
	"slices"

	"github.com/mlink-project/mlink/scheduler"
)

// BudgetPoints are the budgets where 1, 2, … of the cheapest models fit
// (all but the last: all of them fit needs no budget), and a quarter, a
// third, a half and two thirds of the total cost, in the given unit ("ms" or "memory"), sorted and
// without duplicates.
func BudgetPoints(costs map[string]scheduler.Cost, unit string) []scheduler.Budget {
	var values []float64
	for _, c := range costs {
		if unit == "memory" {
			values = append(values, float64(c.Memory))
		} else {
			values = append(values, c.MS)
		}
	}
	slices.Sort(values)
	total := 0.0
	for _, v := range values {
		total += v
	}
	var points []float64
	sum := 0.0
	for _, v := range values[:max(0, len(values)-1)] {
		sum += v
		points = append(points, sum)
	}
	points = append(points, total/4, total/3, total/2, 2*total/3)
	var out []scheduler.Budget
	for _, p := range points {
		if p <= 0 {
			continue
		}
		// Round up so that the models the point is for still fit once the
		// budget is printed and parsed back.
		var b scheduler.Budget
		if unit == "memory" {
			b.Memory = int64(math.Ceil(p/(1<<20))) << 20
		} else {
			b.MS = math.Ceil(p)
		}
		if !slices.Contains(out, b) {
			out = append(out, b)
		}
	}
	slices.SortFunc(out, func(a, b scheduler.Budget) int {
		return cmp.Compare(float64(a.Memory)+a.MS, float64(b.Memory)+b.MS)
	})
	return out
}

// BudgetAtShare is the budget at a share of the total cost in the unit
// ("ms" or "memory"), rounded up like BudgetPoints.
func BudgetAtShare(costs map[string]scheduler.Cost, unit string, share float64) scheduler.Budget {
	total := 0.0
	for _, c := range costs {
		if unit == "memory" {
			total += float64(c.Memory)
		} else {
			total += c.MS
		}
	}
	if unit == "memory" {
		return scheduler.Budget{Memory: int64(math.Ceil(share*total/(1<<20))) << 20}
	}
	return scheduler.Budget{MS: math.Ceil(share * total)}
}
