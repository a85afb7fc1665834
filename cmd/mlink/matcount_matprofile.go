//go:build matprofile

package main

import "gocv.io/x/gocv"

// liveMats counts the gocv Mats not yet closed (built with -tags
// matprofile: the soak then reports them, a leak shows as a climb).
func liveMats() int { return gocv.MatProfile.Count() }
