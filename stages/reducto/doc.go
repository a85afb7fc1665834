// Package reducto is Reducto (Li et al., SIGCOMM 2020) as an mlink stage and
// bench policy: send a frame to the models only when a cheap difference
// feature against the last sent frame exceeds a threshold chosen per
// segment; a filtered frame reuses the last result (pipeline.SourceReused).
//
// Pieces:
//   - features.go: the four difference features (Feature, Prepared);
//   - selector.go, accuracy.go (pure Go): profiling a segment, choosing its
//     threshold, the signature k-NN (Selector);
//   - filter.go: the live, per-camera Filter (Decide, Observe);
//   - replay.go: offline helpers for the bench (ReplayDiffs, SweepVideo,
//     SimulateVideo).
//
// # Features (FeatureOptions)
//
// Every difference is a share of the frame in [0, 1]. Defaults are the
// published ones (Reducto's config/diff_config.ini), except the working
// width, which is ours:
//
//   - pixel: absdiff of the frames → gray → binary threshold DiffThreshold
//     (21) → share of changed pixels;
//   - area: gray + Gaussian blur BlurSize×BlurSize (11, sigma from the
//     kernel) → absdiff → threshold 21 → dilate (3×3) → largest external
//     contour's area / frame area;
//   - edge: gray + blur 11×11 + Canny(CannyLow 101, CannyHigh 255) →
//     absdiff → threshold 21 → share changed;
//   - corner: Harris (HarrisBlock 5, HarrisKSize 3, HarrisK 0.05) → dilate
//     (3×3) → absdiff → share non-zero. As in Reducto's code the response
//     is not thresholded: any change counts.
//   - Width (320): frames wider than this are downscaled first (aspect
//     kept; Gaussian pyramid halvings, then bilinear: anti-aliased like
//     area interpolation at a third of its cost; area, edge and corner
//     convert to gray before). Reducto runs at the video's resolution;
//     every feature is a share of the frame, so the scale changes values
//     little, while the cost drops with the pixel count (about 6× from
//     768×576). The blur then covers a larger share of the scene, which
//     makes area and edge a little less sensitive to small objects.
//
// # Threshold selection (SelectorOptions)
//
//   - Segments of FilterOptions.Segment (5 s), cut by capture time.
//   - A profiled segment (all frames sent, every model's exact outputs
//     known) replays Candidates (50) thresholds evenly spaced over (0, M],
//     M the largest difference of a frame to the segment's first frame,
//     sending a frame iff its difference to the last sent frame exceeds the
//     threshold (the first frame is sent). Accuracy is the mean per-frame
//     accuracy, sent frames 1, others the accuracy of the reused outputs
//     (FilterOptions.Accuracy, default GradedAccuracy: class labels equal,
//     counts by Reducto's 1 if equal else (max − |diff|)/max). The
//     segment's threshold is the largest candidate with accuracy ≥ Target
//     (0.9) + SafetyMargin (0), or 0 (send every change) if none.
//   - A segment's signature is a Bins (30) histogram of its consecutive
//     diffs over the range of all profiled diffs, plus an underflow and an
//     overflow bin (ours: Reducto drops out-of-range diffs), divided by the
//     number of diffs.
//   - A distance-weighted k-NN (K = 5, weights 1/distance) maps a
//     signature to a threshold (weighted mean of the neighbours'
//     thresholds; Reducto classifies over a fixed list, ours is per
//     segment).
//   - The first Bootstrap (5) segments are sent whole and profiled; a
//     segment whose signature is farther than DistanceBound (0.5) from
//     every profiled signature is sent whole and profiled again. Reducto
//     tuned this bound per query (0.3–6) and summed the distances of the k
//     neighbours; we bound the nearest, as algorithms.md states it. Two
//     segments of the same scene with n diffs each differ by about
//     sqrt(2/n) from sampling noise alone (0.2 for 5 s at 10 fps; on
//     vtest.avi the nearest distances are 0.13–0.5), so 0.5 re-profiles a
//     changed scene, not noise. Lower it at higher frame rates.
//   - MaxProfiles (500) bounds the profiled segments kept.
//
// # Live filter (FilterOptions)
//
// Feature (area, Reducto's choice for counting queries; edge was its
// choice for detection mAP), Segment (5 s), Accuracy (GradedAccuracy),
// MaxSegmentFrames (300) frames kept per profiled segment, MaxPending (2)
// segments a profiled segment waits for its outputs. See Filter for the
// state machine and its one deviation (previous segment's signature).
package reducto
