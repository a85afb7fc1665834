//go:build !matprofile

package main

// liveMats is -1 without -tags matprofile (gocv does not count Mats).
func liveMats() int { return -1 }
