package main

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
)

// converter turns a TensorFlow graph (as TensorFlow.js stores it) into an
// ONNX graph, op by op. Values computed from constants alone (shape
// arithmetic the exporters leave behind) are folded; every other value
// keeps TensorFlow's layout, so NHWC convolutions and pools are wrapped in
// transposes to ONNX's NCHW (ONNX Runtime's layout optimiser removes the
// pairs that cancel). Shapes are inferred as it goes: a grouped
// convolution's group count and every output's shape depend on them, and
// the outputs are checked against the model's signature.
type converter struct {
	byName  map[string]tfNode
	weights map[string]*tensor
	consts  map[string]*tensor // folded and stored constants by value name
	shapes  map[string][]int   // shapes of the graph's computed values
	inits   map[string]bool    // initializer names already emitted
	g       onnxGraph
}

func valueName(node string, index int) string {
	if index == 0 {
		return node
	}
	return node + ":" + strconv.Itoa(index)
}

// convert builds the ONNX graph of m.
func convert(m *tfjsModel, weights map[string]*tensor) (*onnxGraph, error) {
	c := &converter{
		byName:  map[string]tfNode{},
		weights: weights,
		consts:  map[string]*tensor{},
		shapes:  map[string][]int{},
		inits:   map[string]bool{},
	}
	for _, n := range m.ModelTopology.Node {
		if _, dup := c.byName[n.Name]; dup {
			return nil, fmt.Errorf("node %s is defined twice", n.Name)
		}
		c.byName[n.Name] = n
	}
	inputs := sortedKeys(m.Signature.Inputs)
	outputs := sortedKeys(m.Signature.Outputs)
	if len(inputs) == 0 || len(outputs) == 0 {
		return nil, fmt.Errorf("the model's signature names no inputs or no outputs")
	}
	for _, key := range inputs {
		info := m.Signature.Inputs[key]
		node, _, _ := ref(info.Name)
		shape, err := info.shape()
		if err != nil {
			return nil, err
		}
		if n, ok := c.byName[node]; !ok || n.Op != "Placeholder" {
			return nil, fmt.Errorf("signature input %s is not a Placeholder of the graph", info.Name)
		}
		c.shapes[node] = shape
		c.g.inputs = append(c.g.inputs, valueInfo{name: node, shape: shape})
	}
	var roots []string
	for _, key := range outputs {
		node, _, _ := ref(m.Signature.Outputs[key].Name)
		roots = append(roots, node)
	}
	order, err := c.topological(roots)
	if err != nil {
		return nil, err
	}
	for _, name := range order {
		if err := c.node(c.byName[name]); err != nil {
			return nil, fmt.Errorf("node %s (%s): %w", name, c.byName[name].Op, err)
		}
	}
	for _, key := range outputs {
		info := m.Signature.Outputs[key]
		node, k, _ := ref(info.Name)
		name := valueName(node, k)
		shape, ok := c.shapes[name]
		if !ok {
			return nil, fmt.Errorf("output %s is a constant: nothing to compute", info.Name)
		}
		if want, err := info.shape(); err == nil && len(want) > 0 && !slices.Equal(want, shape) {
			return nil, fmt.Errorf("output %s: inferred shape %v, the signature says %v", info.Name, shape, want)
		}
		c.g.outputs = append(c.g.outputs, valueInfo{name: name, shape: shape})
	}
	return &c.g, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// topological orders the nodes the roots depend on, inputs first.
func (c *converter) topological(roots []string) ([]string, error) {
	const (
		visiting = 1
		done     = 2
	)
	state := map[string]int{}
	var order []string
	var visit func(name string) error
	visit = func(name string) error {
		switch state[name] {
		case done:
			return nil
		case visiting:
			return fmt.Errorf("the graph has a cycle through %s", name)
		}
		n, ok := c.byName[name]
		if !ok {
			return fmt.Errorf("node %s is referenced but not defined", name)
		}
		state[name] = visiting
		for _, in := range n.Input {
			dep, _, _ := ref(in)
			if err := visit(dep); err != nil {
				return err
			}
		}
		state[name] = done
		order = append(order, name)
		return nil
	}
	for _, r := range roots {
		if err := visit(r); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// dataInputs are a node's inputs without control dependencies.
func dataInputs(n tfNode) []string {
	var out []string
	for _, in := range n.Input {
		if _, _, control := ref(in); !control {
			out = append(out, in)
		}
	}
	return out
}

func (c *converter) constOf(in string) (*tensor, bool) {
	node, k, _ := ref(in)
	t, ok := c.consts[valueName(node, k)]
	return t, ok
}

func (c *converter) shapeOf(in string) ([]int, error) {
	node, k, _ := ref(in)
	if s, ok := c.shapes[valueName(node, k)]; ok {
		return s, nil
	}
	if t, ok := c.consts[valueName(node, k)]; ok {
		return t.shape, nil
	}
	return nil, fmt.Errorf("input %s has no known shape", in)
}

// input names a node input as an ONNX value: computed values by name,
// constants as initializers.
func (c *converter) input(in string) string {
	node, k, _ := ref(in)
	name := valueName(node, k)
	if t, ok := c.consts[name]; ok {
		return c.initializer(name, t)
	}
	return name
}

func (c *converter) initializer(name string, t *tensor) string {
	if !c.inits[name] {
		c.inits[name] = true
		c.g.initializers = append(c.g.initializers, initializer{name: name, t: t})
	}
	return name
}

func (c *converter) emit(op, name string, inputs []string, outputs []string, attrs ...onnxAttr) {
	c.g.nodes = append(c.g.nodes, onnxNode{op: op, name: name, inputs: inputs, outputs: outputs, attrs: attrs})
}

// constInts reads a constant input as integers.
func (c *converter) constInts(in string) ([]int64, error) {
	t, ok := c.constOf(in)
	if !ok {
		return nil, fmt.Errorf("input %s must be a constant", in)
	}
	if !t.integer {
		return nil, fmt.Errorf("input %s must be an integer constant", in)
	}
	return t.i, nil
}

func (c *converter) node(n tfNode) error {
	ins := dataInputs(n)
	switch n.Op {
	case "Const":
		t, ok := c.weights[n.Name]
		if !ok {
			inline := n.Attr["value"].Tensor
			if inline == nil {
				return fmt.Errorf("constant has no entry in the weights manifest and no inline value")
			}
			var err error
			if t, err = inline.decode(); err != nil {
				return fmt.Errorf("inline value: %w", err)
			}
		}
		c.consts[n.Name] = t
		return nil
	case "Placeholder":
		if _, ok := c.shapes[n.Name]; !ok {
			return fmt.Errorf("placeholder is not an input of the model's signature")
		}
		return nil
	}
	allConst := len(ins) > 0
	for _, in := range ins {
		if _, ok := c.constOf(in); !ok {
			allConst = false
		}
	}
	if allConst {
		t, err := c.fold(n, ins)
		if err != nil {
			return err
		}
		c.consts[n.Name] = t
		return nil
	}
	return c.op(n, ins)
}

// fold evaluates a node whose inputs are all constant (the integer shape
// arithmetic of exported graphs).
func (c *converter) fold(n tfNode, ins []string) (*tensor, error) {
	args := make([]*tensor, len(ins))
	for k, in := range ins {
		args[k], _ = c.constOf(in)
	}
	switch n.Op {
	case "Identity", "Cast":
		if n.Op == "Cast" && !args[0].integer {
			return nil, fmt.Errorf("folding a cast of a float constant is not supported")
		}
		return args[0], nil
	case "SparseToDense":
		// (indices, output_shape, values, default_value)
		if len(args) != 4 || !args[0].integer || !args[1].integer {
			return nil, fmt.Errorf("want integer indices and output shape")
		}
		shape := make([]int, len(args[1].i))
		for k, d := range args[1].i {
			if d < 0 || d > maxInlineElements {
				return nil, fmt.Errorf("output shape %v", args[1].i)
			}
			shape[k] = int(d)
		}
		size, err := checkedNumel(shape, maxInlineElements)
		if err != nil {
			return nil, err
		}
		if numel(args[3].shape) != 1 || (args[2].integer != args[3].integer) {
			return nil, fmt.Errorf("want a scalar default of the values' type")
		}
		out := &tensor{shape: shape, integer: args[3].integer}
		if out.integer {
			out.i = make([]int64, size)
			for k := range out.i {
				out.i[k] = args[3].i[0]
			}
		} else {
			out.f = make([]float32, size)
			for k := range out.f {
				out.f[k] = args[3].f[0]
			}
		}
		rank := len(shape)
		rows := 0
		if rank > 0 {
			rows = len(args[0].i) / rank
		}
		if nv := numel(args[2].shape); nv != 1 && nv != rows {
			return nil, fmt.Errorf("%d values for %d indices", nv, rows)
		}
		for r := range rows {
			flat := 0
			for d := range rank {
				idx := args[0].i[r*rank+d]
				if idx < 0 || idx >= int64(shape[d]) {
					return nil, fmt.Errorf("index %d out of dimension %d", idx, shape[d])
				}
				flat = flat*shape[d] + int(idx)
			}
			src := r
			if numel(args[2].shape) == 1 {
				src = 0
			}
			if out.integer {
				out.i[flat] = args[2].i[src]
			} else {
				out.f[flat] = args[2].f[src]
			}
		}
		return out, nil
	case "Add", "AddV2":
		a, b := args[0], args[1]
		if !a.integer || !b.integer {
			return nil, fmt.Errorf("folding float arithmetic is not supported")
		}
		if numel(b.shape) == 1 && numel(a.shape) != 1 {
			a, b = b, a
		}
		if numel(a.shape) != 1 && !slices.Equal(a.shape, b.shape) {
			return nil, fmt.Errorf("folding needs equal shapes or a scalar: %v and %v", a.shape, b.shape)
		}
		out := &tensor{shape: b.shape, integer: true, i: make([]int64, len(b.i))}
		for k := range b.i {
			av := a.i[0]
			if numel(a.shape) != 1 {
				av = a.i[k]
			}
			out.i[k] = av + b.i[k]
		}
		return out, nil
	}
	return nil, fmt.Errorf("op %s on constant inputs cannot be folded", n.Op)
}

var toNCHW = []int64{0, 3, 1, 2}
var toNHWC = []int64{0, 2, 3, 1}

// isPermutation reports whether perm orders 0 … rank−1.
func isPermutation(perm []int64, rank int) bool {
	if len(perm) != rank {
		return false
	}
	seen := make([]bool, rank)
	for _, p := range perm {
		if p < 0 || int(p) >= rank || seen[p] {
			return false
		}
		seen[p] = true
	}
	return true
}

func permute(shape []int, perm []int64) []int {
	out := make([]int, len(perm))
	for k, p := range perm {
		out[k] = shape[p]
	}
	return out
}

// minInputs is how many data inputs each converted op needs.
var minInputs = map[string]int{
	"Identity": 1, "Sigmoid": 1, "Relu": 1, "Tanh": 1, "LeakyRelu": 1,
	"Add": 2, "AddV2": 2, "BiasAdd": 2, "Sub": 2, "Mul": 2, "RealDiv": 2,
	"Transpose": 2, "Pad": 2, "PadV2": 3, "Conv2D": 2, "DepthwiseConv2dNative": 2,
	"MaxPool": 1, "AvgPool": 1, "ConcatV2": 2, "ResizeBilinear": 2, "SplitV": 3, "Split": 2, "Reshape": 2,
}

// op emits the ONNX nodes of one computed TF node.
func (c *converter) op(n tfNode, ins []string) error {
	need, ok := minInputs[n.Op]
	if !ok {
		return fmt.Errorf("op %s is not supported by this converter", n.Op)
	}
	if len(ins) < need {
		return fmt.Errorf("%d inputs, want at least %d", len(ins), need)
	}
	x := ins[0]
	xs, err := c.shapeOf(x)
	if err != nil {
		return err
	}
	out := n.Name
	switch n.Op {
	case "Identity":
		c.emit("Identity", n.Name, []string{c.input(x)}, []string{out})
		c.shapes[out] = xs
	case "Sigmoid", "Relu", "Tanh":
		c.emit(n.Op, n.Name, []string{c.input(x)}, []string{out})
		c.shapes[out] = xs
	case "LeakyRelu":
		c.emit("LeakyRelu", n.Name, []string{c.input(x)}, []string{out}, floatAttr("alpha", float32(n.attrFloat("alpha", 0.2))))
		c.shapes[out] = xs
	case "Add", "AddV2", "BiasAdd", "Sub", "Mul", "RealDiv":
		if len(ins) != 2 {
			return fmt.Errorf("want 2 inputs, have %d", len(ins))
		}
		ys, err := c.shapeOf(ins[1])
		if err != nil {
			return err
		}
		shape, err := broadcast(xs, ys)
		if err != nil {
			return err
		}
		op := map[string]string{"Add": "Add", "AddV2": "Add", "BiasAdd": "Add", "Sub": "Sub", "Mul": "Mul", "RealDiv": "Div"}[n.Op]
		c.emit(op, n.Name, []string{c.input(x), c.input(ins[1])}, []string{out})
		c.shapes[out] = shape
	case "Transpose":
		perm, err := c.constInts(ins[1])
		if err != nil {
			return err
		}
		if !isPermutation(perm, len(xs)) {
			return fmt.Errorf("permutation %v for a rank-%d input", perm, len(xs))
		}
		c.emit("Transpose", n.Name, []string{c.input(x)}, []string{out}, intsAttr("perm", perm))
		c.shapes[out] = permute(xs, perm)
	case "Pad", "PadV2":
		p, err := c.constInts(ins[1])
		if err != nil {
			return err
		}
		if len(p) != 2*len(xs) {
			return fmt.Errorf("paddings %v for a rank-%d input", p, len(xs))
		}
		rank := len(xs)
		pads := make([]int64, 2*rank)
		shape := make([]int, rank)
		for d := range rank {
			if p[2*d] < 0 || p[2*d+1] < 0 {
				return fmt.Errorf("negative paddings %v", p)
			}
			pads[d], pads[rank+d] = p[2*d], p[2*d+1]
			shape[d] = xs[d] + int(p[2*d]+p[2*d+1])
		}
		inputs := []string{c.input(x), c.initializer(n.Name+"/pads", &tensor{shape: []int{2 * rank}, integer: true, i: pads})}
		if n.Op == "PadV2" {
			v, ok := c.constOf(ins[2])
			if !ok || v.integer || len(v.f) != 1 {
				return fmt.Errorf("constant_values must be a float scalar constant")
			}
			inputs = append(inputs, c.initializer(n.Name+"/value", &tensor{f: v.f}))
		}
		c.emit("Pad", n.Name, inputs, []string{out}, stringAttr("mode", "constant"))
		c.shapes[out] = shape
	case "Conv2D", "DepthwiseConv2dNative":
		return c.conv(n, ins, xs)
	case "MaxPool", "AvgPool":
		return c.pool(n, ins, xs)
	case "ConcatV2":
		axis, err := c.constInts(ins[len(ins)-1])
		if err != nil || len(axis) != 1 {
			return fmt.Errorf("the axis must be a scalar integer constant")
		}
		a := int(axis[0])
		if a < 0 {
			a += len(xs)
		}
		if a < 0 || a >= len(xs) {
			return fmt.Errorf("concat axis %d out of rank %d", axis[0], len(xs))
		}
		shape := slices.Clone(xs)
		shape[a] = 0
		var inputs []string
		for _, in := range ins[:len(ins)-1] {
			s, err := c.shapeOf(in)
			if err != nil {
				return err
			}
			if len(s) != len(xs) {
				return fmt.Errorf("concatenating ranks %d and %d", len(xs), len(s))
			}
			shape[a] += s[a]
			inputs = append(inputs, c.input(in))
		}
		c.emit("Concat", n.Name, inputs, []string{out}, intAttr("axis", int64(a)))
		c.shapes[out] = shape
	case "ResizeBilinear":
		size, err := c.constInts(ins[1])
		if err != nil || len(size) != 2 || len(xs) != 4 || size[0] <= 0 || size[1] <= 0 {
			return fmt.Errorf("want an NHWC input and a constant positive size [h, w]")
		}
		mode := "asymmetric"
		switch {
		case n.attrBool("align_corners"):
			mode = "align_corners"
		case n.attrBool("half_pixel_centers"):
			mode = "half_pixel"
		}
		nchw := permute(xs, toNCHW)
		sizes := []int64{int64(nchw[0]), int64(nchw[1]), size[0], size[1]}
		c.emit("Transpose", n.Name+"/nchw", []string{c.input(x)}, []string{out + "/nchw"}, intsAttr("perm", toNCHW))
		c.emit("Resize", n.Name, []string{out + "/nchw", "", "", c.initializer(n.Name+"/sizes", &tensor{shape: []int{4}, integer: true, i: sizes})},
			[]string{out + "/resized"}, stringAttr("mode", "linear"), stringAttr("coordinate_transformation_mode", mode))
		c.emit("Transpose", n.Name+"/nhwc", []string{out + "/resized"}, []string{out}, intsAttr("perm", toNHWC))
		c.shapes[out] = []int{xs[0], int(size[0]), int(size[1]), xs[3]}
	case "SplitV", "Split":
		return c.split(n, ins)
	case "Reshape":
		target, err := c.constInts(ins[1])
		if err != nil {
			return err
		}
		shape, err := reshape(xs, target)
		if err != nil {
			return err
		}
		resolved := make([]int64, len(shape))
		for k, d := range shape {
			resolved[k] = int64(d)
		}
		c.emit("Reshape", n.Name, []string{c.input(x), c.initializer(n.Name+"/shape", &tensor{shape: []int{len(shape)}, integer: true, i: resolved})}, []string{out})
		c.shapes[out] = shape
	default:
		return fmt.Errorf("op %s is not supported by this converter", n.Op)
	}
	return nil
}

func broadcast(a, b []int) ([]int, error) {
	rank := max(len(a), len(b))
	out := make([]int, rank)
	for k := range rank {
		da, db := 1, 1
		if i := len(a) - rank + k; i >= 0 {
			da = a[i]
		}
		if i := len(b) - rank + k; i >= 0 {
			db = b[i]
		}
		switch {
		case da == db || db == 1:
			out[k] = da
		case da == 1:
			out[k] = db
		default:
			return nil, fmt.Errorf("shapes %v and %v do not broadcast", a, b)
		}
	}
	return out, nil
}

func reshape(in []int, target []int64) ([]int, error) {
	out := make([]int, len(target))
	known, free := 1, -1
	for k, d := range target {
		switch {
		case d == -1 && free < 0:
			free = k
		case d > 0:
			out[k] = int(d)
			known *= int(d)
		default:
			return nil, fmt.Errorf("reshape target %v is not supported", target)
		}
	}
	total := numel(in)
	if free >= 0 {
		if known == 0 || total%known != 0 {
			return nil, fmt.Errorf("cannot reshape %v to %v", in, target)
		}
		out[free] = total / known
	} else if known != total {
		return nil, fmt.Errorf("cannot reshape %v (%d values) to %v", in, total, target)
	}
	return out, nil
}

// spatial reads TF's NHWC strides/dilations/ksize ([1, h, w, 1]) as [h, w].
func spatial(n tfNode, name string, def int64) ([]int64, error) {
	v, err := n.attrInts(name)
	if err != nil {
		return nil, err
	}
	if v == nil {
		return []int64{def, def}, nil
	}
	if len(v) != 4 || v[0] != 1 || v[3] != 1 || v[1] < 1 || v[2] < 1 {
		return nil, fmt.Errorf("attribute %s %v: want [1, h, w, 1], h and w at least 1", name, v)
	}
	return []int64{v[1], v[2]}, nil
}

// padding returns the ONNX attributes of TF's padding and the output size
// along one axis.
func padding(n tfNode, in, k, stride, dilation int) (int, error) {
	p, err := n.attrString("padding")
	if err != nil {
		return 0, err
	}
	switch p {
	case "VALID":
		if in < dilation*(k-1)+1 {
			return 0, fmt.Errorf("a %d-wide window does not fit a %d-wide input", dilation*(k-1)+1, in)
		}
		return (in-dilation*(k-1)-1)/stride + 1, nil
	case "SAME":
		return (in + stride - 1) / stride, nil
	}
	return 0, fmt.Errorf("padding %q is not supported (VALID, SAME)", p)
}

func (c *converter) padAttrs(n tfNode) ([]onnxAttr, error) {
	p, err := n.attrString("padding")
	if err != nil {
		return nil, err
	}
	if p == "SAME" {
		return []onnxAttr{stringAttr("auto_pad", "SAME_UPPER")}, nil
	}
	return []onnxAttr{intsAttr("pads", []int64{0, 0, 0, 0})}, nil
}

func (c *converter) checkNHWC(n tfNode, xs []int) error {
	f, err := n.attrString("data_format")
	if err != nil {
		return err
	}
	if f != "" && f != "NHWC" {
		return fmt.Errorf("data_format %q is not supported (NHWC)", f)
	}
	if len(xs) != 4 {
		return fmt.Errorf("input of rank %d, want NHWC", len(xs))
	}
	return nil
}

func (c *converter) conv(n tfNode, ins []string, xs []int) error {
	if err := c.checkNHWC(n, xs); err != nil {
		return err
	}
	filter, ok := c.constOf(ins[1])
	if !ok || filter.integer || len(filter.shape) != 4 {
		return fmt.Errorf("the filter must be a constant float [h, w, in, out]")
	}
	strides, err := spatial(n, "strides", 1)
	if err != nil {
		return err
	}
	dilations, err := spatial(n, "dilations", 1)
	if err != nil {
		return err
	}
	kh, kw, ci, co := filter.shape[0], filter.shape[1], filter.shape[2], filter.shape[3]
	if kh < 1 || kw < 1 || ci < 1 || co < 1 {
		return fmt.Errorf("filter shape %v has an empty dimension", filter.shape)
	}
	channels := xs[3]
	var weights *tensor
	var group int
	if n.Op == "DepthwiseConv2dNative" {
		// [h, w, in, multiplier] -> [in*multiplier, 1, h, w], one group per input channel.
		if ci != channels {
			return fmt.Errorf("depthwise filter for %d channels on a %d-channel input", ci, channels)
		}
		group = ci
		weights = &tensor{shape: []int{ci * co, 1, kh, kw}, f: make([]float32, len(filter.f))}
		for y := range kh {
			for x := range kw {
				for i := range ci {
					for m := range co {
						weights.f[((i*co+m)*kh+y)*kw+x] = filter.f[((y*kw+x)*ci+i)*co+m]
					}
				}
			}
		}
		co = ci * co
	} else {
		// HWIO -> OIHW; TF groups the convolution when the filter sees a
		// fraction of the input's channels, as ONNX's group does.
		if channels%ci != 0 {
			return fmt.Errorf("filter for %d channels on a %d-channel input", ci, channels)
		}
		group = channels / ci
		weights = &tensor{shape: []int{co, ci, kh, kw}, f: make([]float32, len(filter.f))}
		for y := range kh {
			for x := range kw {
				for i := range ci {
					for o := range co {
						weights.f[((o*ci+i)*kh+y)*kw+x] = filter.f[((y*kw+x)*ci+i)*co+o]
					}
				}
			}
		}
	}
	oh, err := padding(n, xs[1], kh, int(strides[0]), int(dilations[0]))
	if err != nil {
		return err
	}
	ow, err := padding(n, xs[2], kw, int(strides[1]), int(dilations[1]))
	if err != nil {
		return err
	}
	attrs, err := c.padAttrs(n)
	if err != nil {
		return err
	}
	attrs = append(attrs, intsAttr("kernel_shape", []int64{int64(kh), int64(kw)}), intsAttr("strides", strides),
		intsAttr("dilations", dilations), intAttr("group", int64(group)))
	out := n.Name
	c.emit("Transpose", n.Name+"/nchw", []string{c.input(ins[0])}, []string{out + "/nchw"}, intsAttr("perm", toNCHW))
	c.emit("Conv", n.Name, []string{out + "/nchw", c.initializer(n.Name+"/weights", weights)}, []string{out + "/conv"}, attrs...)
	c.emit("Transpose", n.Name+"/nhwc", []string{out + "/conv"}, []string{out}, intsAttr("perm", toNHWC))
	c.shapes[out] = []int{xs[0], oh, ow, co}
	return nil
}

func (c *converter) pool(n tfNode, ins []string, xs []int) error {
	if err := c.checkNHWC(n, xs); err != nil {
		return err
	}
	k, err := spatial(n, "ksize", 1)
	if err != nil {
		return err
	}
	strides, err := spatial(n, "strides", 1)
	if err != nil {
		return err
	}
	oh, err := padding(n, xs[1], int(k[0]), int(strides[0]), 1)
	if err != nil {
		return err
	}
	ow, err := padding(n, xs[2], int(k[1]), int(strides[1]), 1)
	if err != nil {
		return err
	}
	attrs, err := c.padAttrs(n)
	if err != nil {
		return err
	}
	attrs = append(attrs, intsAttr("kernel_shape", k), intsAttr("strides", strides))
	op := "MaxPool"
	if n.Op == "AvgPool" {
		op = "AveragePool"
	}
	out := n.Name
	c.emit("Transpose", n.Name+"/nchw", []string{c.input(ins[0])}, []string{out + "/nchw"}, intsAttr("perm", toNCHW))
	c.emit(op, n.Name, []string{out + "/nchw"}, []string{out + "/pool"}, attrs...)
	c.emit("Transpose", n.Name+"/nhwc", []string{out + "/pool"}, []string{out}, intsAttr("perm", toNHWC))
	c.shapes[out] = []int{xs[0], oh, ow, xs[3]}
	return nil
}

func (c *converter) split(n tfNode, ins []string) error {
	var x string
	var sizes []int64
	var axis int64
	if n.Op == "SplitV" { // (value, size_splits, split_dim)
		x = ins[0]
		s, err := c.constInts(ins[1])
		if err != nil {
			return err
		}
		a, err := c.constInts(ins[2])
		if err != nil || len(a) != 1 {
			return fmt.Errorf("split_dim must be a scalar integer constant")
		}
		sizes, axis = slices.Clone(s), a[0]
	} else { // Split: (split_dim, value), num_split
		x = ins[1]
		a, err := c.constInts(ins[0])
		if err != nil || len(a) != 1 {
			return fmt.Errorf("split_dim must be a scalar integer constant")
		}
		axis = a[0]
	}
	xs, err := c.shapeOf(x)
	if err != nil {
		return err
	}
	if axis < 0 {
		axis += int64(len(xs))
	}
	if axis < 0 || int(axis) >= len(xs) {
		return fmt.Errorf("split axis %d out of rank %d", axis, len(xs))
	}
	dim := int64(xs[axis])
	if sizes == nil {
		k, err := strconv.ParseInt(n.Attr["num_split"].I, 10, 64)
		if err != nil || k <= 0 || dim%k != 0 {
			return fmt.Errorf("num_split %q does not divide %d", n.Attr["num_split"].I, dim)
		}
		for range k {
			sizes = append(sizes, dim/k)
		}
	}
	free, sum := -1, int64(0)
	for k, s := range sizes {
		switch {
		case s == -1 && free < 0:
			free = k
		case s >= 0:
			sum += s
		default:
			return fmt.Errorf("split sizes %v: want sizes ≥ 0 and at most one -1", sizes)
		}
	}
	if free >= 0 && sum <= dim {
		sizes[free] = dim - sum
	} else if sum != dim || free >= 0 {
		return fmt.Errorf("split sizes %v do not add up to %d", sizes, dim)
	}
	var outs []string
	for k, s := range sizes {
		name := valueName(n.Name, k)
		outs = append(outs, name)
		shape := slices.Clone(xs)
		shape[axis] = int(s)
		c.shapes[name] = shape
	}
	c.emit("Split", n.Name, []string{c.input(x), c.initializer(n.Name+"/sizes", &tensor{shape: []int{len(sizes)}, integer: true, i: sizes})},
		outs, intAttr("axis", axis))
	return nil
}
