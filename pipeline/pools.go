package pipeline

import (
	"math"
	"slices"
	"strings"
)

// WorkerPool is a pool of identical workers at one tier (the top-level
// pools section). A worker process joins one with `mlink run --pool NAME`;
// the scheduler then sends a model's frames to the pool its policy placed
// the model on (Subjects.InferOn), and to the unpooled workers where the
// pool has none alive.
type WorkerPool struct {
	Name string `yaml:"name"`
	// Tier is edge, hub or cloud: data flows that way only.
	Tier string `yaml:"tier"`
	// PricePerHour is one worker's price.
	PricePerHour float64 `yaml:"price_per_hour"`
	// Workers is how many workers the pool has (its capacity).
	Workers int `yaml:"workers"`
	// Speed is one worker's throughput relative to the machine the model
	// costs were measured on (default 1: a worker keeps up with 1000/ms
	// frames per second of a model measured at ms).
	Speed float64 `yaml:"speed"`
	// LinkPricePerGB is the price of the bytes sent into this pool from a
	// lower tier (frames, and outputs on their way to the results).
	LinkPricePerGB float64 `yaml:"link_price_per_gb"`
}

// Tiers are the worker tiers, in the order data may flow.
var Tiers = []string{"edge", "hub", "cloud"}

// TierIndex is the position of tier in Tiers (-1: not a tier).
func TierIndex(tier string) int { return slices.Index(Tiers, tier) }

// Pool returns the declared pool named name.
func (c *Config) Pool(name string) (WorkerPool, bool) { return findPool(c.Pools, name) }

// PoolNames lists the declared pools' names, in order.
func (c *Config) PoolNames() []string {
	names := make([]string, len(c.Pools))
	for i, p := range c.Pools {
		names[i] = p.Name
	}
	return names
}

func findPool(pools []WorkerPool, name string) (WorkerPool, bool) {
	for _, p := range pools {
		if p.Name == name {
			return p, true
		}
	}
	return WorkerPool{}, false
}

// validatePools checks the pools section: names are subject tokens
// (they name the pools' infer subjects), tiers known, capacities and
// prices sane.
func (c *Config) validatePools(p *problems) {
	names := map[string]bool{}
	for i, pool := range c.Pools {
		where := p.entryName("pools", i, "name", pool.Name, "pool name", names)
		if TierIndex(pool.Tier) < 0 {
			p.add("%s.tier: %q is not one of %s", where, pool.Tier, strings.Join(Tiers, ", "))
		}
		if pool.Workers < 1 {
			p.add("%s.workers: must be at least 1, got %d", where, pool.Workers)
		}
		for _, f := range []struct {
			name string
			v    float64
		}{{"price_per_hour", pool.PricePerHour}, {"speed", pool.Speed}, {"link_price_per_gb", pool.LinkPricePerGB}} {
			if f.v < 0 || math.IsNaN(f.v) || math.IsInf(f.v, 0) {
				p.add("%s.%s: must be a number ≥ 0, got %g", where, f.name, f.v)
			}
		}
	}
}
