// C interface of shim.cpp: the few OpenCV calls that gocv v0.31.0 gets wrong
// or does not expose. Every function catches C++ exceptions and reports them
// through err, because an exception escaping into cgo aborts the process.
#ifndef MLINK_OPENCV_SHIM_H
#define MLINK_OPENCV_SHIM_H

#ifdef __cplusplus
extern "C" {
#endif

// MlinkDet is one detection in pixels of the image it was found in.
typedef struct {
    int x, y, width, height;
    double score;
} MlinkDet;

typedef void* MlinkHOG;
typedef void* MlinkCascade;

// mlink_people_detector_len is the length of OpenCV's default people detector.
int mlink_people_detector_len(void);
// mlink_people_detector copies up to n coefficients into dst; it returns
// how many it copied.
int mlink_people_detector(float* dst, int n);

// mlink_hog_new returns a 64x128 people HOG with the given SVM detector, or
// NULL with a message in err.
MlinkHOG mlink_hog_new(const float* svm, int n, char* err, int errlen);
void mlink_hog_close(MlinkHOG h);
// mlink_hog_detect runs detectMultiScale on img (a cv::Mat*, 8-bit 1 or 3
// channels). It returns the number of detections, stored in *out (malloc'd:
// the caller frees it), or -1 with a message in err.
int mlink_hog_detect(MlinkHOG h, void* img, double hit_threshold, int win_stride,
                     double scale, double group_threshold, MlinkDet** out, char* err, int errlen);

// mlink_cascade_new loads a Haar/LBP cascade, or returns NULL with a message
// in err (missing, unreadable or corrupt file).
MlinkCascade mlink_cascade_new(const char* path, char* err, int errlen);
void mlink_cascade_close(MlinkCascade c);
// mlink_cascade_detect runs detectMultiScale on img (a cv::Mat*, 8-bit gray).
// The score of a detection is its number of neighbours. Returns as
// mlink_hog_detect.
int mlink_cascade_detect(MlinkCascade c, void* img, double scale_factor, int min_neighbors,
                         int min_size, MlinkDet** out, char* err, int errlen);

#ifdef __cplusplus
}
#endif

#endif
