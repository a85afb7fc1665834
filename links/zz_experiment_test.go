package links

import (
	"fmt"
	"os"
	"testing"
	"time"
)

func readPartial(t *testing.T, path string) (TraceHeader, []*TraceRecord) {
	r, err := OpenTrace(path)
	if err != nil {
		t.Fatal(err)
	}
	var recs []*TraceRecord
	for {
		rec, err := r.Next()
		if err != nil {
			break
		}
		recs = append(recs, rec)
	}
	return r.Header(), recs
}

func TestExperiment(t *testing.T) {
	path := os.Getenv("MLINK_EXPERIMENT")
	if path == "" {
		t.Skip()
	}
	h, recs := readPartial(t, path)
	t.Logf("%d frames", len(recs))
	frac := 0.1
	if v := os.Getenv("FRAC"); v != "" {
		fmt.Sscan(v, &frac)
	}
	train, eval := SplitByTime(recs, frac)
	opts := TrainOptions{Seed: 1}
	if v := os.Getenv("EPOCHS"); v != "" {
		fmt.Sscan(v, &opts.Epochs)
	}
	opts.SeqDecoder = os.Getenv("DECODER")
	opts.CountLoss = os.Getenv("COUNTLOSS")
	if v := os.Getenv("MINHIDDEN"); v != "" {
		fmt.Sscan(v, &opts.MinHidden)
	}
	opts.NoTemporal = os.Getenv("NOTEMPORAL") != ""
	var last time.Time
	start := time.Now()
	opts.Progress = func(p Progress) {
		if p.Finished {
			fmt.Printf("%6.1fs %3d/%d %-8s %s->%s loss %.4f (%.1fs)\n", time.Since(start).Seconds(), p.Done, p.Total, p.Stage, p.Source, p.Target, p.Loss, time.Since(last).Seconds())
		}
	}
	last = time.Now()
	s, err := Train(h, train, opts)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("train %.1fs\n", s.TrainSeconds)
	t0 := time.Now()
	ev := s.Evaluate(eval)
	fmt.Printf("eval %.1fs on %d frames\n", time.Since(t0).Seconds(), len(eval))
	for _, p := range ev.Pairs {
		c := ""
		if p.Count != nil {
			c = fmt.Sprintf("count %.3f graded %.3f mae %.2f", p.Count.Accuracy, p.Count.Graded, p.Count.MAE)
		}
		fmt.Printf("%-15s -> %-15s %-8s %.3f %s\n", p.Source, p.Target, p.Kind, p.Accuracy, c)
	}
	for _, b := range ev.Baselines {
		c := ""
		if b.Count != nil {
			c = fmt.Sprintf("count %.3f graded %.3f mae %.2f", b.Count.Accuracy, b.Count.Graded, b.Count.MAE)
		}
		fmt.Printf("baseline %-15s %-8s age %2d %.3f %s\n", b.Target, b.Baseline, b.Age, b.Accuracy, c)
	}
	for _, sz := range ev.Sizes {
		c := ""
		if sz.CountMean != nil {
			c = fmt.Sprintf("count %.3f", *sz.CountMean)
		}
		fmt.Printf("size %-15s %d mean %.3f min %.3f max %.3f %s\n", sz.Target, sz.Size, sz.Mean, sz.Min, sz.Max, c)
	}
	for _, sz := range ev.TemporalSizes {
		c := ""
		if sz.CountMean != nil {
			c = fmt.Sprintf("count %.3f", *sz.CountMean)
		}
		fmt.Printf("tsize %-15s age %2d %d mean %.3f min %.3f max %.3f %s\n", sz.Target, sz.Age, sz.Size, sz.Mean, sz.Min, sz.Max, c)
	}
}
