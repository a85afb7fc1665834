package assemble

import (
	"fmt"
	"testing"

	"github.com/mlink-project/mlink/pipeline"
)

// framePredictor answers from the frame's camera and seq alone.
type framePredictor struct{}

func (framePredictor) Predict(string, map[string]*pipeline.Output) (pipeline.Output, error) {
	return pipeline.Output{}, fmt.Errorf("asked without the frame")
}

func (framePredictor) PredictFrame(target, camera string, seq uint64, _ map[string]*pipeline.Output) (pipeline.Output, error) {
	return pipeline.Output{Type: pipeline.TypeCount, Value: []float64{float64(seq)}, Label: camera}, nil
}

// A frame predictor is asked with the frame, and needs no executed model.
func TestFramePredictorPredictsFromTheFrame(t *testing.T) {
	plan := &pipeline.Plan{Camera: "door", Seq: 7, Predicted: []string{"people"}}
	out := Assemble(framePredictor{}, plan, nil, NewLast())["people"]
	if out == nil || out.Error != "" || out.Source != pipeline.SourcePredicted || out.Value[0] != 7 || out.Label != "door" || out.Seq != 7 {
		t.Fatalf("predicted %+v, want frame door/7's prediction", out)
	}
}
