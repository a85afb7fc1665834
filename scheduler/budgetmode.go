package scheduler

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"
)

// TimeMode says what a time budget per frame means. Memory is always a cap
// (what is loaded at once).
type TimeMode string

const (
	// TimeMean: the budget is a throughput — the mean model time per frame
	// over the whole run, profiling included, stays within it; single
	// frames may cost more (frames queue, work spreads over workers).
	TimeMean TimeMode = "mean"
	// TimeCap: no frame's executed models cost more than the budget (what a
	// live camera with a latency bound needs). Profiling frames, every
	// model on one frame, are the one declared exception.
	TimeCap TimeMode = "cap"
)

// TimeModes lists the time budget semantics.
var TimeModes = []TimeMode{TimeMean, TimeCap}

// ParseTimeMode reads "mean" or "cap" ("" is mean, the default).
func ParseTimeMode(s string) (TimeMode, error) {
	switch TimeMode(s) {
	case "", TimeMean:
		return TimeMean, nil
	case TimeCap:
		return TimeCap, nil
	}
	names := make([]string, len(TimeModes))
	for i, m := range TimeModes {
		names[i] = string(m)
	}
	return "", fmt.Errorf("time budget mode %q: want %s", s, strings.Join(names, " or "))
}

// Capped reports whether the budget caps every frame's time.
func (b Budget) Capped() bool { return b.MS > 0 && b.Mode == TimeCap }

// costLedger keeps a time budget's books over the frames planned so far:
// what their executed models cost against what the budget allowed. Under a
// mean budget the evidence a policy gathers (bootstrap, profiling windows,
// active sampling, a cost probe) is paid out of the same budget, so what it
// overspends is repaid on later frames.
type costLedger struct {
	frames  int64
	spent   float64
	allowed float64
}

// charge books one planned frame.
func (l *costLedger) charge(ms, budget float64) {
	l.frames++
	l.spent += ms
	l.allowed += budget
}

// debt is what has been spent beyond the budget so far (0 when within).
func (l *costLedger) debt() float64 { return math.Max(0, l.spent-l.allowed) }

// meanSelectionBudget is the time per frame left for a policy's choice on
// the frames it does not profile, so that the whole run's mean stays within
// b: its debt (what it overspent: profiling frames, a cost probe) is repaid
// over the next horizon frames. It is b itself for a memory-only or capped
// budget.
func meanSelectionBudget(b Budget, debt, horizon float64) Budget {
	if b.MS <= 0 || b.Capped() {
		return b
	}
	ms := b.MS
	if horizon > 0 {
		ms -= debt / horizon
	}
	out := b
	// A budget too small to run anything still limits: nothing fits.
	out.MS = math.Max(ms, 1e-6)
	return out
}

// staggerPhases gives each rotating model (period k > 1) a phase so that
// the frames where expensive models run are spread out: models in
// decreasing cost each take the phase that keeps the heaviest frame
// lightest, ties broken by the most even load (least sum of squares), over
// the periods' common cycle (capped at phaseHorizon). Models run on every
// frame (k = 1) load every frame. It returns the phases and the cost of
// the heaviest frame of the cycle. Periods without a common factor meet on
// some frame whatever the phases: under a capped budget the hybrid and the
// skip policies use periods that divide each other (powers of two).
func staggerPhases(models []string, every map[string]int, costs map[string]Cost) (map[string]int, float64) {
	var rotating []string
	horizon := 1
	base := 0.0
	for _, m := range models {
		switch k := every[m]; {
		case k == 1:
			base += costs[m].MS
		case k > 1:
			rotating = append(rotating, m)
			horizon = min(phaseHorizon, lcm(horizon, k))
		}
	}
	sort.SliceStable(rotating, func(a, b int) bool { return costs[rotating[a]].MS > costs[rotating[b]].MS })
	load := make([]float64, horizon)
	for i := range load {
		load[i] = base
	}
	phases := map[string]int{}
	for _, m := range rotating {
		k := every[m]
		c := max(costs[m].MS, 1e-9)
		best, bestPeak, bestSpread := 0, math.Inf(1), math.Inf(1)
		for ph := range k {
			peak, spread := 0.0, 0.0
			for i, l := range load {
				if runsOn(int64(i), k, ph) {
					l += c
				}
				peak = max(peak, l)
				spread += l * l
			}
			if peak < bestPeak-1e-9 || (peak <= bestPeak+1e-9 && spread < bestSpread*(1-1e-12)) {
				best, bestPeak, bestSpread = ph, peak, spread
			}
		}
		phases[m] = best
		for i := range load {
			if runsOn(int64(i), k, best) {
				load[i] += c
			}
		}
	}
	peak := base
	for _, l := range load {
		peak = max(peak, l)
	}
	return phases, peak
}

// capPeriods are the rotation periods usable under a capped time budget:
// each divides the next, so staggered phases never pile models onto one
// frame beyond what the cycle's packing shows.
var capPeriods = []int{1, 2, 4, 8, 16, 32}

// nextPowerOfTwo is the smallest power of two ≥ k (k ≥ 1).
func nextPowerOfTwo(k int) int {
	p := 1
	for p < k {
		p <<= 1
	}
	return p
}

// budgetBooks are a policy's cost ledger with the media clock of the frames
// it planned, from which the horizon for repaying debt is measured. Safe for
// concurrent use (results are booked as they arrive, selections are made
// on the routing goroutine or where links are installed).
type budgetBooks struct {
	mu          sync.Mutex
	ledger      costLedger
	first, last time.Time
}

// charge books a frame's result: the measured time of its executed models.
func (b *budgetBooks) charge(at time.Time, spentMS, budgetMS float64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.first.IsZero() {
		b.first = at
	}
	b.last = at
	b.ledger.charge(spentMS, budgetMS)
}

// debtAndHorizon are the overspending so far and the frames expected in the
// next period at the rate frames have come until now (at least one frame).
func (b *budgetBooks) debtAndHorizon(period time.Duration, now time.Time) (debt, horizon float64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	horizon = 1
	if el := now.Sub(b.first); el > 0 && b.ledger.frames > 0 {
		rate := float64(b.ledger.frames) / el.Seconds()
		horizon = max(1, rate*period.Seconds())
	}
	return b.ledger.debt(), horizon
}

// affords reports whether a frame costing ms can run now and leave the
// books balanced: what was spent, with it, within what the budget allowed
// (this frame's share included). Under a mean budget discretionary work —
// profiling frames, rotating models' turns — runs only when it affords
// it, so a run's mean never ends over the budget.
func (b *budgetBooks) affords(ms, budgetMS float64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ledger.spent+ms <= b.ledger.allowed+budgetMS+1e-9
}
