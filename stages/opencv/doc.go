// Package opencv holds mlink's classical OpenCV model backends. Each
// implements vision.Backend; Params keys not listed here are rejected.
//
// # opencv-hog: NewHOG
//
// OpenCV's HOG + linear SVM people detector (64×128 window). Output: boxes
// of class "person" (or only their count with output: count), Value = [n],
// Score = the SVM detection weight (0.5–4 on vtest.avi).
//
//   - upscale_width (1280): resize the frame to this width before detecting,
//     0 = no resize. People shorter than the 128 px window are missed:
//     vtest.avi's are 60–90 px in 768×576.
//   - hit_threshold (0): SVM margin a window needs; raise it to drop weak hits.
//   - win_stride (8): window step in pixels; larger is faster and misses more.
//   - scale (1.05): pyramid scale step (> 1); larger is faster and misses more.
//
// Cost, measured on vtest.avi on 2 shared cores: the defaults take ~0.8 s a
// frame and find 6–7 people (all of them on the frames checked by eye);
// scale 1.1 halves the time (3–7 found), scale 1.2 quarters it (3–6).
//
// spec.Threshold drops boxes whose weight is below it (0: keep all);
// spec.NMS is the IoU of non-maximum suppression (0: 0.45).
//
// # opencv-cascade: NewCascade
//
// A Haar or LBP cascade from an XML file, such as Debian opencv-data's
// /usr/share/opencv4/haarcascades/haarcascade_fullbody.xml. The image is
// converted to gray and histogram-equalised first. Output like opencv-hog;
// the class is spec.Classes[0] if given, else spec.Name; Score = the number
// of raw detections merged into the box (OpenCV's "neighbours").
//
//   - scale_factor (1.1): pyramid scale step (> 1).
//   - min_neighbors (3): raw detections a box needs; higher = fewer false hits.
//   - min_size (0): smallest object side in pixels of the detected image
//     (after upscale); 0 = the cascade's window size.
//   - upscale_width (0): resize the frame to this width first, 0 = no resize.
//
// spec.NMS > 0 applies non-maximum suppression (off by default: min_neighbors
// grouping already merges duplicates); spec.Threshold is not used.
//
// # opencv-mog2: NewMOG2
//
// MOG2 background subtraction with one background model per camera, on a
// reduced copy of the frame. Shadows are detected and not counted as
// foreground; a 3×3 morphological open removes noise pixels. Output: class
// over MotionLevels (none, low, medium, high) with one-hot Value and Label;
// Extra["foreground"] is the foreground share of the frame in [0,1] and
// Extra["blobs"] the number of connected foreground regions larger than
// min_blob_area. With output: count it reports the blob count as a count
// instead (Value = [blobs]): a people-activity signal as cheap as the level.
//
//   - process_width (320): width the frame is resized to, 0 = no resize.
//   - history (500): frames the background model remembers.
//   - var_threshold (16): squared Mahalanobis distance for a pixel to be
//     foreground; higher = less sensitive.
//   - low (0.005), medium (0.02), high (0.08): thresholds on the foreground
//     share. The level is none below low, low from low, medium from medium,
//     high from high; a share of 0 is always none. On vtest.avi (5–8 people
//     walking across a plaza) the share is 1–3% (median 1.6%, max 4%): low
//     or medium; high needs a crowd, a vehicle or a moving camera.
//   - min_blob_area (50): blob area in pixels at process_width.
//
// The first frame of a camera only initialises its model (no motion).
//
// gocv v0.31.0 gets two of these calls wrong, so a small cgo shim (shim.cpp)
// owns the HOG and cascade detectors: gocv's default people detector is
// garbage and its HOG returns no weights, and its cascade Load aborts the
// process on a corrupt XML file. The shim turns every C++ exception into an
// error.
package opencv
