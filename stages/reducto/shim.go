package reducto

/*
#cgo pkg-config: opencv4
#cgo CXXFLAGS: -std=c++11
#include "shim.h"
*/
import "C"

import (
	"errors"
	"unsafe"

	"gocv.io/x/gocv"
)

// cornerHarris is cv::cornerHarris, which gocv v0.31.0 does not wrap. dst
// receives a CV_32F response of src's size.
func cornerHarris(src gocv.Mat, dst *gocv.Mat, block, ksize int, k float64) error {
	var eb [256]C.char
	// gocv's C.Mat is the cv::Mat* itself.
	if C.mlink_reducto_harris(unsafe.Pointer(src.Ptr()), unsafe.Pointer(dst.Ptr()),
		C.int(block), C.int(ksize), C.double(k), &eb[0], C.int(len(eb))) != 0 {
		return errors.New(C.GoString(&eb[0]))
	}
	return nil
}
