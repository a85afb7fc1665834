package onnx

import (
	"fmt"
	"math"

	"github.com/mlink-project/mlink/pipeline"
)

// mlsdMaxLines bounds the segments of one frame (M-LSD's reference code
// keeps the top 200 centres; a busy scene can have more real segments).
const mlsdMaxLines = 500

// decodeMLSD decodes M-LSD's centre score map (mw×mh) and its displacement
// map (mw×mh×4: start dx,dy, end dx,dy in map cells) into segments
// normalised to the map. A centre is a local maximum of its 3×3
// neighbourhood with a score of at least threshold; minLen is the minimum
// segment length in model input pixels (inW wide).
func decodeMLSD(scores, offsets []float32, mw, mh, inW int, threshold, minLen float32) ([]pipeline.Box, error) {
	if mw <= 0 || mh <= 0 || len(scores) != mw*mh || len(offsets) != 4*mw*mh {
		return nil, fmt.Errorf("mlsd: maps of %d and %d values are not %d×%d×{1,4}", len(scores), len(offsets), mw, mh)
	}
	// Map cells to input pixels: the maps are at half the input resolution.
	toInput := float32(inW) / float32(mw)
	var lines []pipeline.Box
	for y := 0; y < mh; y++ {
		for x := 0; x < mw; x++ {
			s := scores[y*mw+x]
			if !(s >= threshold) || !isPeak(scores, mw, mh, x, y) {
				continue
			}
			o := offsets[(y*mw+x)*4 : (y*mw+x)*4+4]
			if !finite(o...) {
				continue
			}
			x1, y1 := float32(x)+o[0], float32(y)+o[1]
			x2, y2 := float32(x)+o[2], float32(y)+o[3]
			length := float32(math.Hypot(float64(x2-x1), float64(y2-y1))) * toInput
			if length < minLen {
				continue
			}
			lines = append(lines, pipeline.Box{
				X1: clamp01(x1 / float32(mw)), Y1: clamp01(y1 / float32(mh)),
				X2: clamp01(x2 / float32(mw)), Y2: clamp01(y2 / float32(mh)),
				Score: s,
			})
		}
	}
	sortByScore(lines)
	if len(lines) > mlsdMaxLines {
		lines = lines[:mlsdMaxLines]
	}
	return lines, nil
}

// isPeak reports whether (x,y) is the maximum of its 3×3 neighbourhood, the
// max-pool test M-LSD uses instead of NMS. Ties go to the first cell in
// raster order so a flat plateau yields one centre, not several.
func isPeak(s []float32, w, h, x, y int) bool {
	v := s[y*w+x]
	for dy := -1; dy <= 1; dy++ {
		for dx := -1; dx <= 1; dx++ {
			nx, ny := x+dx, y+dy
			if (dx == 0 && dy == 0) || nx < 0 || ny < 0 || nx >= w || ny >= h {
				continue
			}
			n := s[ny*w+nx]
			if n > v || (n == v && (dy < 0 || (dy == 0 && dx < 0))) {
				return false
			}
		}
	}
	return true
}
