//go:build matprofile

package ingest

import (
	"bytes"
	"fmt"

	"gocv.io/x/gocv"
)

// With -tags matprofile, gocv counts live Mats: after the suite every Mat
// must have been closed.
func init() {
	matLeaks = func() error {
		if n := gocv.MatProfile.Count(); n > 0 {
			var b bytes.Buffer
			gocv.MatProfile.WriteTo(&b, 1)
			return fmt.Errorf("%d Mats not closed:\n%s", n, b.String())
		}
		return nil
	}
}

// liveMats counts the Mats not yet closed.
func liveMats() (n int, ok bool) { return gocv.MatProfile.Count(), true }
