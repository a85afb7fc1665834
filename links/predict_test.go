package links

import (
	"reflect"
	"sync"
	"testing"
)

// TestPredictConcurrent: predictor workers share one Set; predictions from
// many goroutines equal the sequential ones (run with -race).
func TestPredictConcurrent(t *testing.T) {
	h, recs := allFamiliesTrace(60, 7)
	s := mustTrain(t, h, recs[:40], TrainOptions{Epochs: 2, Seed: 1})
	s.Evaluate(recs[40:])
	type job struct {
		target string
		frame  int
	}
	var jobs []job
	want := map[job]any{}
	for i := 41; i < 60; i++ {
		for _, m := range s.Models {
			j := job{m.Name, i}
			jobs = append(jobs, j)
			out, err := s.Predict(m.Name, without(recs[i].Outputs, m.Name))
			if err != nil {
				t.Fatal(err)
			}
			want[j] = out
		}
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 5; k++ {
				for _, j := range jobs {
					out, err := s.Predict(j.target, without(recs[j.frame].Outputs, j.target))
					if err != nil || !reflect.DeepEqual(out, want[j]) {
						errs <- j.target
						return
					}
					if _, err := s.PredictTemporal(j.target, nil, recs[j.frame-1].Outputs[j.target], 2); err != nil {
						errs <- err.Error()
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("concurrent prediction of %s differs or failed", e)
	}
}
