package scheduler

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mlink-project/mlink/pipeline"
)

// Smooth weighted round robin: shares 0.75/0.25 interleave 3:1 with the
// minor pool between the major one's turns, not in a burst.
func TestPoolRouterInterleavesByShare(t *testing.T) {
	var r poolRouter
	shares := []Share{{Pool: "gpu", Fraction: 0.75}, {Pool: "box", Fraction: 0.25}}
	var got []string
	for range 8 {
		got = append(got, r.pick("hog", shares))
	}
	if want := []string{"gpu", "gpu", "box", "gpu", "gpu", "gpu", "box", "gpu"}; !slices.Equal(got, want) {
		t.Errorf("picks %v, want %v", got, want)
	}
	if n := strings.Count(strings.Join(got, " "), "gpu"); n != 6 {
		t.Errorf("gpu got %d of 8 picks, want 6", n)
	}
}

func routingController(t *testing.T, placement map[string][]Share) *Controller {
	t.Helper()
	c, err := NewController(ControllerConfig{Policy: PolicyAll, Models: []string{"hog", "face", "motion"},
		HealthTimeout: time.Minute}, nil, nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	c.selection.Store(&Selection{Exact: []string{"hog", "face", "motion"}, Placement: placement})
	return c
}

// A placed model goes to its pool while the pool's workers answer (or
// before any worker of it is heard of); when they stop, to its other
// placement pool, then to the unpooled workers, then to any pool that has
// the model; each fallback counted, apart from the frames of a model whose
// placement pool never had a worker of it (unserved). Models placed
// nowhere stay unpooled.
func TestRouteFollowsThePlacementAndFallsBackToLiveWorkers(t *testing.T) {
	c := routingController(t, map[string][]Share{
		"hog":  {{Pool: "gpu", Fraction: 1}, {Pool: "pc", Fraction: 0}},
		"face": {{Pool: "box", Fraction: 1}},
	})
	plan := func() map[string]string {
		p := pipeline.Plan{Exact: []string{"hog", "face", "motion"}}
		c.route(&p)
		return p.Pools
	}
	beat := func(model, pool string, ago time.Duration) {
		c.ObserveHeartbeat(&pipeline.Heartbeat{Model: model, Pool: pool})
		c.mu.Lock()
		c.pools[model][pool].lastBeat = time.Now().Add(-ago)
		c.mu.Unlock()
	}
	if got := plan(); got["hog"] != "gpu" || got["face"] != "box" || got["motion"] != "" {
		t.Fatalf("nothing heard yet: pools %v, want hog on gpu, face on box, motion unpooled", got)
	}
	beat("hog", "gpu", 0)
	beat("hog", "pc", 0)
	beat("face", "", 0)
	beat("motion", "", 0)
	if got := plan(); got["hog"] != "gpu" || got["face"] != "" {
		t.Errorf("gpu answers, box never heard of: pools %v, want hog on gpu and face unpooled", got)
	}
	if f, u := c.stats.PoolFallbacks.Load(), c.stats.PoolUnserved.Load(); f != 0 || u != 1 {
		t.Errorf("fallbacks %d, unserved %d: want 0 and 1 (face: box never had a worker of it)", f, u)
	}
	beat("hog", "gpu", time.Hour) // silent
	if got := plan(); got["hog"] != "pc" {
		t.Errorf("gpu silent: hog on %q, want its other placement pool pc", got["hog"])
	}
	beat("hog", "pc", time.Hour)
	beat("hog", "", 0)
	if got := plan(); got["hog"] != "" {
		t.Errorf("both placement pools silent: hog on %q, want the unpooled workers", got["hog"])
	}
	beat("hog", "", time.Hour)
	beat("hog", "edge2", 0)
	if got := plan(); got["hog"] != "edge2" {
		t.Errorf("only edge2 has live hog workers: hog on %q, want edge2", got["hog"])
	}
	beat("hog", "gpu", 0)
	if got := plan(); got["hog"] != "gpu" {
		t.Errorf("gpu back: hog on %q, want gpu", got["hog"])
	}
	// hog fell back three times (pc, unpooled, edge2); face went
	// unpooled on each of the five frames since its workers were heard.
	if f, u := c.stats.PoolFallbacks.Load(), c.stats.PoolUnserved.Load(); f != 3 || u != 5 {
		t.Errorf("fallbacks %d, unserved %d: want 3 and 5", f, u)
	}
}

// Cascade members are routed too: an escalation sends the frame to its
// later tier's pool.
func TestRouteCoversCascadeMembers(t *testing.T) {
	c := routingController(t, tierPlacement([]pipeline.Cascade{{Task: "faces", Output: "face",
		Tiers: []pipeline.CascadeTier{{Models: []string{"motion"}, Pool: "box"}, {Models: []string{"face"}, Pool: "gpu"}}}}))
	p := pipeline.Plan{Exact: []string{"motion", "hog"}, Cascades: []pipeline.Cascade{{Task: "faces", Output: "face",
		Tiers: []pipeline.CascadeTier{{Models: []string{"motion"}}, {Models: []string{"face"}}}}}}
	c.route(&p)
	if want := map[string]string{"motion": "box", "face": "gpu"}; len(p.Pools) != 2 || p.Pools["motion"] != "box" || p.Pools["face"] != "gpu" {
		t.Errorf("pools %v, want %v", p.Pools, want)
	}
}
