package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/mlink-project/mlink/pipeline"
)

// fakeCamera answers every request with one canned response: the fuzzer's
// bytes reach the MJPEG parser as they would from a camera, without a
// socket.
type fakeCamera struct {
	contentType string
	body        []byte
}

func (c fakeCamera) RoundTrip(req *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {c.contentType}}, Body: io.NopCloser(bytes.NewReader(c.body)), Request: req}, nil
}

func testJPEG(t testing.TB, w, h int) []byte {
	m := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(40, 100, 200, 0), h, w, gocv.MatTypeCV8UC3)
	defer m.Close()
	buf, err := gocv.IMEncode(gocv.JPEGFileExt, m)
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Close()
	return bytes.Clone(buf.GetBytes())
}

func multipartStream(boundary string, parts ...[]byte) []byte {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	mw.SetBoundary(boundary)
	for _, p := range parts {
		w, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"image/jpeg"}, "Content-Length": {fmt.Sprint(len(p))}})
		w.Write(p)
	}
	mw.Close()
	return b.Bytes()
}

const (
	fuzzMaxFrameBytes  = 32 << 10
	fuzzMaxFramePixels = 640 * 480
	fuzzMaxParts       = 64
)

// FuzzMJPEG: an HTTP MJPEG response (content type and body) as a camera
// sends it. Open accepts only a multipart type with a boundary; each Read
// then gives a colour image within the pixel limit, or ErrBadFrame for a
// part that is too large, not a JPEG, too many pixels or undecodable (the
// stream reads on), or a disconnection error ending the stream: never a
// stall on a complete body, never more images than parts within the
// limits, and no Mat left open (checked with -tags matprofile).
func FuzzMJPEG(f *testing.F) {
	jpeg := testJPEG(f, 32, 24)
	huge := bytes.Clone(jpeg)
	for i := 2; i+8 < len(huge); i++ {
		if huge[i] == 0xFF && huge[i+1] == 0xC0 {
			huge[i+5], huge[i+6], huge[i+7], huge[i+8] = 0x75, 0x30, 0x75, 0x30 // 30000×30000
			break
		}
	}
	ct := "multipart/x-mixed-replace; boundary=frame"
	f.Add(ct, multipartStream("frame", jpeg, []byte("garbage"), jpeg))
	f.Add("multipart/x-mixed-replace;boundary=--frame", multipartStream("frame", jpeg))
	f.Add(`multipart/x-mixed-replace; boundary="a b"`, multipartStream("a b", jpeg, jpeg[:len(jpeg)/2]))
	f.Add(ct, multipartStream("frame", huge, jpeg))
	f.Add(ct, multipartStream("frame", bytes.Repeat(jpeg, fuzzMaxFrameBytes/len(jpeg)+1), jpeg))
	f.Add(ct, multipartStream("frame", testJPEG(f, 800, 600)))
	f.Add(ct, []byte("--frame\r\n\r\n\xff\xd8\xff--frame--"))
	f.Add(ct, []byte("--frame\r\nContent-Type: image/jpeg\r\n"))
	f.Add("image/jpeg", jpeg)
	f.Add("multipart/x-mixed-replace", multipartStream("x", jpeg))
	f.Add("", []byte{})

	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		before, counted := liveMats()
		src, err := NewMJPEGSource("http://camera.test/video.mjpg", MJPEGOptions{
			Client: &http.Client{Transport: fakeCamera{contentType, body}}, StallTimeout: 10 * time.Second,
			MaxFrameBytes: fuzzMaxFrameBytes, MaxFramePixels: fuzzMaxFramePixels,
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if err := src.Open(ctx); err != nil {
			mt, params, perr := mime.ParseMediaType(contentType)
			if perr == nil && strings.HasPrefix(mt, "multipart/") && strings.TrimPrefix(params["boundary"], "--") != "" {
				t.Fatalf("a multipart stream with a boundary was refused: %v", err)
			}
			if !strings.Contains(err.Error(), "MJPEG stream") {
				t.Fatalf("error does not name the source: %v", err)
			}
			return
		}
		defer src.Close()
		// The parts within the limits, as Go's own multipart reader sees
		// them: an upper bound on the images.
		_, params, _ := mime.ParseMediaType(contentType)
		eligible := 0
		mr := multipart.NewReader(bytes.NewReader(body), strings.TrimPrefix(params["boundary"], "--"))
		for range fuzzMaxParts {
			p, err := mr.NextPart()
			if err != nil {
				break
			}
			data, err := io.ReadAll(io.LimitReader(p, fuzzMaxFrameBytes+1))
			if err != nil {
				break
			}
			if _, _, err := pipeline.CheckJPEG(data, fuzzMaxFramePixels); err == nil && len(data) <= fuzzMaxFrameBytes {
				eligible++
			}
		}
		images := 0
		for range fuzzMaxParts {
			img, at, err := src.Read(ctx)
			if err != nil {
				if img.Ptr() != nil {
					t.Fatalf("error %v with an image", err)
				}
				if errors.Is(err, ErrBadFrame) {
					continue
				}
				if strings.Contains(err.Error(), "stalled") {
					t.Fatalf("a complete body stalled: %v", err)
				}
				break
			}
			images++
			if img.Empty() || img.Type() != gocv.MatTypeCV8UC3 || img.Cols()*img.Rows() > fuzzMaxFramePixels || at.IsZero() {
				t.Fatalf("read an image of %d×%d, type %v, at %v", img.Cols(), img.Rows(), img.Type(), at)
			}
			img.Close()
		}
		if images > eligible {
			t.Fatalf("%d images from %d parts within the limits", images, eligible)
		}
		src.Close()
		if _, _, err := src.Read(ctx); err == nil {
			t.Fatal("read after close")
		}
		if after, _ := liveMats(); counted && after != before {
			t.Fatalf("%d Mats left open", after-before)
		}
	})
}

// TestMJPEGRefusesHugeFrames: a part whose JPEG header declares more pixels
// than the limit is a bad frame, refused without decoding; the stream
// reads on.
func TestMJPEGRefusesHugeFrames(t *testing.T) {
	small := testJPEG(t, 32, 24)
	big := testJPEG(t, 64, 48)
	src, err := NewMJPEGSource("http://camera.test/video.mjpg", MJPEGOptions{
		Client:         &http.Client{Transport: fakeCamera{"multipart/x-mixed-replace; boundary=f", multipartStream("f", big, small)}},
		MaxFramePixels: 32 * 24,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	_, _, err = src.Read(context.Background())
	if !errors.Is(err, ErrBadFrame) || !errors.Is(err, pipeline.ErrFrameTooLarge) || !strings.Contains(err.Error(), "64×48 (3072 pixels) is over the limit of 768 pixels") {
		t.Fatalf("want a too-large bad frame, got %v", err)
	}
	img, _, err := src.Read(context.Background())
	if err != nil || img.Cols() != 32 {
		t.Fatalf("the next part: %v", err)
	}
	img.Close()
}
