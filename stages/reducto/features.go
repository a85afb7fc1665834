package reducto

import (
	"errors"
	"fmt"
	"image"
	"strings"
	"sync/atomic"

	"gocv.io/x/gocv"
)

// Feature names, as Reducto and the configs spell them.
const (
	FeaturePixel  = "pixel"
	FeatureArea   = "area"
	FeatureEdge   = "edge"
	FeatureCorner = "corner"
)

// FeatureNames lists the four features in the paper's order.
var FeatureNames = []string{FeaturePixel, FeatureArea, FeatureEdge, FeatureCorner}

// Feature is one of Reducto's cheap difference features. A frame is
// prepared once (resized, and reduced to the representation the feature
// compares: the frame, its blurred gray image, its edges or its corner
// response); comparing two prepared frames is then cheap, which matters
// because every frame is compared with the last sent one and, when a
// segment is profiled, with many earlier frames.
//
// Implementations are stateless and safe for concurrent use. Every
// difference is a share of the frame in [0, 1].
type Feature interface {
	Name() string
	// Prepare computes img's representation. img is an 8-bit BGR (or gray)
	// image owned by the caller; the result owns its own Mat.
	Prepare(img gocv.Mat) (*Prepared, error)
	// Diff compares two representations made by this feature from frames
	// of the same size. It fails, without panicking, on an empty or closed
	// representation, one of another feature, or a size mismatch.
	Diff(a, b *Prepared) (float64, error)
}

// Prepared is one frame's representation for one feature. It is reference
// counted, so the filter can hold the same frame as "last sent", "previous"
// and "in the profiled segment" without copies: Close drops one reference
// and the Mat is freed with the last.
type Prepared struct {
	feature string
	mat     gocv.Mat
	refs    atomic.Int32
}

func newPrepared(feature string, m gocv.Mat) *Prepared {
	p := &Prepared{feature: feature, mat: m}
	p.refs.Store(1)
	return p
}

// retain adds a reference, for a second holder of the same frame.
func (p *Prepared) retain() *Prepared {
	p.refs.Add(1)
	return p
}

// Close drops a reference; the last one frees the Mat. Closing more often
// than the frame was retained is a no-op, never a double free.
func (p *Prepared) Close() error {
	if p == nil {
		return nil
	}
	if n := p.refs.Add(-1); n == 0 {
		return p.mat.Close()
	} else if n < 0 {
		p.refs.Store(0)
	}
	return nil
}

// Feature is the name of the feature that made the representation.
func (p *Prepared) Feature() string { return p.feature }

// Size is the representation's width and height (the frame at the
// feature's working width).
func (p *Prepared) Size() (width, height int) { return p.mat.Cols(), p.mat.Rows() }

// FeatureOptions are the features' parameters. Zero values take the
// defaults (Reducto's published values, and our working width); see the
// package documentation.
type FeatureOptions struct {
	// Width is the working width: wider frames are downscaled (aspect kept,
	// anti-aliased: pyramid halvings, then bilinear) before any feature
	// runs; area, edge and corner convert to gray first. Narrower frames are
	// used as they are. Default 320.
	Width int
	// DiffThreshold is the per-pixel change (0–255) that counts as changed
	// for pixel, area and edge. Default 21.
	DiffThreshold float64
	// BlurSize is the Gaussian kernel (odd, pixels) of area and edge. Default 11.
	BlurSize int
	// CannyLow and CannyHigh are edge's hysteresis thresholds. Defaults 101, 255.
	CannyLow, CannyHigh float64
	// HarrisBlock, HarrisKSize and HarrisK are corner's cornerHarris
	// parameters. Defaults 5, 3, 0.05.
	HarrisBlock, HarrisKSize int
	HarrisK                  float64
}

// Defaults of FeatureOptions.
const (
	DefaultWidth         = 320
	DefaultDiffThreshold = 21
	DefaultBlurSize      = 11
	DefaultCannyLow      = 101
	DefaultCannyHigh     = 255
	DefaultHarrisBlock   = 5
	DefaultHarrisKSize   = 3
	DefaultHarrisK       = 0.05
)

// maxWidth bounds Width: beyond it a typo would cost seconds per frame.
const maxWidth = 8192

// EnsureDefaults fills zero fields with their defaults.
func (o *FeatureOptions) EnsureDefaults() {
	setDefault(&o.Width, DefaultWidth)
	setDefault(&o.DiffThreshold, DefaultDiffThreshold)
	setDefault(&o.BlurSize, DefaultBlurSize)
	setDefault(&o.CannyLow, DefaultCannyLow)
	setDefault(&o.CannyHigh, DefaultCannyHigh)
	setDefault(&o.HarrisBlock, DefaultHarrisBlock)
	setDefault(&o.HarrisKSize, DefaultHarrisKSize)
	setDefault(&o.HarrisK, DefaultHarrisK)
}

// Validate reports every invalid field at once.
func (o *FeatureOptions) Validate() error {
	var errs []string
	if o.Width < 8 || o.Width > maxWidth {
		errs = append(errs, fmt.Sprintf("width %d is outside 8..%d", o.Width, maxWidth))
	}
	if o.DiffThreshold < 0 || o.DiffThreshold >= 255 {
		errs = append(errs, fmt.Sprintf("diff threshold %g is outside 0..254", o.DiffThreshold))
	}
	if o.BlurSize < 1 || o.BlurSize%2 == 0 || o.BlurSize > 99 {
		errs = append(errs, fmt.Sprintf("blur size %d must be odd, 1..99", o.BlurSize))
	}
	if o.CannyLow < 0 || o.CannyHigh < o.CannyLow {
		errs = append(errs, fmt.Sprintf("canny thresholds %g, %g must satisfy 0 <= low <= high", o.CannyLow, o.CannyHigh))
	}
	if o.HarrisBlock < 2 || o.HarrisBlock > 31 {
		errs = append(errs, fmt.Sprintf("harris block %d is outside 2..31", o.HarrisBlock))
	}
	if o.HarrisKSize < 1 || o.HarrisKSize > 31 || o.HarrisKSize%2 == 0 {
		errs = append(errs, fmt.Sprintf("harris ksize %d must be odd, 1..31", o.HarrisKSize))
	}
	if o.HarrisK <= 0 || o.HarrisK >= 1 {
		errs = append(errs, fmt.Sprintf("harris k %g is outside (0, 1)", o.HarrisK))
	}
	if len(errs) > 0 {
		return fmt.Errorf("reducto features: %s", strings.Join(errs, "; "))
	}
	return nil
}

// NewFeature returns the named feature ("pixel", "area", "edge" or
// "corner") with opts (zero fields take their defaults).
func NewFeature(name string, opts FeatureOptions) (Feature, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	switch name {
	case FeaturePixel:
		return &pixelFeature{opts}, nil
	case FeatureArea:
		return &areaFeature{opts}, nil
	case FeatureEdge:
		return &edgeFeature{opts}, nil
	case FeatureCorner:
		return &cornerFeature{opts}, nil
	}
	return nil, fmt.Errorf("unknown reducto feature %q (want one of %s)", name, strings.Join(FeatureNames, ", "))
}

// DiffFrames prepares two frames and compares them: for one-off
// comparisons; a stream should prepare each frame once.
func DiffFrames(f Feature, prev, cur gocv.Mat) (float64, error) {
	a, err := f.Prepare(prev)
	if err != nil {
		return 0, err
	}
	defer a.Close()
	b, err := f.Prepare(cur)
	if err != nil {
		return 0, err
	}
	defer b.Close()
	return f.Diff(a, b)
}

// pixel: absdiff of the frames → gray → binary threshold → share of
// changed pixels.
type pixelFeature struct{ o FeatureOptions }

func (f *pixelFeature) Name() string { return FeaturePixel }

func (f *pixelFeature) Prepare(img gocv.Mat) (*Prepared, error) {
	m, err := scaled(img, f.o.Width)
	if err != nil {
		return nil, fmt.Errorf("pixel feature: %w", err)
	}
	return newPrepared(FeaturePixel, m), nil
}

func (f *pixelFeature) Diff(a, b *Prepared) (float64, error) {
	if err := comparable(FeaturePixel, a, b); err != nil {
		return 0, err
	}
	delta := gocv.NewMat()
	defer delta.Close()
	gocv.AbsDiff(a.mat, b.mat, &delta)
	if delta.Channels() == 3 {
		gocv.CvtColor(delta, &delta, gocv.ColorBGRToGray)
	}
	return changedShare(&delta, f.o.DiffThreshold), nil
}

// area: gray + Gaussian blur (prepared) → absdiff → threshold → dilate →
// largest external contour's area over the frame's.
type areaFeature struct{ o FeatureOptions }

func (f *areaFeature) Name() string { return FeatureArea }

func (f *areaFeature) Prepare(img gocv.Mat) (*Prepared, error) {
	m, err := blurredGray(img, f.o)
	if err != nil {
		return nil, fmt.Errorf("area feature: %w", err)
	}
	return newPrepared(FeatureArea, m), nil
}

func (f *areaFeature) Diff(a, b *Prepared) (float64, error) {
	if err := comparable(FeatureArea, a, b); err != nil {
		return 0, err
	}
	delta := gocv.NewMat()
	defer delta.Close()
	gocv.AbsDiff(a.mat, b.mat, &delta)
	gocv.Threshold(delta, &delta, float32(f.o.DiffThreshold), 255, gocv.ThresholdBinary)
	mask := gocv.NewMat()
	defer mask.Close()
	// An empty kernel is OpenCV's default 3×3 rectangle, as Reducto's
	// cv2.dilate(thresh, None).
	kernel := gocv.NewMat()
	defer kernel.Close()
	gocv.Dilate(delta, &mask, kernel)
	contours := gocv.FindContours(mask, gocv.RetrievalExternal, gocv.ChainApproxSimple)
	defer contours.Close()
	largest := 0.0
	for i := 0; i < contours.Size(); i++ {
		largest = max(largest, gocv.ContourArea(contours.At(i))) // At is a view: not closed
	}
	return largest / float64(mask.Rows()*mask.Cols()), nil
}

// edge: gray + blur + Canny (prepared) → absdiff → threshold → share changed.
type edgeFeature struct{ o FeatureOptions }

func (f *edgeFeature) Name() string { return FeatureEdge }

func (f *edgeFeature) Prepare(img gocv.Mat) (*Prepared, error) {
	blur, err := blurredGray(img, f.o)
	if err != nil {
		return nil, fmt.Errorf("edge feature: %w", err)
	}
	defer blur.Close()
	edges := gocv.NewMat()
	gocv.Canny(blur, &edges, float32(f.o.CannyLow), float32(f.o.CannyHigh))
	return newPrepared(FeatureEdge, edges), nil
}

func (f *edgeFeature) Diff(a, b *Prepared) (float64, error) {
	if err := comparable(FeatureEdge, a, b); err != nil {
		return 0, err
	}
	delta := gocv.NewMat()
	defer delta.Close()
	gocv.AbsDiff(a.mat, b.mat, &delta)
	return changedShare(&delta, f.o.DiffThreshold), nil
}

// corner: gray → Harris response → dilate (prepared) → absdiff → share of
// pixels whose response changed at all. Like Reducto's code, the float
// response is not thresholded: any change counts, so the feature is the
// most sensitive of the four (it sees sensor noise in textured areas).
type cornerFeature struct{ o FeatureOptions }

func (f *cornerFeature) Name() string { return FeatureCorner }

func (f *cornerFeature) Prepare(img gocv.Mat) (*Prepared, error) {
	m, err := grayScaled(img, f.o.Width)
	if err != nil {
		return nil, fmt.Errorf("corner feature: %w", err)
	}
	defer m.Close()
	resp := gocv.NewMat()
	defer resp.Close()
	if err := cornerHarris(m, &resp, f.o.HarrisBlock, f.o.HarrisKSize, f.o.HarrisK); err != nil {
		return nil, fmt.Errorf("corner feature: harris: %w", err)
	}
	dil := gocv.NewMat()
	kernel := gocv.NewMat() // default 3×3, as cv2.dilate(corner, None)
	defer kernel.Close()
	gocv.Dilate(resp, &dil, kernel)
	return newPrepared(FeatureCorner, dil), nil
}

func (f *cornerFeature) Diff(a, b *Prepared) (float64, error) {
	if err := comparable(FeatureCorner, a, b); err != nil {
		return 0, err
	}
	delta := gocv.NewMat()
	defer delta.Close()
	gocv.AbsDiff(a.mat, b.mat, &delta)
	return float64(gocv.CountNonZero(delta)) / float64(delta.Rows()*delta.Cols()), nil
}

// checkImage rejects what OpenCV would assert on (an assert aborts the
// process through cgo).
func checkImage(img gocv.Mat) error {
	if img.Ptr() == nil || img.Empty() {
		return errors.New("empty image")
	}
	if t := img.Type(); t != gocv.MatTypeCV8UC3 && t != gocv.MatTypeCV8UC1 {
		return fmt.Errorf("image type %v is not 8-bit BGR or gray", t)
	}
	return nil
}

// scaled checks img and returns a copy at no more than width columns.
func scaled(img gocv.Mat, width int) (gocv.Mat, error) {
	if err := checkImage(img); err != nil {
		return gocv.Mat{}, err
	}
	return downscale(img, width), nil
}

// grayScaled checks img and returns its gray image at no more than width
// columns: gray first, so the resize works on one channel.
func grayScaled(img gocv.Mat, width int) (gocv.Mat, error) {
	if err := checkImage(img); err != nil {
		return gocv.Mat{}, err
	}
	if img.Channels() == 1 {
		return downscale(img, width), nil
	}
	gray := gocv.NewMat()
	defer gray.Close()
	gocv.CvtColor(img, &gray, gocv.ColorBGRToGray)
	return downscale(gray, width), nil
}

// downscale returns a copy of img at no more than width columns (aspect
// kept): Gaussian pyramid halvings while the image is at least twice too
// wide, then bilinear to the exact width. That is anti-aliased like area
// interpolation, which is 3–10× slower at non-integer ratios (2.8 ms for
// 768×576 → 320×240, against 0.2–0.9 ms).
func downscale(img gocv.Mat, width int) gocv.Mat {
	out := gocv.NewMat()
	if img.Cols() <= width {
		img.CopyTo(&out)
		return out
	}
	h := max(1, (img.Rows()*width+img.Cols()/2)/img.Cols())
	src := img
	var tmp gocv.Mat
	for src.Cols() >= 2*width && src.Rows() >= 2 {
		next := gocv.NewMat()
		gocv.PyrDown(src, &next, image.Point{}, gocv.BorderDefault) // gocv swaps a given size's axes: let OpenCV choose
		if tmp.Ptr() != nil {
			tmp.Close()
		}
		tmp, src = next, next
	}
	if src.Cols() == width && src.Rows() == h {
		src.CopyTo(&out)
	} else {
		gocv.Resize(src, &out, image.Pt(width, h), 0, 0, gocv.InterpolationLinear)
	}
	if tmp.Ptr() != nil {
		tmp.Close()
	}
	return out
}

// blurredGray is area's and edge's common first step.
func blurredGray(img gocv.Mat, o FeatureOptions) (gocv.Mat, error) {
	m, err := grayScaled(img, o.Width)
	if err != nil {
		return gocv.Mat{}, err
	}
	// sigma 0: OpenCV derives it from the kernel size, as Reducto's
	// cv2.GaussianBlur(gray, (11, 11), 0).
	gocv.GaussianBlur(m, &m, image.Pt(o.BlurSize, o.BlurSize), 0, 0, gocv.BorderDefault)
	return m, nil
}

// changedShare thresholds a single-channel 8-bit delta in place and returns
// the share of pixels above thr.
func changedShare(delta *gocv.Mat, thr float64) float64 {
	gocv.Threshold(*delta, delta, float32(thr), 255, gocv.ThresholdBinary)
	return float64(gocv.CountNonZero(*delta)) / float64(delta.Rows()*delta.Cols())
}

// comparable checks that a and b are live representations of feature with
// the same size and type, so OpenCV never asserts (an assert aborts the
// process through cgo).
func comparable(feature string, a, b *Prepared) error {
	for _, p := range []*Prepared{a, b} {
		if p == nil || p.refs.Load() <= 0 || p.mat.Ptr() == nil || p.mat.Empty() {
			return fmt.Errorf("%s diff: empty or closed frame representation", feature)
		}
		if p.feature != feature {
			return fmt.Errorf("%s diff: representation was prepared by the %s feature", feature, p.feature)
		}
	}
	if a.mat.Cols() != b.mat.Cols() || a.mat.Rows() != b.mat.Rows() || a.mat.Type() != b.mat.Type() {
		return fmt.Errorf("%s diff: frames differ in size or type (%dx%d %v vs %dx%d %v)", feature,
			a.mat.Cols(), a.mat.Rows(), a.mat.Type(), b.mat.Cols(), b.mat.Rows(), b.mat.Type())
	}
	return nil
}
