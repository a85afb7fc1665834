//go:build linux && cgo

package main

/*
#include <malloc.h>
*/
import "C"

import "os"

// mallocArenas bounds glibc's malloc arenas. By default glibc gives each
// thread that contends for the heap an arena of its own, up to 8 per core,
// and an arena's freed memory is rarely returned: with OpenCV's and ONNX
// Runtime's worker threads allocating per frame, resident memory then
// creeps up for hours although nothing leaks (no Mat, no Go heap growth).
// Two arenas hold it flat at no measurable cost here (see the soak in the
// README). MALLOC_ARENA_MAX in the environment still wins.
const mallocArenas = 2

func init() {
	if os.Getenv("MALLOC_ARENA_MAX") == "" {
		C.mallopt(C.M_ARENA_MAX, mallocArenas)
	}
}
