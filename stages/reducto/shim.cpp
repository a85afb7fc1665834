#include "shim.h"

#include <cstring>
#include <exception>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

int mlink_reducto_harris(void* src, void* dst, int block, int ksize, double k, char* err, int errlen) {
    try {
        cv::cornerHarris(*(cv::Mat*)src, *(cv::Mat*)dst, block, ksize, k);
        return 0;
    } catch (const std::exception& e) {
        if (err != NULL && errlen > 0) {
            std::strncpy(err, e.what(), errlen - 1);
            err[errlen - 1] = '\0';
        }
        return -1;
    }
}
