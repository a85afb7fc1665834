package stages

import (
	"bytes"
	"encoding/binary"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/mlink-project/mlink/pipeline"
)

// encodeTestJPEG encodes a w×h gradient with OpenCV (params: IMWrite flags).
// Pixels are set from Go: gocv's SetUCharAt3 indexes a 3-D Mat, not the
// channels of a 2-D one.
func encodeTestJPEG(t testing.TB, w, h int, gray bool, params ...int) []byte {
	typ, ch := gocv.MatTypeCV8UC3, 3
	if gray {
		typ, ch = gocv.MatTypeCV8UC1, 1
	}
	pix := make([]byte, 0, w*h*ch)
	for y := range h {
		for x := range w {
			if gray {
				pix = append(pix, uint8(x*7+y*3))
			} else {
				pix = append(pix, uint8(x*7), uint8(y*5), 200)
			}
		}
	}
	m, err := gocv.NewMatFromBytes(h, w, typ, pix)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	// IMEncodeWithParams indexes params[0]: at least the quality.
	buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, m, append([]int{gocv.IMWriteJpegQuality, 90}, params...))
	runtime.KeepAlive(pix) // the Mat aliases it
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Close()
	return bytes.Clone(buf.GetBytes())
}

// withEXIFOrientation inserts an APP1 Exif segment with the given
// orientation after the JPEG's SOI.
func withEXIFOrientation(jpeg []byte, orientation uint16) []byte {
	var tiff bytes.Buffer
	tiff.WriteString("MM\x00\x2a")
	binary.Write(&tiff, binary.BigEndian, uint32(8))      // IFD offset
	binary.Write(&tiff, binary.BigEndian, uint16(1))      // one entry
	binary.Write(&tiff, binary.BigEndian, uint16(0x0112)) // Orientation
	binary.Write(&tiff, binary.BigEndian, uint16(3))      // SHORT
	binary.Write(&tiff, binary.BigEndian, uint32(1))
	binary.Write(&tiff, binary.BigEndian, orientation)
	tiff.Write([]byte{0, 0})
	binary.Write(&tiff, binary.BigEndian, uint32(0)) // no next IFD
	payload := append([]byte("Exif\x00\x00"), tiff.Bytes()...)
	seg := []byte{0xFF, 0xE1, byte((len(payload) + 2) >> 8), byte(len(payload) + 2)}
	out := append([]byte{}, jpeg[:2]...)
	out = append(out, seg...)
	out = append(out, payload...)
	return append(out, jpeg[2:]...)
}

// withSize rewrites the size in the JPEG's first frame header.
func withSize(jpeg []byte, w, h int) []byte {
	out := bytes.Clone(jpeg)
	for i := 2; i+8 < len(out); i++ {
		if out[i] == 0xFF && out[i+1] >= 0xC0 && out[i+1] <= 0xC2 {
			out[i+5], out[i+6], out[i+7], out[i+8] = byte(h>>8), byte(h), byte(w>>8), byte(w)
			break
		}
	}
	return out
}

// FuzzDecodeFrame: a frame body with the dimensions its headers declare (0:
// none) either decodes, through the workers' FrameCache and without it,
// to a colour image of exactly those dimensions within the pixel limit,
// or is an error; either way no Mat is left open (checked with -tags
// matprofile, as `make fuzz` runs it) and a header claiming more pixels
// than the limit is refused before decoding.
func FuzzDecodeFrame(f *testing.F) {
	small := encodeTestJPEG(f, 16, 8, false)
	f.Add(small, uint16(16), uint16(8))
	f.Add(small, uint16(0), uint16(0))
	f.Add(small, uint16(8), uint16(16))
	f.Add(encodeTestJPEG(f, 9, 5, true), uint16(9), uint16(5))
	f.Add(encodeTestJPEG(f, 24, 16, false, gocv.IMWriteJpegProgressive, 1), uint16(24), uint16(16))
	f.Add(encodeTestJPEG(f, 17, 3, false, gocv.IMWriteJpegRstInterval, 1, gocv.IMWriteJpegOptimize, 1), uint16(17), uint16(3))
	f.Add(withEXIFOrientation(small, 6), uint16(8), uint16(16))
	f.Add(withEXIFOrientation(small, 6), uint16(16), uint16(8))
	f.Add(withSize(small, 30000, 30000), uint16(30000), uint16(30000))
	f.Add(withSize(small, 4000, 3000), uint16(4000), uint16(3000))
	f.Add(small[:len(small)/2], uint16(16), uint16(8))
	f.Add(append(bytes.Clone(small[:40]), bytes.Repeat([]byte{0x55}, 64)...), uint16(16), uint16(8))
	if data, err := os.ReadFile("../cmd/mlink/testdata/vtest-frame.jpg"); err == nil {
		f.Add(data, uint16(768), uint16(576))
	}
	f.Add([]byte("\x89PNG\r\n\x1a\n"), uint16(1), uint16(1))

	f.Fuzz(func(t *testing.T, data []byte, width, height uint16) {
		before, counted := liveMats()
		fr := &pipeline.Frame{Camera: "cam", Seq: 1, CapturedAt: time.Unix(1, 0), Width: int(width), Height: int(height), JPEG: data}
		check := func(how string, img gocv.Mat, err error) {
			if err != nil {
				if img.Ptr() != nil { // Empty() would dereference a zero Mat
					t.Fatalf("%s: error %v with an image", how, err)
				}
				if !strings.Contains(err.Error(), "JPEG") {
					t.Fatalf("%s: error does not say what failed: %v", how, err)
				}
				return
			}
			w, h, serr := pipeline.JPEGSize(data)
			if serr != nil {
				t.Fatalf("%s: decoded data whose header does not read: %v", how, serr)
			}
			if w*h > pipeline.DefaultMaxFramePixels {
				t.Fatalf("%s: decoded %d×%d, over the pixel limit", how, w, h)
			}
			if img.Empty() || img.Channels() != 3 || img.Type() != gocv.MatTypeCV8UC3 {
				t.Fatalf("%s: decoded an image of %d channels, type %v", how, img.Channels(), img.Type())
			}
			if (img.Cols() != w || img.Rows() != h) && (img.Cols() != h || img.Rows() != w) {
				t.Fatalf("%s: the header says %d×%d, the decoder gave %d×%d", how, w, h, img.Cols(), img.Rows())
			}
			if fr.Width > 0 && fr.Height > 0 && (img.Cols() != fr.Width || img.Rows() != fr.Height) {
				t.Fatalf("%s: decoded %d×%d for a frame of %d×%d", how, img.Cols(), img.Rows(), fr.Width, fr.Height)
			}
		}
		// A refused size is refused before anything is decoded.
		if w, h, err := pipeline.JPEGSize(data); err == nil && w*h > pipeline.DefaultMaxFramePixels {
			start := time.Now()
			img, err := decodeFrame(fr)
			if err == nil || time.Since(start) > time.Second {
				img.Close()
				t.Fatalf("a %d×%d JPEG was not refused at once: %v after %s", w, h, err, time.Since(start))
			}
			return
		}
		img, err := decodeFrame(fr)
		check("decode", img, err)
		if err == nil {
			img.Close()
		}
		c := NewFrameCache(1)
		img, release, err := c.Acquire(fr)
		check("frame cache", img, err)
		release()
		c.Close()
		if after, _ := liveMats(); counted && after != before {
			t.Fatalf("%d Mats left open", after-before)
		}
	})
}

// TestFrameDecodeChecksTheHeaders: a frame whose JPEG is not the size its
// headers say, or is over the pixel limit, is an error; EXIF rotation is
// taken into account.
func TestFrameDecodeChecksTheHeaders(t *testing.T) {
	small := encodeTestJPEG(t, 16, 8, false)
	frame := func(data []byte, w, h int) *pipeline.Frame {
		return &pipeline.Frame{Camera: "cam", Seq: 1, Width: w, Height: h, JPEG: data}
	}
	for _, c := range []struct {
		name string
		f    *pipeline.Frame
		want string // "" for success
	}{
		{"matching", frame(small, 16, 8), ""},
		{"no headers", frame(small, 0, 0), ""},
		{"wrong size", frame(small, 32, 8), "the JPEG is 16×8, the frame's headers say 32×8"},
		{"swapped", frame(small, 8, 16), "it decodes to 16×8, the frame's headers say 8×16"},
		{"rotated", frame(withEXIFOrientation(small, 6), 8, 16), ""},
		{"rotated, headers unrotated", frame(withEXIFOrientation(small, 6), 16, 8), "it decodes to 8×16"},
		{"huge", frame(withSize(small, 30000, 30000), 30000, 30000), "over the limit of 33554432 pixels"},
		{"not a JPEG", frame([]byte("\x89PNG\r\n\x1a\n"), 1, 1), "not a JPEG"},
	} {
		img, err := decodeFrame(c.f)
		if c.want == "" {
			if err != nil || (c.f.Width > 0 && (img.Cols() != c.f.Width || img.Rows() != c.f.Height)) {
				t.Errorf("%s: %v, %d×%d", c.name, err, img.Cols(), img.Rows())
			}
			img.Close()
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: want an error containing %q, got %v", c.name, c.want, err)
		}
		img.Close()
	}
}
