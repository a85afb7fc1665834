//go:build !matprofile

package ingest

// liveMats counts the gocv Mats not yet closed; only a build with -tags
// matprofile counts them (ok false otherwise).
func liveMats() (n int, ok bool) { return 0, false }
