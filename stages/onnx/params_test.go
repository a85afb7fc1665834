package onnx

import (
	"os"
	"regexp"
	"slices"
	"testing"

	"github.com/mlink-project/mlink/pipeline"
)

// Every params key the ONNX backend reads is one config validation
// accepts for the onnx backend and some decoder, and every key validation
// accepts is read: a key in one list only is a knob either silently
// ignored or refused.
func TestONNXReadsTheParamsValidationAccepts(t *testing.T) {
	src, err := os.ReadFile("model.go")
	if err != nil {
		t.Fatal(err)
	}
	var read []string
	for _, m := range regexp.MustCompile(`param\(&m\.spec, "([a-z_]+)"`).FindAllStringSubmatch(string(src), -1) {
		if !slices.Contains(read, m[1]) {
			read = append(read, m[1])
		}
	}
	var accepted []string
	for _, d := range []string{pipeline.DecoderBlazeFace, pipeline.DecoderPPOCRDet, pipeline.DecoderMLSD, pipeline.DecoderClassifier,
		pipeline.DecoderYOLO, pipeline.DecoderSSD, pipeline.DecoderCount} {
		for _, k := range pipeline.ParamKeys(pipeline.BackendONNX, d) {
			if !slices.Contains(accepted, k) {
				accepted = append(accepted, k)
			}
		}
	}
	slices.Sort(read)
	slices.Sort(accepted)
	if len(read) < 5 || !slices.Equal(read, accepted) {
		t.Errorf("model.go reads params %v; validation accepts %v", read, accepted)
	}
}
