package opencv

/*
#cgo pkg-config: opencv4
#cgo CXXFLAGS: -std=c++11
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"errors"
	"image"
	"unsafe"

	"gocv.io/x/gocv"
)

// DefaultPeopleDetector returns a copy of OpenCV's default HOG people
// detector (3781 linear SVM coefficients for a 64×128 window). Use it instead
// of gocv.HOGDefaultPeopleDetector, whose Mat points at freed memory in
// every gocv release (issues #300, #1062) and so holds garbage.
func DefaultPeopleDetector() []float32 {
	n := int(C.mlink_people_detector_len())
	out := make([]float32, n)
	if n > 0 {
		n = int(C.mlink_people_detector((*C.float)(unsafe.Pointer(&out[0])), C.int(n)))
	}
	return out[:n]
}

// detection is one shim detection in pixels of the image it ran on.
type detection struct {
	rect  image.Rectangle
	score float64
}

// errBuf receives the message of a C++ exception.
type errBuf [256]C.char

func (e *errBuf) ptr() *C.char { return &e[0] }
func (e *errBuf) err() error   { return errors.New(C.GoString(&e[0])) }

// matPtr is the cv::Mat* behind a gocv Mat (gocv's C.Mat is that pointer).
func matPtr(m gocv.Mat) unsafe.Pointer { return unsafe.Pointer(m.Ptr()) }

// takeDetections copies n C detections into Go memory and frees them.
func takeDetections(n C.int, out *C.MlinkDet, eb *errBuf) ([]detection, error) {
	if out != nil {
		defer C.free(unsafe.Pointer(out))
	}
	if n < 0 {
		return nil, eb.err()
	}
	if n == 0 || out == nil {
		return nil, nil
	}
	dets := make([]detection, 0, int(n))
	for _, d := range unsafe.Slice(out, int(n)) {
		dets = append(dets, detection{
			rect:  image.Rect(int(d.x), int(d.y), int(d.x+d.width), int(d.y+d.height)),
			score: float64(d.score),
		})
	}
	return dets, nil
}

// hogDetector is a cv::HOGDescriptor owned by the shim: gocv's HOG returns
// no detection weights, and they are the scores that thresholds and NMS need.
type hogDetector struct{ p C.MlinkHOG }

func newHOGDetector(svm []float32) (*hogDetector, error) {
	if len(svm) == 0 {
		return nil, errors.New("empty SVM detector")
	}
	var eb errBuf
	p := C.mlink_hog_new((*C.float)(unsafe.Pointer(&svm[0])), C.int(len(svm)), eb.ptr(), C.int(len(eb)))
	if p == nil {
		return nil, eb.err()
	}
	return &hogDetector{p: p}, nil
}

func (h *hogDetector) detect(img gocv.Mat, hitThreshold float64, winStride int, scale, groupThreshold float64) ([]detection, error) {
	var eb errBuf
	var out *C.MlinkDet
	n := C.mlink_hog_detect(h.p, matPtr(img), C.double(hitThreshold), C.int(winStride),
		C.double(scale), C.double(groupThreshold), &out, eb.ptr(), C.int(len(eb)))
	return takeDetections(n, out, &eb)
}

func (h *hogDetector) close() {
	if h.p != nil {
		C.mlink_hog_close(h.p)
		h.p = nil
	}
}

// cascadeDetector is a cv::CascadeClassifier owned by the shim: gocv's Load
// aborts the process on a corrupt XML file instead of returning false.
type cascadeDetector struct{ p C.MlinkCascade }

func newCascadeDetector(path string) (*cascadeDetector, error) {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var eb errBuf
	p := C.mlink_cascade_new(cpath, eb.ptr(), C.int(len(eb)))
	if p == nil {
		return nil, eb.err()
	}
	return &cascadeDetector{p: p}, nil
}

func (c *cascadeDetector) detect(gray gocv.Mat, scaleFactor float64, minNeighbors, minSize int) ([]detection, error) {
	var eb errBuf
	var out *C.MlinkDet
	n := C.mlink_cascade_detect(c.p, matPtr(gray), C.double(scaleFactor), C.int(minNeighbors),
		C.int(minSize), &out, eb.ptr(), C.int(len(eb)))
	return takeDetections(n, out, &eb)
}

func (c *cascadeDetector) close() {
	if c.p != nil {
		C.mlink_cascade_close(c.p)
		c.p = nil
	}
}
