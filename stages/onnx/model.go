package onnx

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/rs/zerolog"
	ort "github.com/yalue/onnxruntime_go"
	"gocv.io/x/gocv"

	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/stages/vision"
)

var _ vision.Backend = (*Model)(nil)

// Model is one loaded ONNX model: its session, the tensors bound to it and
// its pre- and post-processing. It implements vision.Backend.
type Model struct {
	spec     pipeline.ModelSpec
	file     string
	log      zerolog.Logger
	provider string // the provider actually in use

	mu      sync.Mutex // guards everything below against Close during Infer
	closed  bool
	session *ort.DynamicAdvancedSession
	inName  string
	outInfo []ort.InputOutputInfo

	prep *prep
	// inW/inH is the fixed input size (0 for ppocr-det sized per frame).
	inW, inH int
	channels int
	// The tensors are allocated once per input size and kept referenced here
	// for the session's life: ONNX Runtime reads and writes their memory
	// directly, so the Go GC must never collect them while it may run.
	input   *ort.Tensor[float32]
	outputs []ort.Value
	// dynamic marks outputs whose shape the model leaves open: ONNX Runtime
	// allocates them on the first run at an input size and they are reused
	// after that.
	dynamic []bool
	mats    frameMats

	// decoder settings
	threshold, nms float32
	db             dbParams
	maxSide        int
	minLength      float32
	yxyx           bool
}

// New loads the ONNX model file for spec. The ONNX Runtime environment is
// initialised from $ONNXRUNTIME_LIB (or the `make deps` location) if Init
// has not been called.
func New(spec *pipeline.ModelSpec, file string, log zerolog.Logger) (*Model, error) {
	if spec == nil {
		return nil, errors.New("onnx: nil model spec")
	}
	m := &Model{spec: *spec, file: file, log: log.With().Str("model", spec.Name).Logger(), mats: newFrameMats()}
	if err := m.load(); err != nil {
		m.Close()
		return nil, fmt.Errorf("onnx model %s: %w", spec.Name, err)
	}
	return m, nil
}

func (m *Model) load() error {
	if err := Init(""); err != nil {
		return err
	}
	st, err := os.Stat(m.file)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("model file %s does not exist (run `make deps` to fetch the bundled models)", m.file)
		}
		return fmt.Errorf("model file: %w", err)
	}
	if st.IsDir() {
		return fmt.Errorf("model file %s is a directory", m.file)
	}
	threads := int(param(&m.spec, "threads", 1))
	if threads < 1 {
		return fmt.Errorf("params.threads must be at least 1, got %d", threads)
	}

	// Read the model's signature on the CPU: it only needs the graph.
	opts, err := sessionOptions(threads)
	if err != nil {
		return err
	}
	ins, outs, err := ort.GetInputOutputInfoWithOptions(m.file, opts)
	opts.Destroy()
	if err != nil {
		return fmt.Errorf("load %s (not a valid ONNX model?): %w", m.file, err)
	}
	if err := m.configure(ins, outs); err != nil {
		return err
	}
	outNames := make([]string, len(outs))
	for i, o := range outs {
		outNames[i] = o.Name
	}
	m.outInfo = outs
	m.outputs = make([]ort.Value, len(outs))
	m.dynamic = make([]bool, len(outs))
	return m.openSession(threads, outNames)
}

// openSession creates the session on the requested provider, falling back
// to the CPU when CUDA cannot be used (no GPU, or a CPU-only library).
func (m *Model) openSession(threads int, outNames []string) error {
	provider := strings.ToLower(m.spec.Provider)
	if provider == "" {
		provider = "cpu"
	}
	if provider != "cpu" && provider != "cuda" {
		return fmt.Errorf("provider %q is not cpu or cuda", m.spec.Provider)
	}
	if provider == "cuda" {
		s, err := m.newCUDASession(threads, outNames)
		if err == nil {
			m.session, m.provider = s, "cuda"
			return nil
		}
		m.log.Warn().Msgf("CUDA execution provider unavailable, falling back to CPU: %v (needs an ONNX Runtime build with CUDA, its provider libraries, CUDA and cuDNN)", err)
	}
	s, err := m.newSession(threads, outNames, false)
	if err != nil {
		return fmt.Errorf("create session for %s: %w", m.file, err)
	}
	m.session, m.provider = s, "cpu"
	return nil
}

// cudaMu serialises CUDA attempts, which mute ONNX Runtime's own logging.
var cudaMu sync.Mutex

// newCUDASession tries a session on the CUDA provider. ONNX Runtime logs its
// own multi-line error when the provider cannot load; it is muted so that the
// fallback shows as the single warning the caller logs, which carries the
// same error.
func (m *Model) newCUDASession(threads int, outNames []string) (*ort.DynamicAdvancedSession, error) {
	cudaMu.Lock()
	defer cudaMu.Unlock()
	if err := ort.SetEnvironmentLogLevel(ort.LoggingLevelFatal); err == nil {
		defer ort.SetEnvironmentLogLevel(ort.LoggingLevelError)
	}
	return m.newSession(threads, outNames, true)
}

func (m *Model) newSession(threads int, outNames []string, cuda bool) (*ort.DynamicAdvancedSession, error) {
	opts, err := sessionOptions(threads)
	if err != nil {
		return nil, err
	}
	defer opts.Destroy()
	if cuda {
		co, err := ort.NewCUDAProviderOptions()
		if err != nil {
			return nil, err
		}
		err = opts.AppendExecutionProviderCUDA(co)
		co.Destroy()
		if err != nil {
			return nil, err
		}
	}
	return ort.NewDynamicAdvancedSession(m.file, []string{m.inName}, outNames, opts)
}

func sessionOptions(threads int) (*ort.SessionOptions, error) {
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("session options: %w", err)
	}
	err = errors.Join(
		opts.SetIntraOpNumThreads(threads),
		opts.SetInterOpNumThreads(1),
		// Spinning threads burn a core waiting for work; on a small shared
		// machine that time belongs to the other models.
		opts.AddSessionConfigEntry("session.intra_op.allow_spinning", "0"),
	)
	if err != nil {
		opts.Destroy()
		return nil, fmt.Errorf("session options: %w", err)
	}
	return opts, nil
}

// configure checks the model's signature against the decoder and sets up
// pre- and post-processing.
func (m *Model) configure(ins, outs []ort.InputOutputInfo) error {
	if len(ins) != 1 {
		return fmt.Errorf("model has %d inputs; only single-image models are supported", len(ins))
	}
	in := ins[0]
	if in.OrtValueType != ort.ONNXTypeTensor || in.DataType != ort.TensorElementDataTypeFloat || len(in.Dimensions) != 4 {
		return fmt.Errorf("input %s: want a float32 image tensor of rank 4", in.String())
	}
	if len(outs) == 0 {
		return errors.New("model has no outputs")
	}
	for _, o := range outs {
		if o.OrtValueType != ort.ONNXTypeTensor || o.DataType != ort.TensorElementDataTypeFloat {
			return fmt.Errorf("output %s: only float32 tensors are supported", o.String())
		}
	}
	m.inName = in.Name
	dims := in.Dimensions
	in1, in3 := dims[1], dims[3]
	isCh := func(v int64) bool { return v == 1 || v == 3 || v == 4 }
	nhwc := m.spec.Input.Layout == "nhwc"
	switch {
	case isCh(in3) && !isCh(in1):
		nhwc = true
	case isCh(in1) && !isCh(in3):
		nhwc = false
	}
	// The bundled models' decoders fix their own layout; for the others a
	// config that says otherwise (often only the nchw default) is noted.
	generic := m.spec.Decoder != pipeline.DecoderBlazeFace && m.spec.Decoder != pipeline.DecoderPPOCRDet && m.spec.Decoder != pipeline.DecoderMLSD
	if generic && m.spec.Input.Layout != "" && (m.spec.Input.Layout == "nhwc") != nhwc {
		m.log.Info().Msgf("input.layout %s does not match the model's input shape %v; following the model", m.spec.Input.Layout, dims)
	}
	ch, h, w := dims[1], dims[2], dims[3]
	if nhwc {
		h, w, ch = dims[1], dims[2], dims[3]
	}
	if ch <= 0 {
		ch = 3
	}
	m.channels = int(ch)
	m.inW, m.inH = m.spec.Input.Width, m.spec.Input.Height
	if m.inW == 0 && w > 0 {
		m.inW = int(w)
	}
	if m.inH == 0 && h > 0 {
		m.inH = int(h)
	}
	if (w > 0 && m.inW != int(w)) || (h > 0 && m.inH != int(h)) {
		return fmt.Errorf("input.width/height %dx%d differ from the model's fixed input %dx%d", m.inW, m.inH, w, h)
	}

	in0 := m.spec.Input
	letterbox := in0.Resize == "letterbox"
	m.threshold = float32(m.spec.Threshold)
	m.nms = float32(m.spec.NMS)
	defaults := func(thr, nms float32) {
		if m.threshold == 0 {
			m.threshold = thr
		}
		if m.nms == 0 {
			m.nms = nms
		}
	}
	var err error
	switch m.spec.Decoder {
	case pipeline.DecoderBlazeFace:
		defaults(0.5, 0.3)
		if m.inW != m.inH || m.inW == 0 {
			return fmt.Errorf("blazeface: want a square fixed input, got %dx%d", m.inW, m.inH)
		}
		// MediaPipe's BlazeFace takes RGB scaled to [-1,1].
		m.prep, err = newPrep(nhwc, m.channels, true, letterbox, 1.0/127.5, []float64{1}, []float64{1})
		if err == nil {
			_, err = blazeLayers(fakeOutputs(outs))
		}
	case pipeline.DecoderPPOCRDet:
		defaults(0.6, 0)
		m.db = dbParams{
			binThreshold: float32(param(&m.spec, "bin_threshold", 0.3)),
			boxThreshold: m.threshold,
			unclip:       float32(param(&m.spec, "unclip", 1.5)),
			minSize:      int(param(&m.spec, "min_size", 3)),
		}
		m.maxSide = int(param(&m.spec, "max_side", 640))
		if m.maxSide < 32 {
			return fmt.Errorf("ppocr-det: params.max_side must be at least 32, got %d", m.maxSide)
		}
		if m.spec.Input.Width == 0 || m.spec.Input.Height == 0 {
			m.inW, m.inH = 0, 0 // sized per frame
		} else {
			m.inW, m.inH = round32(m.inW), round32(m.inH)
		}
		if len(outs) != 1 {
			return fmt.Errorf("ppocr-det: want 1 output (probability map), got %d", len(outs))
		}
		// PaddleOCR's inference feeds OpenCV's BGR image with ImageNet's
		// (RGB-ordered) mean and std: the network was trained that way.
		m.prep, err = newPrep(false, 3, false, false, 1.0/255, []float64{0.485, 0.456, 0.406}, []float64{0.229, 0.224, 0.225})
	case pipeline.DecoderMLSD:
		defaults(0.1, 0)
		m.minLength = float32(param(&m.spec, "min_length", 20))
		if m.inW == 0 || m.inH == 0 {
			return fmt.Errorf("mlsd: the model's input size is not fixed; set input.width/height")
		}
		// keijiro's port: RGB in 0..255 and a constant 1 as the 4th channel
		// (the graph normalises itself).
		m.prep, err = newPrep(nhwc, m.channels, true, letterbox, 1, nil, nil)
		if err == nil {
			_, _, err = mlsdOutputs(fakeOutputs(outs))
		}
	case pipeline.DecoderClassifier, pipeline.DecoderYOLO, pipeline.DecoderSSD, pipeline.DecoderCount, pipeline.DecoderNanoDet:
		switch m.spec.Decoder {
		case pipeline.DecoderYOLO:
			defaults(0.25, 0.45)
		case pipeline.DecoderNanoDet:
			defaults(0.35, 0.6)
			if len(m.spec.Classes) == 0 {
				m.spec.Classes = cocoClasses
			}
			if m.inW > 0 && m.inH > 0 {
				_, err = nanodetLevels(fakeOutputs(outs), m.inW, m.inH, len(m.spec.Classes))
			}
		case pipeline.DecoderSSD:
			defaults(0.5, 0.45)
			m.yxyx = param(&m.spec, "box_order_yxyx", 0) != 0
			if len(outs) != 2 {
				return fmt.Errorf("ssd: want 2 outputs (boxes, scores), got %d", len(outs))
			}
		case pipeline.DecoderClassifier:
			if len(m.spec.Classes) == 0 {
				return errors.New("classifier: classes must name the model's classes")
			}
			if n, ok := staticSize(outs[0].Dimensions); ok && n != int64(len(m.spec.Classes)) {
				return fmt.Errorf("classifier: output %s has %d values but %d classes are declared", outs[0].Name, n, len(m.spec.Classes))
			}
		}
		if err != nil {
			return err
		}
		if m.inW == 0 || m.inH == 0 {
			return fmt.Errorf("the model's input size %v is dynamic: set input.width and input.height", dims)
		}
		m.prep, err = newPrep(nhwc, m.channels, in0.Color != "bgr", letterbox, in0.Scale, in0.Mean, in0.Std)
	default:
		return fmt.Errorf("unknown decoder %q (want blazeface, ppocr-det, mlsd, classifier, yolo, ssd, count or nanodet)", m.spec.Decoder)
	}
	if err != nil {
		return err
	}
	if m.prep.nhwc != nhwc || m.prep.channels != m.channels {
		return fmt.Errorf("%s: model input %v is not the layout the decoder expects", m.spec.Decoder, dims)
	}
	return nil
}

// fakeOutputs gives the declared output shapes as empty tensors of the
// right size, so the decoders' shape checks run at load time.
func fakeOutputs(outs []ort.InputOutputInfo) []tensor {
	ts := make([]tensor, len(outs))
	for i, o := range outs {
		shape := batchOne(o.Dimensions)
		n, _ := staticSize(shape)
		ts[i] = tensor{name: o.Name, shape: shape, data: make([]float32, max(n, 0))}
	}
	return ts
}

// batchOne replaces a dynamic batch dimension by 1.
func batchOne(s ort.Shape) ort.Shape {
	s = s.Clone()
	if len(s) > 0 && s[0] < 0 {
		s[0] = 1
	}
	return s
}

// staticSize is the element count of a shape, if every dimension is known.
func staticSize(s ort.Shape) (int64, bool) {
	n := int64(1)
	for i, d := range s {
		if d < 0 && i == 0 {
			continue // batch
		}
		if d < 0 {
			return -1, false
		}
		n *= d
	}
	return n, true
}

func round32(v int) int { return max((v+16)/32*32, 32) }

// param reads a numeric knob of spec.Params.
func param(spec *pipeline.ModelSpec, name string, def float64) float64 {
	if v, ok := spec.Params[name]; ok {
		return v
	}
	return def
}

// Provider is the execution provider the model runs on ("cpu" or "cuda").
func (m *Model) Provider() string { return m.provider }

// Infer runs the model on a BGR frame.
func (m *Model) Infer(camera string, img gocv.Mat) (pipeline.Output, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return pipeline.Output{}, fmt.Errorf("onnx model %s: closed", m.spec.Name)
	}
	out, err := m.infer(img)
	if err != nil {
		return pipeline.Output{}, fmt.Errorf("onnx model %s: %w", m.spec.Name, err)
	}
	return out, nil
}

func (m *Model) infer(img gocv.Mat) (pipeline.Output, error) {
	if img.Empty() {
		return pipeline.Output{}, errors.New("empty image")
	}
	inW, inH := m.inW, m.inH
	if inW == 0 {
		inW, inH = ppocrSize(img.Cols(), img.Rows(), m.maxSide)
	}
	if err := m.ensureTensors(inW, inH); err != nil {
		return pipeline.Output{}, err
	}
	g := newGeometry(img.Cols(), img.Rows(), inW, inH, m.prep.letterbox)
	px, err := m.mats.render(img, g)
	if err != nil {
		return pipeline.Output{}, err
	}
	m.prep.fill(m.input.GetData(), px, inW, inH)
	if err := m.run(); err != nil {
		return pipeline.Output{}, err
	}
	outs := make([]tensor, len(m.outputs))
	for i, v := range m.outputs {
		t, ok := v.(*ort.Tensor[float32])
		if !ok {
			return pipeline.Output{}, fmt.Errorf("output %s is not a float32 tensor", m.outInfo[i].Name)
		}
		outs[i] = tensor{name: m.outInfo[i].Name, shape: t.GetShape(), data: t.GetData()}
	}
	return m.decode(outs, g)
}

// ensureTensors (re)allocates the input and output tensors for an input
// size. For fixed-size models that happens once.
func (m *Model) ensureTensors(w, h int) error {
	if m.input != nil {
		s := m.input.GetShape()
		if (m.prep.nhwc && s[1] == int64(h) && s[2] == int64(w)) || (!m.prep.nhwc && s[2] == int64(h) && s[3] == int64(w)) {
			return nil
		}
	}
	m.destroyTensors()
	shape := ort.NewShape(1, int64(m.channels), int64(h), int64(w))
	if m.prep.nhwc {
		shape = ort.NewShape(1, int64(h), int64(w), int64(m.channels))
	}
	in, err := ort.NewEmptyTensor[float32](shape)
	if err != nil {
		return fmt.Errorf("allocate input tensor %v: %w", shape, err)
	}
	m.input = in
	for i, o := range m.outInfo {
		s := batchOne(o.Dimensions)
		if _, ok := staticSize(s); !ok {
			m.dynamic[i] = true
			continue
		}
		t, err := ort.NewEmptyTensor[float32](s)
		if err != nil {
			return fmt.Errorf("allocate output tensor %s %v: %w", o.Name, s, err)
		}
		m.outputs[i] = t
	}
	return nil
}

// run executes the session. Outputs of open shape are allocated by ONNX
// Runtime on the first run and reused; should a model's output size depend
// on the content, the reused tensors no longer fit: run again with fresh
// ones.
func (m *Model) run() error {
	err := m.session.Run([]ort.Value{m.input}, m.outputs)
	if err == nil {
		return nil
	}
	retry := false
	for i, d := range m.dynamic {
		if d && m.outputs[i] != nil {
			m.outputs[i].Destroy()
			m.outputs[i] = nil
			retry = true
		}
	}
	if retry {
		err = m.session.Run([]ort.Value{m.input}, m.outputs)
	}
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	return nil
}

// decode applies the decoder and maps boxes to the frame.
func (m *Model) decode(outs []tensor, g geometry) (pipeline.Output, error) {
	typ := m.spec.Output
	if !typ.Valid() {
		typ = defaultType(m.spec.Decoder)
	}
	out := pipeline.Output{Type: typ, Kind: typ.Kind()}
	det := detParams{classes: m.spec.Classes, keep: m.spec.Keep, threshold: m.threshold, nms: m.nms}
	var boxes []pipeline.Box
	var err error
	switch m.spec.Decoder {
	case pipeline.DecoderBlazeFace:
		var layers []blazeLayer
		if layers, err = blazeLayers(outs); err == nil {
			boxes, err = decodeBlazeFace(layers, g.inW, m.threshold, m.nms)
		}
	case pipeline.DecoderPPOCRDet:
		s := outs[0].shape
		if len(s) != 4 || s[0] != 1 || s[1] != 1 {
			return out, fmt.Errorf("ppocr-det: output shape %v, want [1,1,H,W]", s)
		}
		boxes, err = decodeDB(outs[0].data, int(s[3]), int(s[2]), m.db)
	case pipeline.DecoderMLSD:
		var sc, of tensor
		if sc, of, err = mlsdOutputs(outs); err == nil {
			s := squeeze(sc.shape)
			boxes, err = decodeMLSD(sc.data, of.data, int(s[1]), int(s[0]), g.inW, m.threshold, m.minLength)
		}
	case pipeline.DecoderYOLO:
		boxes, err = decodeYOLO(outs[0], g.inW, g.inH, det)
	case pipeline.DecoderNanoDet:
		var levels []nanodetLevel
		if levels, err = nanodetLevels(outs, g.inW, g.inH, len(det.classes)); err == nil {
			boxes, err = decodeNanoDet(levels, g.inW, g.inH, det)
		}
	case pipeline.DecoderSSD:
		bt, st := outs[0], outs[1]
		if squeezedLast(st) == 4 && squeezedLast(bt) != 4 {
			bt, st = st, bt
		}
		boxes, err = decodeSSD(bt, st, m.yxyx, det)
	case pipeline.DecoderClassifier:
		out.Value, out.Label, err = decodeClassifier(outs[0].data, m.spec.Classes)
		return out, err
	case pipeline.DecoderCount:
		var v float64
		v, err = decodeCount(outs[0].data)
		out.Value = []float64{v}
		return out, err
	}
	if err != nil {
		return out, err
	}
	out.Boxes = make([]pipeline.Box, 0, len(boxes))
	for _, b := range boxes {
		out.Boxes = append(out.Boxes, g.toFrame(b))
	}
	out.Value = []float64{float64(len(out.Boxes))}
	return out, nil
}

func squeezedLast(t tensor) int64 {
	if len(t.shape) == 0 {
		return 0
	}
	return t.shape[len(t.shape)-1]
}

// mlsdOutputs picks M-LSD's scores [1,H,W,1] and offsets [1,H,W,4].
func mlsdOutputs(outs []tensor) (scores, offsets tensor, err error) {
	if len(outs) != 2 {
		return scores, offsets, fmt.Errorf("mlsd: want 2 outputs (scores, offsets), got %d", len(outs))
	}
	scores, offsets = outs[0], outs[1]
	if squeezedLast(scores) == 4 {
		scores, offsets = offsets, scores
	}
	ss, so := squeeze(scores.shape), squeeze(offsets.shape)
	if len(ss) != 3 || ss[2] != 1 || len(so) != 3 || so[2] != 4 || ss[0] != so[0] || ss[1] != so[1] {
		return scores, offsets, fmt.Errorf("mlsd: outputs %v and %v, want [1,H,W,1] scores and [1,H,W,4] offsets", scores.shape, offsets.shape)
	}
	return scores, offsets, nil
}

func defaultType(decoder string) pipeline.OutputType {
	switch decoder {
	case pipeline.DecoderMLSD:
		return pipeline.TypeLines
	case pipeline.DecoderClassifier:
		return pipeline.TypeClass
	case pipeline.DecoderCount:
		return pipeline.TypeCount
	}
	return pipeline.TypeBoxes
}

func (m *Model) destroyTensors() {
	if m.input != nil {
		m.input.Destroy()
		m.input = nil
	}
	for i, v := range m.outputs {
		if v != nil {
			v.Destroy()
			m.outputs[i] = nil
		}
	}
}

// Close releases the session, its tensors and scratch images. It is safe to
// call more than once.
func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	var err error
	if m.session != nil {
		err = m.session.Destroy()
		m.session = nil
	}
	// Tensors go after the session that points at them.
	m.destroyTensors()
	m.mats.close()
	if err != nil {
		return fmt.Errorf("onnx model %s: close: %w", m.spec.Name, err)
	}
	return nil
}
