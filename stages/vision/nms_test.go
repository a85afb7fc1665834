package vision

import (
	"reflect"
	"testing"

	"github.com/mlink-project/mlink/pipeline"
)

func TestNMS(t *testing.T) {
	box := func(x1, y1, x2, y2, s float32, class string) pipeline.Box {
		return pipeline.Box{X1: x1, Y1: y1, X2: x2, Y2: y2, Score: s, Class: class}
	}
	a := box(0, 0, 0.2, 0.4, 0.9, "person")
	aWeak := box(0.01, 0.01, 0.21, 0.41, 0.5, "person")  // IoU with a ≈ 0.83
	aHalf := box(0.1, 0, 0.3, 0.4, 0.95, "person")       // IoU with a = 1/3
	b := box(0.5, 0.5, 0.7, 0.9, 0.3, "person")          // disjoint
	aFace := box(0.01, 0.01, 0.21, 0.41, 0.99, "face")   // other class
	inside := box(0.05, 0.05, 0.15, 0.15, 0.8, "person") // IoU with a = 0.125
	degenerate := box(0.3, 0.3, 0.3, 0.6, 0.1, "person") // zero width

	for _, tc := range []struct {
		name string
		in   []pipeline.Box
		iou  float64
		want []pipeline.Box
	}{
		{"empty", nil, 0.45, []pipeline.Box{}},
		{"duplicate dropped", []pipeline.Box{aWeak, a, b}, 0.45, []pipeline.Box{a, b}},
		{"by score not order", []pipeline.Box{a, aHalf}, 0.3, []pipeline.Box{aHalf}},
		{"below iou kept", []pipeline.Box{a, aHalf}, 0.45, []pipeline.Box{aHalf, a}},
		{"classes apart", []pipeline.Box{a, aFace}, 0.45, []pipeline.Box{aFace, a}},
		{"nested small box", []pipeline.Box{a, inside}, 0.1, []pipeline.Box{a}},
		{"degenerate", []pipeline.Box{degenerate, degenerate}, 0.45, []pipeline.Box{degenerate, degenerate}},
		{"iou 1 keeps all", []pipeline.Box{a, a}, 1, []pipeline.Box{a, a}},
	} {
		in := append([]pipeline.Box(nil), tc.in...)
		got := NMS(in, tc.iou)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
		if !reflect.DeepEqual(in, tc.in) {
			t.Errorf("%s: input modified", tc.name)
		}
	}
	if got := IoU(a, aHalf); got < 0.333 || got > 0.334 {
		t.Errorf("IoU %v, want 1/3", got)
	}
}
