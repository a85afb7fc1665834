package pipeline

import (
	"errors"
	"fmt"
)

// DefaultMaxFramePixels bounds the images mlink decodes: 2^25 pixels, about
// 100 MB as BGR; 8K UHD (7680×4320) fits. The JPEG decoder allocates the
// whole image from the size in the frame header before it reads a pixel,
// so a few hundred bytes claiming 30000×30000 would cost 2.7 GB.
const DefaultMaxFramePixels = 1 << 25

// ErrFrameTooLarge is returned for a JPEG whose header declares more pixels
// than allowed.
var ErrFrameTooLarge = errors.New("frame too large")

// JPEGSize reads a JPEG's width and height from its frame header (SOFn)
// without decoding it. data must start as OpenCV and libjpeg recognise a
// JPEG (FF D8 FF); markers are walked as libjpeg walks them up to the
// first frame header, so the size is the one the decoder will allocate for
// (before any EXIF rotation, which swaps width and height).
func JPEGSize(data []byte) (width, height int, err error) {
	if len(data) < 3 || data[0] != 0xFF || data[1] != 0xD8 || data[2] != 0xFF {
		return 0, 0, errors.New("not a JPEG (no start-of-image marker)")
	}
	i := 2
	for {
		// libjpeg skips bytes before a marker (a corrupt-data warning)
		// and any number of 0xFF fill bytes.
		for i < len(data) && data[i] != 0xFF {
			i++
		}
		for i < len(data) && data[i] == 0xFF {
			i++
		}
		if i >= len(data) {
			return 0, 0, errors.New("JPEG ends before its frame header")
		}
		m := data[i]
		i++
		switch {
		case m == 0x00:
			continue // a stuffed 0xFF inside data: not a marker
		case m == 0x01 || (m >= 0xD0 && m <= 0xD7):
			continue // standalone markers (TEM, RSTn)
		case m == 0xD8:
			return 0, 0, errors.New("JPEG has a second start-of-image marker before its frame header")
		case m == 0xD9:
			return 0, 0, errors.New("JPEG ends (EOI) before its frame header")
		case m == 0xDA:
			return 0, 0, errors.New("JPEG has a scan before its frame header")
		}
		if i+2 > len(data) {
			return 0, 0, errors.New("JPEG ends inside a marker segment")
		}
		n := int(data[i])<<8 | int(data[i+1])
		if n < 2 {
			return 0, 0, fmt.Errorf("JPEG marker %02X has a bad length %d", m, n)
		}
		if isSOF(m) {
			// Length, precision, height, width.
			if n < 8 || i+7 > len(data) {
				return 0, 0, errors.New("JPEG frame header is truncated")
			}
			height = int(data[i+3])<<8 | int(data[i+4])
			width = int(data[i+5])<<8 | int(data[i+6])
			if width == 0 || height == 0 {
				return 0, 0, fmt.Errorf("JPEG declares an empty %d×%d image", width, height)
			}
			return width, height, nil
		}
		i += n
		if i > len(data) {
			return 0, 0, errors.New("JPEG ends inside a marker segment")
		}
	}
}

// isSOF reports whether m is a start-of-frame marker (SOF0–SOF15 except
// DHT, JPG and DAC, which share the range).
func isSOF(m byte) bool {
	return m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC
}

// CheckJPEG returns the dimensions of a JPEG from its header, or an error if
// data is not a JPEG or declares more than maxPixels pixels (an error that
// wraps ErrFrameTooLarge). Call it before handing untrusted bytes to a
// decoder.
func CheckJPEG(data []byte, maxPixels int) (width, height int, err error) {
	w, h, err := JPEGSize(data)
	if err != nil {
		return 0, 0, err
	}
	if w*h > maxPixels {
		return w, h, fmt.Errorf("JPEG of %d×%d (%d pixels) is over the limit of %d pixels: %w", w, h, w*h, maxPixels, ErrFrameTooLarge)
	}
	return w, h, nil
}
