package main

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// A tiny TensorFlow.js graph exercising what the NanoDet export uses: an
// NCHW input transposed to NHWC, explicit padding, a grouped convolution,
// a float16-quantised bias, LeakyRelu, SplitV, and a reshape whose shape
// comes from constant integer arithmetic (SparseToDense + AddV2).

type fixtureWeight struct {
	spec weightSpec
	f    []float32
	i    []int32
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// writeFixture writes model.json and its shard into dir and returns the
// filter values, to check their permutation.
func writeFixture(t testing.TB, dir string, nodes []map[string]any, weights []fixtureWeight) string {
	t.Helper()
	var bin bytes.Buffer
	var specs []weightSpec
	for _, w := range weights {
		specs = append(specs, w.spec)
		switch {
		case w.spec.Quantization != nil:
			for _, v := range w.f {
				binary.Write(&bin, binary.LittleEndian, floatToHalf(v))
			}
		case w.spec.Dtype == "int32":
			binary.Write(&bin, binary.LittleEndian, w.i)
		default:
			binary.Write(&bin, binary.LittleEndian, w.f)
		}
	}
	model := map[string]any{
		"format": "graph-model", "generatedBy": "test", "convertedBy": "test",
		"signature": map[string]any{
			"inputs": map[string]any{"x:0": map[string]any{"name": "x:0", "dtype": "DT_FLOAT",
				"tensorShape": map[string]any{"dim": []any{map[string]string{"size": "1"}, map[string]string{"size": "3"}, map[string]string{"size": "4"}, map[string]string{"size": "4"}}}}},
			"outputs": map[string]any{
				"Identity:0":   map[string]any{"name": "Identity:0"},
				"Identity_1:0": map[string]any{"name": "Identity_1:0"},
			},
		},
		"modelTopology":   map[string]any{"node": nodes},
		"weightsManifest": []any{map[string]any{"paths": []string{"group1-shard1of1.bin"}, "weights": specs}},
	}
	raw, err := json.Marshal(model)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "model.json")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "group1-shard1of1.bin"), bin.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// floatToHalf rounds a float32 to binary16 (normal range only: the test's
// values are small integers and halves).
func floatToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	if f == 0 {
		return sign
	}
	exp := int((b>>23)&0xff) - 127 + 15
	return sign | uint16(exp)<<10 | uint16((b>>13)&0x3ff)
}

func node(name, op string, inputs []string, attr map[string]any) map[string]any {
	n := map[string]any{"name": name, "op": op, "input": inputs}
	if attr != nil {
		n["attr"] = attr
	}
	return n
}

func fixture(t testing.TB, convOp string) (string, []float32) {
	filter := make([]float32, 3*3*1*6) // HWIO, 3 groups of 2 outputs
	for k := range filter {
		filter[k] = float32(k)
	}
	conv := map[string]any{"padding": map[string]string{"s": b64("VALID")}, "data_format": map[string]string{"s": b64("NHWC")},
		"strides": map[string]any{"list": map[string]any{"i": []string{"1", "1", "1", "1"}}}}
	nodes := []map[string]any{
		node("x", "Placeholder", nil, nil),
		node("perm", "Const", nil, nil),
		node("t", "Transpose", []string{"x", "perm"}, nil),
		node("pads", "Const", nil, nil),
		node("pad", "Pad", []string{"t", "pads"}, nil),
		node("filter", "Const", nil, nil),
		node("conv", convOp, []string{"pad", "filter"}, conv),
		node("bias", "Const", nil, nil),
		node("add", "AddV2", []string{"conv", "bias"}, nil),
		node("act", "LeakyRelu", []string{"add"}, map[string]any{"alpha": map[string]any{"f": 0.1}}),
		node("sizes", "Const", nil, nil),
		node("dim", "Const", nil, nil),
		node("split", "SplitV", []string{"act", "sizes", "dim"}, map[string]any{"num_split": map[string]string{"i": "2"}}),
		node("where", "Const", nil, nil),
		node("dense_shape", "Const", nil, nil),
		node("values", "Const", nil, nil),
		node("zero", "Const", nil, nil),
		node("zeros", "SparseToDense", []string{"where", "dense_shape", "values", "zero"}, nil),
		node("target", "Const", nil, nil),
		node("shape", "AddV2", []string{"target", "zeros"}, nil),
		node("reshape", "Reshape", []string{"split:1", "shape"}, nil),
		node("Identity", "Identity", []string{"split"}, nil),
		node("Identity_1", "Identity", []string{"reshape"}, nil),
	}
	half := &struct {
		Dtype string  `json:"dtype"`
		Scale float64 `json:"scale"`
		Min   float64 `json:"min"`
	}{Dtype: "float16"}
	weights := []fixtureWeight{
		{spec: weightSpec{Name: "perm", Shape: []int{4}, Dtype: "int32"}, i: []int32{0, 2, 3, 1}},
		{spec: weightSpec{Name: "pads", Shape: []int{4, 2}, Dtype: "int32"}, i: []int32{0, 0, 1, 1, 1, 1, 0, 0}},
		{spec: weightSpec{Name: "filter", Shape: []int{3, 3, 1, 6}, Dtype: "float32"}, f: filter},
		{spec: weightSpec{Name: "bias", Shape: []int{6}, Dtype: "float32", Quantization: half}, f: []float32{0.5, -1, 2, 0, 1.5, -0.25}},
		{spec: weightSpec{Name: "sizes", Shape: []int{2}, Dtype: "int32"}, i: []int32{2, -1}},
		{spec: weightSpec{Name: "dim", Shape: []int{}, Dtype: "int32"}, i: []int32{3}},
		{spec: weightSpec{Name: "where", Shape: []int{0, 1}, Dtype: "int32"}},
		{spec: weightSpec{Name: "dense_shape", Shape: []int{1}, Dtype: "int32"}, i: []int32{3}},
		{spec: weightSpec{Name: "values", Shape: []int{0}, Dtype: "int32"}},
		{spec: weightSpec{Name: "zero", Shape: []int{}, Dtype: "int32"}, i: []int32{0}},
		{spec: weightSpec{Name: "target", Shape: []int{3}, Dtype: "int32"}, i: []int32{1, -1, 4}},
	}
	if convOp == "DepthwiseConv2dNative" {
		// [h, w, in=3, multiplier=2]: the same 54 values, another layout.
		weights[2].spec.Shape = []int{3, 3, 3, 2}
	}
	return writeFixture(t, t.TempDir(), nodes, weights), filter
}

// The decoded ONNX, as far as the tests look.
type pbNode struct {
	op, name        string
	inputs, outputs []string
	ints            map[string][]int64
}

type pbTensor struct {
	dims []int64
	typ  int
	raw  []byte
}

type pbModel struct {
	opset   int64
	nodes   []pbNode
	inits   map[string]pbTensor
	outputs map[string][]int64
}

func fields(t *testing.T, b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, u uint64)) {
	t.Helper()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatalf("bad tag: %v", protowire.ParseError(n))
		}
		b = b[n:]
		var v []byte
		var u uint64
		switch typ {
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			u, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var x uint32
			x, n = protowire.ConsumeFixed32(b)
			u = uint64(x)
		default:
			t.Fatalf("unexpected wire type %d", typ)
		}
		if n < 0 {
			t.Fatalf("bad field %d: %v", num, protowire.ParseError(n))
		}
		b = b[n:]
		fn(num, typ, v, u)
	}
}

func decodeModel(t *testing.T, b []byte) pbModel {
	m := pbModel{inits: map[string]pbTensor{}, outputs: map[string][]int64{}}
	fields(t, b, func(num protowire.Number, _ protowire.Type, v []byte, u uint64) {
		switch num {
		case 8:
			fields(t, v, func(num protowire.Number, _ protowire.Type, _ []byte, u uint64) {
				if num == 2 {
					m.opset = int64(u)
				}
			})
		case 7:
			fields(t, v, func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) {
				switch num {
				case 1:
					n := pbNode{ints: map[string][]int64{}}
					fields(t, v, func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) {
						switch num {
						case 1:
							n.inputs = append(n.inputs, string(v))
						case 2:
							n.outputs = append(n.outputs, string(v))
						case 3:
							n.name = string(v)
						case 4:
							n.op = string(v)
						case 5:
							var name string
							var vals []int64
							fields(t, v, func(num protowire.Number, _ protowire.Type, v []byte, u uint64) {
								switch num {
								case 1:
									name = string(v)
								case 3, 8:
									vals = append(vals, int64(u))
								}
							})
							n.ints[name] = vals
						}
					})
					m.nodes = append(m.nodes, n)
				case 5:
					var name string
					var tt pbTensor
					fields(t, v, func(num protowire.Number, _ protowire.Type, v []byte, u uint64) {
						switch num {
						case 1:
							tt.dims = append(tt.dims, int64(u))
						case 2:
							tt.typ = int(u)
						case 8:
							name = string(v)
						case 9:
							tt.raw = v
						}
					})
					m.inits[name] = tt
				case 12:
					var name string
					var dims []int64
					fields(t, v, func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) {
						switch num {
						case 1:
							name = string(v)
						case 2: // TypeProto.tensor_type.shape.dim.dim_value
							fields(t, v, func(_ protowire.Number, _ protowire.Type, v []byte, _ uint64) {
								fields(t, v, func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) {
									if num == 2 {
										fields(t, v, func(_ protowire.Number, _ protowire.Type, v []byte, _ uint64) {
											fields(t, v, func(_ protowire.Number, _ protowire.Type, _ []byte, u uint64) { dims = append(dims, int64(u)) })
										})
									}
								})
							})
						}
					})
					m.outputs[name] = dims
				}
			})
		}
	})
	return m
}

func (t pbTensor) floats() []float32 {
	out := make([]float32, len(t.raw)/4)
	for k := range out {
		out[k] = math.Float32frombits(binary.LittleEndian.Uint32(t.raw[4*k:]))
	}
	return out
}

func (t pbTensor) int64s() []int64 {
	out := make([]int64, len(t.raw)/8)
	for k := range out {
		out[k] = int64(binary.LittleEndian.Uint64(t.raw[8*k:]))
	}
	return out
}

func convertFixture(t *testing.T, path string) pbModel {
	t.Helper()
	out := filepath.Join(t.TempDir(), "model.onnx")
	if _, err := convertFile(path, out); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return decodeModel(t, raw)
}

func (m pbModel) ops() []string {
	var ops []string
	for _, n := range m.nodes {
		ops = append(ops, n.op)
	}
	return ops
}

func (m pbModel) node(t *testing.T, op string) pbNode {
	t.Helper()
	for _, n := range m.nodes {
		if n.op == op {
			return n
		}
	}
	t.Fatalf("no %s node in %v", op, m.ops())
	return pbNode{}
}

func TestConvertGroupedConvolutionGraph(t *testing.T) {
	path, filter := fixture(t, "Conv2D")
	m := convertFixture(t, path)
	if m.opset != opset {
		t.Errorf("opset %d, want %d", m.opset, opset)
	}
	// The integer shape arithmetic is folded away; each NHWC convolution is
	// wrapped in transposes to NCHW and back.
	want := []string{"Transpose", "Pad", "Transpose", "Conv", "Transpose", "Add", "LeakyRelu", "Split", "Identity", "Reshape", "Identity"}
	if got := m.ops(); !slices.Equal(got, want) {
		t.Fatalf("ops %v, want %v", got, want)
	}
	conv := m.node(t, "Conv")
	if g := conv.ints["group"]; !slices.Equal(g, []int64{3}) {
		t.Errorf("group %v, want [3] (a 1-channel filter on a 3-channel input)", g)
	}
	w := m.inits[conv.inputs[1]]
	if !slices.Equal(w.dims, []int64{6, 1, 3, 3}) {
		t.Fatalf("weights dims %v, want OIHW [6 1 3 3]", w.dims)
	}
	got := w.floats()
	for o := range 6 {
		for y := range 3 {
			for x := range 3 {
				if a, b := got[(o*3+y)*3+x], filter[(y*3+x)*6+o]; a != b {
					t.Fatalf("weights[%d,0,%d,%d] = %v, want filter[%d,%d,0,%d] = %v", o, y, x, a, y, x, o, b)
				}
			}
		}
	}
	pad := m.node(t, "Pad")
	if p := m.inits[pad.inputs[1]].int64s(); !slices.Equal(p, []int64{0, 1, 1, 0, 0, 1, 1, 0}) {
		t.Errorf("pads %v, want ONNX's begins then ends [0 1 1 0 0 1 1 0]", p)
	}
	add := m.node(t, "Add")
	if b := m.inits[add.inputs[1]].floats(); !slices.Equal(b, []float32{0.5, -1, 2, 0, 1.5, -0.25}) {
		t.Errorf("float16 bias dequantised to %v", b)
	}
	split := m.node(t, "Split")
	if s := m.inits[split.inputs[1]].int64s(); !slices.Equal(s, []int64{2, 4}) {
		t.Errorf("split sizes %v, want the -1 resolved: [2 4]", s)
	}
	reshape := m.node(t, "Reshape")
	if reshape.inputs[0] != "split:1" {
		t.Errorf("reshape reads %q, want the split's second output", reshape.inputs[0])
	}
	if s := m.inits[reshape.inputs[1]].int64s(); !slices.Equal(s, []int64{1, 16, 4}) {
		t.Errorf("reshape target %v, want the folded [1 -1 4] resolved to [1 16 4]", s)
	}
	if got := m.outputs["Identity"]; !slices.Equal(got, []int64{1, 4, 4, 2}) {
		t.Errorf("output Identity shape %v, want [1 4 4 2]", got)
	}
	if got := m.outputs["Identity_1"]; !slices.Equal(got, []int64{1, 16, 4}) {
		t.Errorf("output Identity_1 shape %v, want [1 16 4]", got)
	}
}

func TestConvertDepthwiseConvolution(t *testing.T) {
	path, filter := fixture(t, "DepthwiseConv2dNative")
	m := convertFixture(t, path)
	conv := m.node(t, "Conv")
	if g := conv.ints["group"]; !slices.Equal(g, []int64{3}) {
		t.Errorf("group %v, want one per input channel", g)
	}
	w := m.inits[conv.inputs[1]]
	if !slices.Equal(w.dims, []int64{6, 1, 3, 3}) {
		t.Fatalf("weights dims %v, want [in·multiplier 1 3 3]", w.dims)
	}
	got := w.floats()
	// output channel c·2+m is input channel c's m-th filter.
	for c := range 3 {
		for mult := range 2 {
			for y := range 3 {
				for x := range 3 {
					if a, b := got[((c*2+mult)*3+y)*3+x], filter[((y*3+x)*3+c)*2+mult]; a != b {
						t.Fatalf("weights[%d,0,%d,%d] = %v, want %v", c*2+mult, y, x, a, b)
					}
				}
			}
		}
	}
}

func TestConvertRefusesWhatItCannotConvert(t *testing.T) {
	dir := t.TempDir()
	for name, nodes := range map[string][]map[string]any{
		"op Erf is not supported": {node("x", "Placeholder", nil, nil), node("Identity", "Erf", []string{"x"}, nil), node("Identity_1", "Identity", []string{"x"}, nil)},
		"not defined":             {node("x", "Placeholder", nil, nil), node("Identity", "Identity", []string{"nowhere"}, nil), node("Identity_1", "Identity", []string{"x"}, nil)},
		"has a cycle":             {node("x", "Placeholder", nil, nil), node("Identity", "Relu", []string{"Identity_1"}, nil), node("Identity_1", "Relu", []string{"Identity"}, nil)},
	} {
		path := writeFixture(t, dir, nodes, nil)
		_, err := convertFile(path, filepath.Join(dir, "out.onnx"))
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("want an error saying %q, got %v", name, err)
		}
		if _, statErr := os.Stat(filepath.Join(dir, "out.onnx")); statErr == nil {
			t.Errorf("%s: a failed conversion left an output file", name)
		}
	}
}

func TestHalfToFloat(t *testing.T) {
	for h, want := range map[uint16]float32{0x3c00: 1, 0xc000: -2, 0x3800: 0.5, 0x0001: 5.960464477539063e-08, 0x7bff: 65504, 0x8000: float32(math.Copysign(0, -1))} {
		if got := halfToFloat(h); got != want || math.Signbit(float64(got)) != math.Signbit(float64(want)) {
			t.Errorf("halfToFloat(%#04x) = %v, want %v", h, got, want)
		}
	}
}

// The real NanoDet export converts, its six outputs with the signature's
// shapes (convert checks each inferred shape against the signature).
func TestConvertNanoDet(t *testing.T) {
	in := filepath.Join("..", "..", ".deps", "models", "nanodet", "nanodet.json")
	if _, err := os.Stat(in); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s missing under CI: make deps fetches it", in)
		}
		t.Skip("NanoDet's TensorFlow.js model missing: run `make deps`")
	}
	m := convertFixture(t, in)
	if len(m.outputs) != 6 {
		t.Fatalf("%d outputs, want 6", len(m.outputs))
	}
	want := map[string][]int64{"Identity": {1, 2704, 80}, "Identity_1": {1, 676, 80}, "Identity_2": {1, 169, 80},
		"Identity_3": {1, 2704, 44}, "Identity_4": {1, 676, 44}, "Identity_5": {1, 169, 44}}
	for name, shape := range want {
		if got := m.outputs[name]; !slices.Equal(got, shape) {
			t.Errorf("output %s shape %v, want %v", name, got, shape)
		}
	}
	for _, op := range m.ops() {
		if op == "SparseToDense" || op == "AddV2" {
			t.Errorf("op %s survived: constant shape arithmetic must be folded", op)
		}
	}
}

// Constants may sit inline in the graph rather than in the weights
// manifest: listed values, one value filling the shape, or raw content.
func TestConvertReadsInlineConstants(t *testing.T) {
	dims := func(d ...int) map[string]any {
		var out []any
		for _, v := range d {
			out = append(out, map[string]string{"size": strconv.Itoa(v)})
		}
		return map[string]any{"dim": out}
	}
	var raw bytes.Buffer
	binary.Write(&raw, binary.LittleEndian, []int32{0, 2, 3, 1})
	nodes := []map[string]any{
		node("x", "Placeholder", nil, nil),
		node("perm", "Const", nil, map[string]any{"value": map[string]any{"tensor": map[string]any{
			"dtype": "DT_INT32", "tensorShape": dims(4), "tensorContent": base64.StdEncoding.EncodeToString(raw.Bytes())}}}),
		node("t", "Transpose", []string{"x", "perm"}, nil),
		node("bias", "Const", nil, map[string]any{"value": map[string]any{"tensor": map[string]any{
			"dtype": "DT_FLOAT", "tensorShape": dims(3), "floatVal": []float64{0.5}}}}),
		node("Identity", "AddV2", []string{"t", "bias"}, nil),
		node("shape", "Const", nil, map[string]any{"value": map[string]any{"tensor": map[string]any{
			"dtype": "DT_INT64", "tensorShape": dims(2), "int64Val": []string{"1", "-1"}}}}),
		node("Identity_1", "Reshape", []string{"x", "shape"}, nil),
	}
	m := convertFixture(t, writeFixture(t, t.TempDir(), nodes, nil))
	if tr := m.node(t, "Transpose"); !slices.Equal(tr.ints["perm"], []int64{0, 2, 3, 1}) {
		t.Errorf("perm %v from tensor_content", tr.ints["perm"])
	}
	if b := m.inits[m.node(t, "Add").inputs[1]].floats(); !slices.Equal(b, []float32{0.5, 0.5, 0.5}) {
		t.Errorf("bias %v, want one float_val filling its shape", b)
	}
	if got := m.outputs["Identity_1"]; !slices.Equal(got, []int64{1, 48}) {
		t.Errorf("reshape output %v, want [1 48] from int64_val [1 -1]", got)
	}
}
