package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mlink-project/mlink/pipeline"
)

// resultTracker follows mlink.results.* for the live status, --max-frames
// and the run summary.
type resultTracker struct {
	sub *nats.Subscription

	mu        sync.Mutex
	counts    map[string]int64
	latest    map[string]*pipeline.Result
	partial   int64
	latencies []float64 // bounded: the last maxLatencies
	lastSeq   map[string]uint64
	outOfSeq  int64
	// onResult, when set, sees every result (on the subscription's goroutine).
	onResult func(*pipeline.Result)
}

const maxLatencies = 100_000

func trackResults(nc *nats.Conn, subjects pipeline.Subjects, onResult func(*pipeline.Result)) (*resultTracker, error) {
	t := &resultTracker{counts: map[string]int64{}, latest: map[string]*pipeline.Result{}, lastSeq: map[string]uint64{}, onResult: onResult}
	sub, err := nc.Subscribe(subjects.AllResults(), func(m *nats.Msg) {
		res, err := pipeline.Unmarshal[pipeline.Result](m.Data)
		if err != nil {
			return
		}
		if t.onResult != nil {
			t.onResult(res)
		}
		t.mu.Lock()
		defer t.mu.Unlock()
		t.counts[res.Camera]++
		// A gap record has no outputs to show and no latency of its own.
		lost := res.Reason == pipeline.PartialLost
		if !lost {
			t.latest[res.Camera] = res
		}
		if res.Partial {
			t.partial++
		}
		if res.Seq <= t.lastSeq[res.Camera] {
			t.outOfSeq++
		}
		t.lastSeq[res.Camera] = res.Seq
		if len(t.latencies) < maxLatencies && !lost {
			t.latencies = append(t.latencies, res.LatencyMS)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe results: %w", err)
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		return nil, err
	}
	t.sub = sub
	return t, nil
}

func (t *resultTracker) count(camera string) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.counts[camera]
}

func (t *resultTracker) close() {
	if t.sub != nil {
		_ = t.sub.Unsubscribe()
	}
}

// percentile returns the p-th percentile (0..100) of xs; xs is sorted in place.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sort.Float64s(xs)
	i := int(p / 100 * float64(len(xs)-1))
	return xs[i]
}

// printStatus redraws a compact status block every second until ctx ends.
func (a *app) printStatus(ctx context.Context, w io.Writer) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lines := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		var b strings.Builder
		if lines > 0 {
			fmt.Fprintf(&b, "\x1b[%dA", lines) // cursor up to redraw in place
		}
		text := a.statusText()
		b.WriteString(text)
		lines = strings.Count(text, "\n")
		fmt.Fprint(w, b.String())
	}
}

func (a *app) statusText() string {
	a.mu.RLock() // a reload may be replacing the config and the policy
	defer a.mu.RUnlock()
	var b strings.Builder
	clear := "\x1b[K"
	for _, cam := range a.liveCameras() {
		st := cam.Stats()
		state := "up"
		if !st.Connected {
			state = "DOWN"
		}
		fmt.Fprintf(&b, "camera %-12s %-4s %5.1f fps  published %6d  dropped %5d  reconnects %d  results %6d%s\n",
			cam.ID(), state, st.FPS, st.Published, st.Dropped, st.Reconnects, a.results.count(cam.ID()), clear)
		a.results.mu.Lock()
		res := a.results.latest[cam.ID()]
		a.results.mu.Unlock()
		if res != nil {
			var parts []string
			for _, name := range a.cfg.ModelNames() {
				if o, ok := res.Outputs[name]; ok {
					parts = append(parts, name+"="+outputSummary(o))
				} else {
					parts = append(parts, name+"=?")
				}
			}
			fmt.Fprintf(&b, "  #%d %4.0fms  %s%s\n", res.Seq, res.LatencyMS, strings.Join(parts, " "), clear)
		}
	}
	if a.control != nil && !a.control.Policy().Links {
		fmt.Fprintf(&b, "policy %s, budget %s (%s): %s%s\n", a.cfg.Scheduler.Policy, schedulerBudget(a.cfg), a.cfg.Budget.TimeMode, a.control.Selection(), clear)
	}
	if a.control != nil && a.control.Policy().Links {
		sel := a.control.Selection()
		line := fmt.Sprintf("policy %s, budget %s: %s", a.cfg.Scheduler.Policy, schedulerBudget(a.cfg), sel)
		if acc, ok := a.control.Stats().MeasuredAccuracy(); ok {
			line += fmt.Sprintf(", measured agreement of predictions %.2f", acc)
		}
		line += fmt.Sprintf(", profiled frames %d", a.control.Stats().Profiled.Load())
		if n := a.control.Stats().Sampled.Load(); n > 0 {
			line += fmt.Sprintf(" (%d by active sampling)", n)
		}
		fmt.Fprintf(&b, "%s%s\n", line, clear)
	}
	if a.sched != nil && a.reducto != nil {
		fmt.Fprintf(&b, "reducto: %d frames filtered%s\n", a.sched.Stats().Filtered.Load(), clear)
	}
	if workers := a.liveWorkers(); len(workers) > 0 {
		var parts []string
		for _, w := range workers {
			parts = append(parts, fmt.Sprintf("%s %.0fms", w.Spec().Name, w.Stats().MeanInferMS()))
		}
		fmt.Fprintf(&b, "models: %s%s\n", strings.Join(parts, ", "), clear)
	}
	return b.String()
}

// outputSummary renders an output's value compactly: a count, a label, or
// the first values.
func outputSummary(o *pipeline.Output) string {
	if o.Error != "" {
		return "error"
	}
	mark := ""
	switch o.Source {
	case pipeline.SourcePredicted:
		mark = "~"
	case pipeline.SourceReused:
		mark = "="
	}
	switch {
	case o.Label != "":
		return mark + o.Label
	case len(o.Value) == 1:
		return fmt.Sprintf("%s%g", mark, o.Value[0])
	case len(o.Value) > 1:
		return fmt.Sprintf("%s%.2g…", mark, o.Value[0])
	}
	return mark + "-"
}

func (a *app) printSummary(w io.Writer) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.results == nil {
		return
	}
	a.results.mu.Lock()
	defer a.results.mu.Unlock()
	var total int64
	for _, n := range a.results.counts {
		total += n
	}
	if total == 0 {
		return
	}
	lat := append([]float64(nil), a.results.latencies...)
	fmt.Fprintf(w, "results: %d (%d partial), latency p50 %.0fms p99 %.0fms\n",
		total, a.results.partial, percentile(lat, 50), percentile(lat, 99))
	if a.sched != nil {
		st := a.sched.Stats()
		if planned := st.Planned.Load(); planned > 0 {
			fmt.Fprintf(w, "model executions: %d of %d planned outputs (%.0f%% saved)\n",
				st.Executions.Load(), planned, 100*(1-float64(st.Executions.Load())/float64(planned)))
		}
		if n := st.Filtered.Load(); n > 0 {
			fmt.Fprintf(w, "frames filtered by reducto: %d of %d\n", n, st.Frames.Load())
		}
	}
	if a.control != nil {
		fmt.Fprintf(w, "policy %s: %s\n", a.cfg.Scheduler.Policy, a.control.Selection())
		if acc, ok := a.control.Stats().MeasuredAccuracy(); ok {
			fmt.Fprintf(w, "measured agreement of predicted outputs with exact ones (held-out profiling frames): %.3f\n", acc)
		}
		if ts := a.control.TrainerStats(); ts != nil {
			fmt.Fprintf(w, "links: %d trainings, %d on actively sampled frames, %d errors\n",
				ts.Trainings.Load(), ts.ActiveTunings.Load(), ts.TrainErrors.Load())
		}
	}
	if a.trainer != nil {
		ts := a.trainer.Stats()
		fmt.Fprintf(w, "trainer: %d profiled frames, %d trainings, %d on actively sampled frames, %d errors\n",
			ts.Profiled.Load(), ts.Trainings.Load(), ts.ActiveTunings.Load(), ts.TrainErrors.Load())
	}
}
