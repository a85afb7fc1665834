package scheduler

import (
	"sync"

	"github.com/mlink-project/mlink/pipeline"
)

var pipelineRSS = pipeline.RSS

// MemoryProbe measures this process's GPU memory (stages/gpu with NVML on
// GPU hosts).
type MemoryProbe interface {
	ProcessMemory() (int64, error)
}

// LoadMeasure is what was measured while a model loaded (and ran once).
type LoadMeasure struct {
	// GPU is the growth of the process's GPU memory; GPUMeasured says
	// whether NVML measured it at all.
	GPU         int64
	GPUMeasured bool
	// RSS is the growth of the process's resident memory.
	RSS int64
	// Configured is the memory the config declares for the model (0: none).
	Configured int64
}

// Memory picks the model's memory cost: NVML-measured GPU memory where a GPU
// measured it, else the configured memory, else the RSS growth.
func (m LoadMeasure) Memory() int64 {
	switch {
	case m.GPUMeasured && m.GPU > 0:
		return m.GPU
	case m.Configured > 0:
		return m.Configured
	}
	return max(0, m.RSS)
}

// CostModel holds every model's current cost: memory measured at load and
// execution time measured as frames run (an exponentially weighted mean).
// It is safe for concurrent use.
type CostModel struct {
	mu    sync.Mutex
	costs map[string]Cost
	seen  map[string]bool
}

// NewCostModel starts from initial costs (configured or measured offline).
func NewCostModel(initial map[string]Cost) *CostModel {
	c := &CostModel{costs: map[string]Cost{}, seen: map[string]bool{}}
	for m, v := range initial {
		c.costs[m] = v
	}
	return c
}

// SetMemory records a model's memory cost.
func (c *CostModel) SetMemory(model string, bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.costs[model]
	v.Memory = bytes
	c.costs[model] = v
}

// ObserveMS folds one measured execution time into the model's cost.
func (c *CostModel) ObserveMS(model string, ms float64) {
	if ms <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.costs[model]
	if !c.seen[model] || v.MS == 0 {
		v.MS = ms
		c.seen[model] = true
	} else {
		v.MS += (ms - v.MS) / 16
	}
	c.costs[model] = v
}

// Costs returns a copy of the current costs.
func (c *CostModel) Costs() map[string]Cost {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]Cost, len(c.costs))
	for m, v := range c.costs {
		out[m] = v
	}
	return out
}

// MeasureLoad runs load (a model's load and warm-up) and measures the memory
// it took. probe may be nil (no GPU). load's error is returned as is.
func MeasureLoad(probe MemoryProbe, configured int64, load func() error) (LoadMeasure, error) {
	m := LoadMeasure{Configured: configured}
	var gpu0 int64
	if probe != nil {
		if v, err := probe.ProcessMemory(); err == nil {
			gpu0, m.GPUMeasured = v, true
		}
	}
	rss0 := pipelineRSS()
	err := load()
	m.RSS = pipelineRSS() - rss0
	if m.GPUMeasured {
		if v, err := probe.ProcessMemory(); err == nil {
			m.GPU = v - gpu0
		} else {
			m.GPUMeasured = false
		}
	}
	return m, err
}
