package stages

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"gocv.io/x/gocv"

	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/stages/opencv"
	"github.com/mlink-project/mlink/stages/vision"
)

// A worker whose model takes a while per frame (HOG on frames upscaled to
// 2000 px) shows its backlog in QueueDepth (the mlink_stage_queue_depth
// gauge), bounded by the model's queue, and drains it.
func TestWorkerQueueDepthShowsTheBacklog(t *testing.T) {
	srv := startBus(t)
	spec := &pipeline.ModelSpec{Name: "slow_hog", Backend: pipeline.BackendHOG, Output: pipeline.TypeBoxes, Workers: 1, Queue: 3,
		Params: map[string]float64{"upscale_width": 2000}}
	w, err := NewModelWorker(connect(t, srv), spec, func(s *pipeline.ModelSpec) (vision.Backend, error) { return opencv.NewHOG(s) }, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	stop := runTestWorker(t, w)
	if q := w.QueueDepth(); q != 0 {
		t.Fatalf("an idle worker's queue depth is %d", q)
	}
	pub := connect(t, srv)
	jpeg := encodeTestJPEG(t, 320, 240, false)
	for seq := uint64(1); seq <= 8; seq++ {
		f := &pipeline.Frame{Camera: "plaza", Seq: seq, CapturedAt: time.Now(), Width: 320, Height: 240, JPEG: jpeg, Token: pipeline.NewToken()}
		pub.PublishMsg(pipeline.FrameMsg(pipeline.DefaultSubjects.Infer("slow_hog"), f))
	}
	pub.Flush()
	peak := 0
	waitFor(t, 10*time.Second, "a backlog in the queue", func() bool { peak = max(peak, w.QueueDepth()); return peak >= 2 })
	if peak > spec.Queue {
		t.Errorf("queue depth %d over the model's queue of %d", peak, spec.Queue)
	}
	stop()
}

// failingBackend takes its time and fails.
type failingBackend struct{ took time.Duration }

func (b failingBackend) Infer(string, gocv.Mat) (pipeline.Output, error) {
	time.Sleep(b.took)
	return pipeline.Output{}, errors.New("out of device memory")
}
func (failingBackend) Close() error { return nil }

// A model that runs and fails answers with the error and the time it
// took: the scheduler's books charge that time (it was spent), so a
// failing model cannot make a policy overspend its mean budget unseen.
func TestWorkerReportsTheTimeOfAFailedRun(t *testing.T) {
	srv := startBus(t)
	spec := &pipeline.ModelSpec{Name: "flaky", Backend: pipeline.BackendHOG, Output: pipeline.TypeBoxes, Workers: 1, Queue: 2}
	w, err := NewModelWorker(connect(t, srv), spec, func(*pipeline.ModelSpec) (vision.Backend, error) {
		return failingBackend{took: 30 * time.Millisecond}, nil
	}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	stop := runTestWorker(t, w)
	sub := connect(t, srv)
	outs := make(chan *nats.Msg, 1)
	if _, err := sub.ChanSubscribe(pipeline.DefaultSubjects.Outputs("plaza", "flaky"), outs); err != nil {
		t.Fatal(err)
	}
	sub.Flush()
	f := &pipeline.Frame{Camera: "plaza", Seq: 1, CapturedAt: time.Now(), Width: 320, Height: 240, JPEG: encodeTestJPEG(t, 320, 240, false), Token: pipeline.NewToken()}
	if err := sub.PublishMsg(pipeline.FrameMsg(pipeline.DefaultSubjects.Infer("flaky"), f)); err != nil {
		t.Fatal(err)
	}
	select {
	case msg := <-outs:
		o, err := pipeline.Unmarshal[pipeline.Output](msg.Data)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(o.Error, "out of device memory") || o.InferMS < 25 {
			t.Errorf("failed run answered error %q after %.1f ms; want the model's error and its ≥ 30 ms", o.Error, o.InferMS)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer to the frame")
	}
	stop()
}

// runTestWorker runs w until stop, which checks what its Run returned.
func runTestWorker(t *testing.T, w *ModelWorker) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	<-w.Ready()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
