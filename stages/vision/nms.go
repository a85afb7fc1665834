package vision

import (
	"sort"

	"github.com/mlink-project/mlink/pipeline"
)

// NMS is greedy non-maximum suppression: boxes are taken by decreasing score
// and one is dropped when its intersection over union with a box already
// kept exceeds iou. Boxes of different classes never suppress each other.
// Ties keep the input order. The input is not modified.
func NMS(boxes []pipeline.Box, iou float64) []pipeline.Box {
	order := make([]int, len(boxes))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return boxes[order[a]].Score > boxes[order[b]].Score })
	kept := make([]pipeline.Box, 0, len(boxes))
	for _, i := range order {
		b := boxes[i]
		keep := true
		for _, k := range kept {
			if k.Class == b.Class && IoU(k, b) > iou {
				keep = false
				break
			}
		}
		if keep {
			kept = append(kept, b)
		}
	}
	return kept
}

// IoU is the intersection over union of two boxes (0 when either is empty).
func IoU(a, b pipeline.Box) float64 {
	iw := min(a.X2, b.X2) - max(a.X1, b.X1)
	ih := min(a.Y2, b.Y2) - max(a.Y1, b.Y1)
	if iw <= 0 || ih <= 0 {
		return 0
	}
	inter := float64(iw) * float64(ih)
	union := area(a) + area(b) - inter
	if union <= 0 {
		return 0
	}
	return inter / union
}

func area(b pipeline.Box) float64 {
	if b.X2 <= b.X1 || b.Y2 <= b.Y1 {
		return 0
	}
	return float64(b.X2-b.X1) * float64(b.Y2-b.Y1)
}
