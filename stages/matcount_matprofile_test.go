//go:build matprofile

package stages

import "gocv.io/x/gocv"

// liveMats counts the gocv Mats not yet closed (-tags matprofile).
func liveMats() (n int, ok bool) { return gocv.MatProfile.Count(), true }
