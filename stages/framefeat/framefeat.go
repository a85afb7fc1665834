// Package framefeat decodes a trace's videos into small per-frame feature
// vectors: what a policy that looks at the frames themselves (the MTL
// baseline) learns from in a replay, where the trace has every model's
// output but not the frames.
package framefeat

import (
	"fmt"
	"image"

	"gocv.io/x/gocv"
)

// Size is the downsampled frame's width and height.
type Size struct{ W, H int }

// DefaultSize is small enough for a network of a few thousand weights per
// layer to train on a few dozen frames, and keeps the scene's layout (where
// people are).
var DefaultSize = Size{W: 16, H: 12}

// Len is the length of a frame's features at size s: the frame, then its
// change since the video's previous frame.
func (s Size) Len() int { return 2 * s.W * s.H }

// Video decodes every frame of video into its features: the frame in
// grey, resized to s (area averaging), scaled to [0,1]; then the absolute
// difference from the previous frame's (zeros for the first), so that
// what moves is visible in one frame's features.
func Video(video string, s Size) ([][]float64, error) {
	if s.W <= 0 || s.H <= 0 {
		return nil, fmt.Errorf("frame features: size %dx%d", s.W, s.H)
	}
	vc, err := gocv.VideoCaptureFile(video)
	if err != nil {
		return nil, fmt.Errorf("open video %q: %w", video, err)
	}
	defer vc.Close()
	if !vc.IsOpened() {
		return nil, fmt.Errorf("open video %q: not a readable video", video)
	}
	img, gray, small := gocv.NewMat(), gocv.NewMat(), gocv.NewMat()
	defer img.Close()
	defer gray.Close()
	defer small.Close()
	n := s.W * s.H
	var out [][]float64
	var prev []float64
	for vc.Read(&img) && !img.Empty() {
		switch img.Channels() {
		case 1:
			img.CopyTo(&gray)
		case 4:
			gocv.CvtColor(img, &gray, gocv.ColorBGRAToGray)
		default:
			gocv.CvtColor(img, &gray, gocv.ColorBGRToGray)
		}
		gocv.Resize(gray, &small, image.Pt(s.W, s.H), 0, 0, gocv.InterpolationArea)
		px, err := small.DataPtrUint8()
		if err != nil || len(px) < n {
			return nil, fmt.Errorf("video %q frame %d: downsampled frame has no %dx%d pixels: %v", video, len(out), s.W, s.H, err)
		}
		f := make([]float64, 2*n)
		for i := range n {
			f[i] = float64(px[i]) / 255
			if prev != nil {
				f[n+i] = abs(f[i] - prev[i])
			}
		}
		prev = f[:n]
		out = append(out, f)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("video %q: no frames", video)
	}
	return out, nil
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// Table holds the features of every frame of a trace's cameras.
type Table struct {
	size   Size
	frames map[string][][]float64
}

// ForVideos decodes each camera's video (a trace header's Videos).
func ForVideos(videos map[string]string, s Size) (*Table, error) {
	if len(videos) == 0 {
		return nil, fmt.Errorf("frame features: the trace names no videos")
	}
	t := &Table{size: s, frames: map[string][][]float64{}}
	for cam, v := range videos {
		f, err := Video(v, s)
		if err != nil {
			return nil, fmt.Errorf("frame features of camera %s: %w", cam, err)
		}
		t.frames[cam] = f
	}
	return t, nil
}

// Features returns the features of camera's frame seq (seq s is the
// video's frame s−1, as the recorder numbers frames). The slice is the
// table's: do not change it.
func (t *Table) Features(camera string, seq uint64) ([]float64, error) {
	f, ok := t.frames[camera]
	if !ok {
		return nil, fmt.Errorf("no video for camera %q", camera)
	}
	if seq < 1 || seq > uint64(len(f)) {
		return nil, fmt.Errorf("camera %s frame %d: the video has %d frames", camera, seq, len(f))
	}
	return f[seq-1], nil
}
