#include "shim.h"

#include <cstdlib>
#include <cstring>
#include <exception>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/objdetect.hpp>

static void set_err(char* err, int errlen, const char* msg) {
    if (err == NULL || errlen <= 0) return;
    std::strncpy(err, msg, errlen - 1);
    err[errlen - 1] = '\0';
}

// to_dets copies detections into C memory owned by the caller.
static int to_dets(const std::vector<cv::Rect>& rects, const std::vector<double>& scores,
                   MlinkDet** out, char* err, int errlen) {
    *out = NULL;
    if (rects.empty()) return 0;
    MlinkDet* d = (MlinkDet*)std::malloc(rects.size() * sizeof(MlinkDet));
    if (d == NULL) {
        set_err(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < rects.size(); i++) {
        d[i].x = rects[i].x;
        d[i].y = rects[i].y;
        d[i].width = rects[i].width;
        d[i].height = rects[i].height;
        d[i].score = i < scores.size() ? scores[i] : 0;
    }
    *out = d;
    return (int)rects.size();
}

int mlink_people_detector_len(void) {
    return (int)cv::HOGDescriptor::getDefaultPeopleDetector().size();
}

int mlink_people_detector(float* dst, int n) {
    // gocv wraps this vector in a cv::Mat without copying it, so the Mat
    // points at freed memory (gocv issues #300, #1062). Copy it instead.
    std::vector<float> v = cv::HOGDescriptor::getDefaultPeopleDetector();
    int m = (int)v.size() < n ? (int)v.size() : n;
    std::memcpy(dst, v.data(), m * sizeof(float));
    return m;
}

MlinkHOG mlink_hog_new(const float* svm, int n, char* err, int errlen) {
    cv::HOGDescriptor* h = NULL;
    try {
        h = new cv::HOGDescriptor();
        // setSVMDetector asserts on a wrong size; say what is wrong instead.
        if ((size_t)n != h->getDescriptorSize() + 1) {
            delete h;
            set_err(err, errlen, "SVM detector size does not match the 64x128 HOG window");
            return NULL;
        }
        h->setSVMDetector(std::vector<float>(svm, svm + n));
        return h;
    } catch (const std::exception& e) {
        set_err(err, errlen, e.what());
    } catch (...) {
        set_err(err, errlen, "unknown C++ exception");
    }
    delete h;
    return NULL;
}

void mlink_hog_close(MlinkHOG h) {
    delete static_cast<cv::HOGDescriptor*>(h);
}

int mlink_hog_detect(MlinkHOG h, void* img, double hit_threshold, int win_stride,
                     double scale, double group_threshold, MlinkDet** out, char* err, int errlen) {
    *out = NULL;
    try {
        std::vector<cv::Rect> found;
        std::vector<double> weights;
        static_cast<cv::HOGDescriptor*>(h)->detectMultiScale(
            *static_cast<cv::Mat*>(img), found, weights, hit_threshold,
            cv::Size(win_stride, win_stride), cv::Size(), scale, group_threshold, false);
        return to_dets(found, weights, out, err, errlen);
    } catch (const std::exception& e) {
        set_err(err, errlen, e.what());
    } catch (...) {
        set_err(err, errlen, "unknown C++ exception");
    }
    return -1;
}

MlinkCascade mlink_cascade_new(const char* path, char* err, int errlen) {
    cv::CascadeClassifier* c = NULL;
    try {
        // gocv's Load lets the parser's exception on a corrupt file abort the
        // whole process; here it becomes an error.
        c = new cv::CascadeClassifier();
        if (!c->load(path) || c->empty()) {
            delete c;
            set_err(err, errlen, "not a cascade classifier file");
            return NULL;
        }
        return c;
    } catch (const std::exception& e) {
        set_err(err, errlen, e.what());
    } catch (...) {
        set_err(err, errlen, "unknown C++ exception");
    }
    delete c;
    return NULL;
}

void mlink_cascade_close(MlinkCascade c) {
    delete static_cast<cv::CascadeClassifier*>(c);
}

int mlink_cascade_detect(MlinkCascade c, void* img, double scale_factor, int min_neighbors,
                         int min_size, MlinkDet** out, char* err, int errlen) {
    *out = NULL;
    try {
        std::vector<cv::Rect> found;
        std::vector<int> neighbours;
        static_cast<cv::CascadeClassifier*>(c)->detectMultiScale(
            *static_cast<cv::Mat*>(img), found, neighbours, scale_factor, min_neighbors, 0,
            cv::Size(min_size, min_size), cv::Size());
        std::vector<double> scores(neighbours.begin(), neighbours.end());
        return to_dets(found, scores, out, err, errlen);
    } catch (const std::exception& e) {
        set_err(err, errlen, e.what());
    } catch (...) {
        set_err(err, errlen, "unknown C++ exception");
    }
    return -1;
}
