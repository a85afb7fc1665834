package opencv

import (
	"fmt"
	"image"
	"slices"

	"gocv.io/x/gocv"

	"github.com/mlink-project/mlink/pipeline"
)

// MotionLevels are the classes of the MOG2 backend, in Value order.
var MotionLevels = []string{"none", "low", "medium", "high"}

// MOG2 measures motion with OpenCV's MOG2 background subtractor (backend
// opencv-mog2). It keeps one background model per camera.
type MOG2 struct {
	subs         map[string]*gocv.BackgroundSubtractorMOG2
	kernel       gocv.Mat
	typ          pipeline.OutputType // class (the level) or count (the blobs)
	processWidth int
	history      int
	varThreshold float64
	low          float64
	medium       float64
	high         float64
	minBlobArea  int
}

// NewMOG2 creates the backend with the spec's params (see the package
// documentation). Background models are created on each camera's first frame.
func NewMOG2(spec *pipeline.ModelSpec) (*MOG2, error) {
	typ := pipeline.TypeClass
	switch spec.Output {
	case "", pipeline.TypeClass:
	case pipeline.TypeCount:
		typ = pipeline.TypeCount
	default:
		return nil, fmt.Errorf("%s: output %q: it produces class outputs (the motion level) or counts (output: count, the foreground blobs)",
			pipeline.BackendMOG2, spec.Output)
	}
	if len(spec.Classes) > 0 && !slices.Equal(spec.Classes, MotionLevels) {
		return nil, fmt.Errorf("%s: classes %v: its classes are %v (leave classes unset)",
			pipeline.BackendMOG2, spec.Classes, MotionLevels)
	}
	p := newParams(pipeline.BackendMOG2, spec)
	m := &MOG2{
		typ:          typ,
		processWidth: p.int("process_width", 320, 0, maxWidth),
		history:      p.int("history", 500, 1, 100000),
		varThreshold: p.float("var_threshold", 16, 0.1, 10000),
		low:          p.float("low", 0.005, 0, 1),
		medium:       p.float("medium", 0.02, 0, 1),
		high:         p.float("high", 0.08, 0, 1),
		minBlobArea:  p.int("min_blob_area", 50, 0, maxWidth*maxWidth),
	}
	if !(m.low <= m.medium && m.medium <= m.high) {
		p.problem("params: want low <= medium <= high, got %g, %g, %g", m.low, m.medium, m.high)
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	m.subs = map[string]*gocv.BackgroundSubtractorMOG2{}
	m.kernel = gocv.GetStructuringElement(gocv.MorphEllipse, image.Pt(3, 3))
	return m, nil
}

// Infer updates camera's background model with img and reports the share of
// foreground pixels, the number of foreground blobs and the motion level.
func (m *MOG2) Infer(camera string, img gocv.Mat) (pipeline.Output, error) {
	if m.subs == nil {
		return pipeline.Output{}, fmt.Errorf("%s: backend is closed", pipeline.BackendMOG2)
	}
	if err := checkImage(img); err != nil {
		return pipeline.Output{}, fmt.Errorf("%s: %w", pipeline.BackendMOG2, err)
	}
	sub, known := m.subs[camera]
	if !known {
		// Shadows are detected so that they can be dropped below: a
		// walker's shadow is not motion of its own.
		s := gocv.NewBackgroundSubtractorMOG2WithParams(m.history, m.varThreshold, true)
		sub = &s
		m.subs[camera] = sub
	}

	// A reduced frame is enough for a motion measure and much cheaper.
	src := img
	small := gocv.NewMat()
	defer small.Close()
	if resizeToWidth(img, &small, m.processWidth) {
		src = small
	}
	mask := gocv.NewMat()
	defer mask.Close()
	sub.Apply(src, &mask)
	if !known {
		// The first frame only initialises the background: there is no
		// motion without an earlier frame (MOG2 marks a few stray pixels).
		mask.SetTo(gocv.NewScalar(0, 0, 0, 0))
	}
	// MOG2 marks foreground 255 and shadows 127: keep foreground only.
	gocv.Threshold(mask, &mask, 200, 255, gocv.ThresholdBinary)
	// Opening removes isolated noise pixels (sensor noise, compression
	// artefacts) that would otherwise count as motion and as blobs.
	gocv.MorphologyEx(mask, &mask, gocv.MorphOpen, m.kernel)

	total := mask.Rows() * mask.Cols()
	share := 0.0
	if total > 0 {
		share = finite(float64(gocv.CountNonZero(mask)) / float64(total))
	}
	blobs, err := m.countBlobs(mask)
	if err != nil {
		return pipeline.Output{}, err
	}

	extra := map[string]float64{"foreground": share, "blobs": float64(blobs)}
	if m.typ == pipeline.TypeCount {
		return pipeline.Output{Kind: pipeline.TypeCount.Kind(), Type: pipeline.TypeCount,
			Value: []float64{float64(blobs)}, Extra: extra}, nil
	}
	level := m.level(share)
	value := make([]float64, len(MotionLevels))
	value[level] = 1
	return pipeline.Output{
		Kind:  pipeline.TypeClass.Kind(),
		Type:  pipeline.TypeClass,
		Value: value,
		Label: MotionLevels[level],
		Extra: extra,
	}, nil
}

// countBlobs counts the connected foreground regions larger than minBlobArea.
func (m *MOG2) countBlobs(mask gocv.Mat) (int, error) {
	labels := gocv.NewMat()
	defer labels.Close()
	stats := gocv.NewMat()
	defer stats.Close()
	centroids := gocv.NewMat()
	defer centroids.Close()
	n := gocv.ConnectedComponentsWithStats(mask, &labels, &stats, &centroids)
	if n > 0 && (stats.Rows() != n || stats.Type() != gocv.MatTypeCV32S) {
		return 0, fmt.Errorf("%s: unexpected component stats %dx%d %v", pipeline.BackendMOG2, stats.Rows(), stats.Cols(), stats.Type())
	}
	blobs := 0
	for i := 1; i < n; i++ { // label 0 is the background
		if int(stats.GetIntAt(i, int(gocv.CC_STAT_AREA))) > m.minBlobArea {
			blobs++
		}
	}
	return blobs, nil
}

// level maps a foreground share to an index of MotionLevels.
func (m *MOG2) level(share float64) int {
	switch {
	case share >= m.high && share > 0:
		return 3
	case share >= m.medium && share > 0:
		return 2
	case share >= m.low && share > 0:
		return 1
	}
	return 0
}

// Close frees every camera's background model; it is safe to call more
// than once.
func (m *MOG2) Close() error {
	for cam, sub := range m.subs {
		sub.Close()
		delete(m.subs, cam)
	}
	m.subs = nil
	m.kernel.Close()
	return nil
}
