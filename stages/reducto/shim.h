// C interface of shim.cpp: the OpenCV call the corner feature needs and
// gocv v0.31.0 does not expose. It catches C++ exceptions, because one
// escaping into cgo aborts the process.
#ifndef MLINK_REDUCTO_SHIM_H
#define MLINK_REDUCTO_SHIM_H

#ifdef __cplusplus
extern "C" {
#endif

// mlink_reducto_harris runs cv::cornerHarris(src, dst, block, ksize, k) on
// src and dst (cv::Mat*). It returns 0, or -1 with a message in err.
int mlink_reducto_harris(void* src, void* dst, int block, int ksize, double k, char* err, int errlen);

#ifdef __cplusplus
}
#endif

#endif
