package main

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The TensorFlow.js graph-model format (tfjs-converter): model.json holds a
// TensorFlow GraphDef as JSON ("modelTopology") and a manifest of the
// weights (the graph's Const nodes), stored in binary shards beside it.

type tfjsModel struct {
	Format          string `json:"format"`
	GeneratedBy     string `json:"generatedBy"`
	ConvertedBy     string `json:"convertedBy"`
	Signature       tfjsSignature
	ModelTopology   struct{ Node []tfNode } `json:"modelTopology"`
	WeightsManifest []struct {
		Paths   []string     `json:"paths"`
		Weights []weightSpec `json:"weights"`
	} `json:"weightsManifest"`
}

type tfjsSignature struct {
	Inputs  map[string]tfjsTensorInfo `json:"inputs"`
	Outputs map[string]tfjsTensorInfo `json:"outputs"`
}

// tfShape is a TensorShapeProto in proto3 JSON: sizes as decimal strings,
// an absent size meaning 0.
type tfShape struct {
	Dim []struct {
		Size string `json:"size"`
	} `json:"dim"`
}

// sizes parses the dimensions; each must be at least min.
func (s tfShape) sizes(min int) ([]int, error) {
	dims := make([]int, len(s.Dim))
	for i, d := range s.Dim {
		n := 0
		if d.Size != "" {
			v, err := strconv.Atoi(d.Size)
			if err != nil {
				return nil, fmt.Errorf("dimension %d is %q", i, d.Size)
			}
			n = v
		}
		if n < min {
			return nil, fmt.Errorf("dimension %d is %q, want at least %d", i, d.Size, min)
		}
		dims[i] = n
	}
	return dims, nil
}

type tfjsTensorInfo struct {
	Name        string  `json:"name"`
	Dtype       string  `json:"dtype"`
	TensorShape tfShape `json:"tensorShape"`
}

func (t tfjsTensorInfo) shape() ([]int, error) {
	dims, err := t.TensorShape.sizes(1)
	if err != nil {
		return nil, fmt.Errorf("tensor %s: %w (dynamic shapes are not supported)", t.Name, err)
	}
	return dims, nil
}

type tfNode struct {
	Name  string            `json:"name"`
	Op    string            `json:"op"`
	Input []string          `json:"input"`
	Attr  map[string]tfAttr `json:"attr"`
}

// tfAttr is an AttrValue in proto3 JSON: int64 as decimal strings, bytes as
// base64.
type tfAttr struct {
	S      string      `json:"s"`
	I      string      `json:"i"`
	F      *float64    `json:"f"`
	B      *bool       `json:"b"`
	Type   string      `json:"type"`
	Tensor *tfTensorPB `json:"tensor"`
	List   *struct {
		I []string  `json:"i"`
		S []string  `json:"s"`
		F []float64 `json:"f"`
	} `json:"list"`
}

// tfTensorPB is a TensorProto in proto3 JSON, as a Const node's value
// attribute holds it when the converter left it inline rather than in the
// weights manifest: values as float_val / int_val / int64_val (one value
// fills the shape) or little-endian tensor_content.
type tfTensorPB struct {
	Dtype         string    `json:"dtype"`
	TensorShape   tfShape   `json:"tensorShape"`
	FloatVal      []float64 `json:"floatVal"`
	IntVal        []int64   `json:"intVal"`
	Int64Val      []string  `json:"int64Val"`
	TensorContent string    `json:"tensorContent"`
}

// maxInlineElements bounds an inline constant's size.
const maxInlineElements = 1 << 22

// decode turns an inline constant into a tensor.
func (p *tfTensorPB) decode() (*tensor, error) {
	shape, err := p.TensorShape.sizes(0)
	if err != nil {
		return nil, err
	}
	t := &tensor{shape: shape}
	// Inline constants are small (shapes, axes, a bias); a shape filled from
	// one value is bounded so a hostile file cannot make us allocate gigabytes.
	count, err := checkedNumel(t.shape, maxInlineElements)
	if err != nil {
		return nil, err
	}
	raw, err := base64.StdEncoding.DecodeString(p.TensorContent)
	if err != nil {
		return nil, fmt.Errorf("tensor_content is not base64: %w", err)
	}
	switch p.Dtype {
	case "DT_FLOAT":
		t.f = make([]float32, count)
		switch {
		case len(raw) == 4*count:
			for k := range t.f {
				t.f[k] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*k:]))
			}
		case len(p.FloatVal) == count || (len(p.FloatVal) == 1 && count > 0):
			for k := range t.f {
				t.f[k] = float32(p.FloatVal[min(k, len(p.FloatVal)-1)])
			}
		case count > 0:
			return nil, fmt.Errorf("%d float values for %d elements", len(p.FloatVal), count)
		}
	case "DT_INT32", "DT_INT64":
		t.integer = true
		t.i = make([]int64, count)
		vals := p.IntVal
		for _, v := range p.Int64Val {
			x, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("int64 value %q: %w", v, err)
			}
			vals = append(vals, x)
		}
		size := 4
		if p.Dtype == "DT_INT64" {
			size = 8
		}
		switch {
		case len(raw) == size*count:
			for k := range t.i {
				if size == 4 {
					t.i[k] = int64(int32(binary.LittleEndian.Uint32(raw[4*k:])))
				} else {
					t.i[k] = int64(binary.LittleEndian.Uint64(raw[8*k:]))
				}
			}
		case len(vals) == count || (len(vals) == 1 && count > 0):
			for k := range t.i {
				t.i[k] = vals[min(k, len(vals)-1)]
			}
		case count > 0:
			return nil, fmt.Errorf("%d integer values for %d elements", len(vals), count)
		}
	default:
		return nil, fmt.Errorf("inline constant of dtype %s is not supported (DT_FLOAT, DT_INT32, DT_INT64)", p.Dtype)
	}
	return t, nil
}

type weightSpec struct {
	Name         string `json:"name"`
	Shape        []int  `json:"shape"`
	Dtype        string `json:"dtype"`
	Quantization *struct {
		Dtype string  `json:"dtype"`
		Scale float64 `json:"scale"`
		Min   float64 `json:"min"`
	} `json:"quantization"`
}

// attrString decodes a bytes attribute ("VkFMSUQ=" is "VALID").
func (n tfNode) attrString(name string) (string, error) {
	a, ok := n.Attr[name]
	if !ok {
		return "", nil
	}
	b, err := base64.StdEncoding.DecodeString(a.S)
	if err != nil {
		return "", fmt.Errorf("node %s: attribute %s is not base64: %w", n.Name, name, err)
	}
	return string(b), nil
}

func (n tfNode) attrInts(name string) ([]int64, error) {
	a, ok := n.Attr[name]
	if !ok || a.List == nil {
		return nil, nil
	}
	out := make([]int64, len(a.List.I))
	for i, s := range a.List.I {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("node %s: attribute %s[%d] = %q: %w", n.Name, name, i, s, err)
		}
		out[i] = v
	}
	return out, nil
}

func (n tfNode) attrFloat(name string, def float64) float64 {
	if a, ok := n.Attr[name]; ok && a.F != nil {
		return *a.F
	}
	return def
}

func (n tfNode) attrBool(name string) bool {
	a, ok := n.Attr[name]
	return ok && a.B != nil && *a.B
}

// tensor is a constant: float32 or int64 values in row-major order.
type tensor struct {
	shape   []int
	integer bool      // int32 and int64 alike, held as int64
	f       []float32 // float tensors
	i       []int64   // integer tensors
}

func (t *tensor) isFloat() bool { return !t.integer }

// checkedNumel is the element count of a declared shape, refused when a
// dimension is negative or the count exceeds limit (the bytes there are:
// every element takes at least one).
func checkedNumel(shape []int, limit int) (int, error) {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("shape %v has a negative dimension", shape)
		}
		if d > 0 && n > limit/d {
			return 0, fmt.Errorf("shape %v holds more elements than its %d bytes", shape, limit)
		}
		n *= d
	}
	return n, nil
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// readModel parses model.json and its weight shards (paths relative to it).
func readModel(path string) (*tfjsModel, map[string]*tensor, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	dir := filepath.Dir(path)
	m, weights, err := parseModel(raw, func(shard string) ([]byte, error) {
		return os.ReadFile(filepath.Join(dir, shard))
	})
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, weights, nil
}

// parseModel parses model.json and the weights of its manifest, reading
// each shard (a path relative to model.json, which may not leave its
// directory) with readShard.
func parseModel(raw []byte, readShard func(string) ([]byte, error)) (*tfjsModel, map[string]*tensor, error) {
	var m tfjsModel
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, nil, fmt.Errorf("not a TensorFlow.js model.json: %w", err)
	}
	if m.Format != "graph-model" {
		return nil, nil, fmt.Errorf("format %q, want graph-model (layers models are not supported)", m.Format)
	}
	weights := map[string]*tensor{}
	for _, group := range m.WeightsManifest {
		var buf []byte
		for _, p := range group.Paths {
			if !filepath.IsLocal(p) {
				return nil, nil, fmt.Errorf("weights shard %q is not a path inside the model's directory", p)
			}
			b, err := readShard(p)
			if err != nil {
				return nil, nil, fmt.Errorf("weights shard: %w", err)
			}
			buf = append(buf, b...)
		}
		off := 0
		for _, w := range group.Weights {
			t, n, err := decodeWeight(w, buf[off:])
			if err != nil {
				return nil, nil, fmt.Errorf("weight %s: %w", w.Name, err)
			}
			off += n
			weights[w.Name] = t
		}
		if off != len(buf) {
			return nil, nil, fmt.Errorf("weights use %d of %d bytes of %v: manifest and shards disagree", off, len(buf), group.Paths)
		}
	}
	return &m, weights, nil
}

// decodeWeight reads one weight, dequantising it to float32 when the
// manifest says it was quantised (uint8/uint16 affine, or float16).
func decodeWeight(w weightSpec, buf []byte) (*tensor, int, error) {
	count, err := checkedNumel(w.Shape, len(buf))
	if err != nil {
		return nil, 0, err
	}
	t := &tensor{shape: append([]int(nil), w.Shape...), integer: w.Dtype == "int32"}
	if q := w.Quantization; q != nil {
		var size int
		switch q.Dtype {
		case "uint8":
			size = 1
		case "uint16", "float16":
			size = 2
		default:
			return nil, 0, fmt.Errorf("quantisation %q is not supported", q.Dtype)
		}
		if len(buf) < count*size {
			return nil, 0, fmt.Errorf("needs %d bytes, the shard has %d left", count*size, len(buf))
		}
		t.f = make([]float32, count)
		for k := range count {
			switch q.Dtype {
			case "uint8":
				t.f[k] = float32(float64(buf[k])*q.Scale + q.Min)
			case "uint16":
				t.f[k] = float32(float64(binary.LittleEndian.Uint16(buf[2*k:]))*q.Scale + q.Min)
			case "float16":
				t.f[k] = halfToFloat(binary.LittleEndian.Uint16(buf[2*k:]))
			}
		}
		if t.integer {
			t.i = make([]int64, count)
			for k, v := range t.f {
				t.i[k] = int64(math.Round(float64(v)))
			}
			t.f = nil
		}
		return t, count * size, nil
	}
	if len(buf) < count*4 {
		return nil, 0, fmt.Errorf("needs %d bytes, the shard has %d left", count*4, len(buf))
	}
	switch w.Dtype {
	case "float32":
		t.f = make([]float32, count)
		for k := range count {
			t.f[k] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*k:]))
		}
	case "int32":
		t.i = make([]int64, count)
		for k := range count {
			t.i[k] = int64(int32(binary.LittleEndian.Uint32(buf[4*k:])))
		}
	default:
		return nil, 0, fmt.Errorf("dtype %q is not supported (float32, int32)", w.Dtype)
	}
	return t, count * 4, nil
}

// halfToFloat converts an IEEE 754 binary16 to float32.
func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0 && frac == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: renormalise
		e := uint32(127 - 15 + 1)
		for frac&0x400 == 0 {
			frac <<= 1
			e--
		}
		return math.Float32frombits(sign | e<<23 | (frac&0x3ff)<<13)
	case exp == 0x1f:
		return math.Float32frombits(sign | 0xff<<23 | frac<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | frac<<13)
}

// ref splits a GraphDef input reference "node:k" into node and output
// index; control inputs ("^node") report control.
func ref(s string) (node string, index int, control bool) {
	if strings.HasPrefix(s, "^") {
		return s[1:], 0, true
	}
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		if k, err := strconv.Atoi(s[i+1:]); err == nil {
			return s[:i], k, false
		}
	}
	return s, 0, false
}
