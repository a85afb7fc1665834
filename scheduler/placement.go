package scheduler

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/mlink-project/mlink/pipeline"
)

// Operator is a model to place: its measured cost per frame and the bytes
// of one output.
type Operator struct {
	Model       string
	MS          float64
	OutputBytes float64
}

// Demand is what a placement must carry: the frame rate every operator
// keeps up with and the bytes of one frame (sent from the camera, at the
// edge, to every operator above it).
type Demand struct {
	FPS        float64
	FrameBytes float64
}

// Share is part of an operator's work on one pool: Workers of its workers,
// carrying Fraction of the operator's frames.
type Share struct {
	Pool     string
	Workers  int
	Fraction float64
}

// Placement is where a plan's operators run and what that costs per hour.
type Placement struct {
	// Shares maps each operator to the pools that run it.
	Shares map[string][]Share
	// Workers counts the workers taken in each pool.
	Workers map[string]int
	// ComputePerHour is Σ workers × price; TrafficPerHour Σ cross-tier
	// bytes × link price; PerHour their sum (in the pools' currency).
	ComputePerHour, TrafficPerHour, PerHour float64
	// CrossTierGBPerHour is the traffic between tiers.
	CrossTierGBPerHour float64
}

// Pools names the pools running model (in their order of preference).
func (p Placement) Pools(model string) []string {
	var out []string
	for _, s := range p.Shares[model] {
		out = append(out, s.Pool)
	}
	return out
}

func tierOf(pool pipeline.WorkerPool) int { return slices.Index(pipeline.Tiers, pool.Tier) }

func speedOf(pool pipeline.WorkerPool) float64 {
	if pool.Speed > 0 {
		return pool.Speed
	}
	return 1
}

// need is the worker-equivalents (at speed 1) an operator takes to keep up
// with fps frames per second.
func need(op Operator, fps float64) float64 { return fps * op.MS / 1000 }

// Place is JellyBean's worker assignment for one candidate plan: the
// operators, in the workflow's order, are placed tier by tier, forward only
// — once the plan has moved up a tier no later operator goes back down, so
// no data flows to a lower tier. In a tier an operator takes the cheapest
// single worker that keeps up with it; where no single worker can, it is
// spread over workers taken by cost per unit of throughput (price ÷
// speed), cheapest first; where the tier has too few free workers left, the
// plan moves up. Each operator has workers of its own (a model's workers
// are its queue group). The bill is Σ workers × price plus the cross-tier
// bytes × the receiving pool's link price: every frame to each operator
// above the edge (the camera's tier), and every output from below the
// results' tier (the highest tier used, where the outputs meet) up to it.
// An *SLOError says when the pools cannot carry the frame rate, and the
// highest rate they can.
func Place(ops []Operator, pools []pipeline.WorkerPool, d Demand) (Placement, error) {
	pl, ok := place(ops, pools, d)
	if ok {
		return pl, nil
	}
	// The best achievable rate: placement is monotone in the rate, so
	// bisect it.
	lo, hi := 0.0, d.FPS
	for range 40 {
		mid := (lo + hi) / 2
		if _, ok := place(ops, pools, Demand{FPS: mid, FrameBytes: d.FrameBytes}); ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	total := 0
	for _, p := range pools {
		total += p.Workers
	}
	return Placement{}, &SLOError{SLO: "throughput_fps", Want: d.FPS, Best: lo,
		Detail: fmt.Sprintf(" fps with the pools' %d workers for %s: add workers to the pools (the top-level section), or lower scheduler.jellybean.slo.throughput_fps", total, strings.Join(opModels(ops), ", "))}
}

func opModels(ops []Operator) []string {
	var out []string
	for _, op := range ops {
		out = append(out, op.Model)
	}
	return out
}

func place(ops []Operator, pools []pipeline.WorkerPool, d Demand) (Placement, bool) {
	pl := Placement{Shares: map[string][]Share{}, Workers: map[string]int{}}
	free := make([]int, len(pools))
	for i, p := range pools {
		free[i] = p.Workers
	}
	// Pools by tier; within one, by cost per unit of throughput.
	byTier := make([][]int, len(pipeline.Tiers))
	for i, p := range pools {
		if t := tierOf(p); t >= 0 {
			byTier[t] = append(byTier[t], i)
		}
	}
	for _, in := range byTier {
		sort.SliceStable(in, func(a, b int) bool {
			return pools[in[a]].PricePerHour/speedOf(pools[in[a]]) < pools[in[b]].PricePerHour/speedOf(pools[in[b]])
		})
	}
	tier := 0
	opTier := map[string]int{}
	for _, op := range ops {
		r := need(op, d.FPS)
		for ; ; tier++ { // forward only: the next operator starts where this one went
			if tier == len(byTier) {
				return Placement{}, false
			}
			if shares, ok := placeIn(r, byTier[tier], pools, free); ok {
				pl.Shares[op.Model] = shares
				opTier[op.Model] = tier
				for _, s := range shares {
					pl.Workers[s.Pool] += s.Workers
				}
				break
			}
		}
	}
	// The bill.
	index := map[string]int{}
	for i, p := range pools {
		index[p.Name] = i
		pl.ComputePerHour += float64(pl.Workers[p.Name]) * p.PricePerHour
	}
	top, sink := 0, -1 // the results' tier, and its pool (the one the last operator there uses most)
	for _, op := range ops {
		if t := opTier[op.Model]; t >= top {
			top = t
			sink = index[pl.Shares[op.Model][0].Pool]
		}
	}
	const perHour, gb = 3600.0, 1e9
	for _, op := range ops {
		for _, s := range pl.Shares[op.Model] {
			p := pools[index[s.Pool]]
			if tierOf(p) > 0 {
				bytes := s.Fraction * d.FPS * d.FrameBytes * perHour
				pl.CrossTierGBPerHour += bytes / gb
				pl.TrafficPerHour += bytes / gb * p.LinkPricePerGB
			}
			if sink >= 0 && tierOf(p) < top {
				bytes := s.Fraction * d.FPS * op.OutputBytes * perHour
				pl.CrossTierGBPerHour += bytes / gb
				pl.TrafficPerHour += bytes / gb * pools[sink].LinkPricePerGB
			}
		}
	}
	pl.PerHour = pl.ComputePerHour + pl.TrafficPerHour
	return pl, true
}

// placeIn places work r (worker-equivalents at speed 1) on the tier's pools
// (in, cheapest per throughput first), taking from free: the cheapest
// single worker that carries it, else workers cheapest per throughput first
// until they do. false: the tier's free workers cannot carry it.
func placeIn(r float64, in []int, pools []pipeline.WorkerPool, free []int) ([]Share, bool) {
	if len(in) == 0 {
		return nil, false
	}
	single := -1
	for _, i := range in {
		if free[i] > 0 && speedOf(pools[i]) >= r-1e-9 && (single < 0 || pools[i].PricePerHour < pools[single].PricePerHour) {
			single = i
		}
	}
	if single >= 0 {
		free[single]--
		return []Share{{Pool: pools[single].Name, Workers: 1, Fraction: 1}}, true
	}
	capacity := 0.0
	for _, i := range in {
		capacity += float64(free[i]) * speedOf(pools[i])
	}
	if capacity == 0 || capacity < r-1e-9 {
		return nil, false // no free worker, or too few: a model runs somewhere
	}
	var shares []Share
	left := r
	for _, i := range in {
		if left <= 1e-9 {
			break
		}
		s := speedOf(pools[i])
		n := min(free[i], int(math.Ceil(left/s-1e-9)))
		if n <= 0 {
			continue
		}
		carried := math.Min(left, float64(n)*s)
		free[i] -= n
		shares = append(shares, Share{Pool: pools[i].Name, Workers: n, Fraction: carried / r})
		left -= carried
	}
	return shares, true
}
