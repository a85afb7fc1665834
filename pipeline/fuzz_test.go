package pipeline

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"gopkg.in/yaml.v3"
)

// Fuzz targets for every decoder of bytes from the bus or from disk in this
// package. `go test` replays the seeds and testdata/fuzz/<target>/ (crashers
// found so far); `make fuzz` fuzzes each for a bounded time.

// headerBlock renders headers as NATS puts them on the wire.
func headerBlock(h nats.Header) []byte {
	var b bytes.Buffer
	b.WriteString("NATS/1.0\r\n")
	for k, vs := range h {
		for _, v := range vs {
			b.WriteString(k + ": " + v + "\r\n")
		}
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

func smallJPEG(t testing.TB, w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x * 16), uint8(y * 16), 128, 255})
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 80}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// FuzzDecodeFrame: the headers of a frame message as they come off the
// wire, and its body. A frame that decodes has a valid camera, the seq,
// capture time and dimensions its headers say, dimensions within
// 1..MaxFrameDim and a body; it re-encodes to the same frame. Anything else
// is an error naming the frame.
func FuzzDecodeFrame(f *testing.F) {
	good := FrameMsg("mlink.frames.cam-1", &Frame{Camera: "cam-1", Seq: 42, CapturedAt: time.Unix(1700000000, 123456789),
		Width: 640, Height: 360, JPEG: smallJPEG(f, 8, 8), Profiling: true})
	f.Add(headerBlock(good.Header), good.Data)
	variants := []func(h nats.Header){
		func(h nats.Header) { h.Set(HeaderSeq, "18446744073709551615") },
		func(h nats.Header) { h.Set(HeaderSeq, "18446744073709551616") },
		func(h nats.Header) { h.Set(HeaderSeq, "-1") },
		func(h nats.Header) { h.Set(HeaderWidth, "0") },
		func(h nats.Header) { h.Set(HeaderHeight, "65536") },
		func(h nats.Header) { h.Set(HeaderWidth, "-640") },
		func(h nats.Header) { h.Set(HeaderCapturedAt, "-9223372036854775808") },
		func(h nats.Header) { h.Set(HeaderCamera, "a.b") },
		func(h nats.Header) { h.Set(HeaderCamera, "") },
		func(h nats.Header) { h.Del(HeaderProfiling) },
		func(h nats.Header) { h.Add(HeaderCamera, "other") },
	}
	for _, v := range variants {
		h := nats.Header{}
		for k, vs := range good.Header {
			h[k] = append([]string(nil), vs...)
		}
		v(h)
		f.Add(headerBlock(h), []byte{0xFF, 0xD8})
	}
	f.Add([]byte{}, []byte("no headers"))
	f.Add([]byte("NATS/1.0 503\r\n\r\n"), []byte{})

	f.Fuzz(func(t *testing.T, hdr, body []byte) {
		m := &nats.Msg{Subject: "mlink.frames.x", Data: body}
		if len(hdr) > 0 {
			h, err := nats.DecodeHeadersMsg(hdr)
			if err != nil {
				return // the client drops such a message before us
			}
			m.Header = h
		}
		fr, err := DecodeFrame(m)
		if err != nil {
			if fr != nil {
				t.Fatalf("error %v with a frame %+v", err, fr)
			}
			if !strings.Contains(err.Error(), "frame") {
				t.Fatalf("error does not say it is about a frame: %v", err)
			}
			return
		}
		if err := ValidName(fr.Camera); err != nil || fr.Camera != m.Header.Get(HeaderCamera) {
			t.Fatalf("camera %q from header %q: %v", fr.Camera, m.Header.Get(HeaderCamera), err)
		}
		if seq, err := strconv.ParseUint(m.Header.Get(HeaderSeq), 10, 64); err != nil || seq != fr.Seq {
			t.Fatalf("seq %d from header %q", fr.Seq, m.Header.Get(HeaderSeq))
		}
		if ns, err := strconv.ParseInt(m.Header.Get(HeaderCapturedAt), 10, 64); err != nil || fr.CapturedAt.UnixNano() != ns {
			t.Fatalf("captured at %v from header %q", fr.CapturedAt, m.Header.Get(HeaderCapturedAt))
		}
		if fr.Width < 1 || fr.Width > MaxFrameDim || fr.Height < 1 || fr.Height > MaxFrameDim {
			t.Fatalf("decoded a frame of %d×%d", fr.Width, fr.Height)
		}
		if len(fr.JPEG) == 0 || &fr.JPEG[0] != &body[0] {
			t.Fatal("the frame's JPEG is not the message body")
		}
		back, err := DecodeFrame(FrameMsg(m.Subject, fr))
		if err != nil {
			t.Fatalf("re-encoded frame does not decode: %v", err)
		}
		if back.Camera != fr.Camera || back.Seq != fr.Seq || !back.CapturedAt.Equal(fr.CapturedAt) || back.Width != fr.Width ||
			back.Height != fr.Height || back.Profiling != fr.Profiling || !bytes.Equal(back.JPEG, fr.JPEG) {
			t.Fatalf("round trip changed the frame:\n%+v\n%+v", fr, back)
		}
	})
}

// FuzzJPEGSize: the size read from a JPEG's header is the one Go's own
// decoder reads whenever that succeeds (on data OpenCV takes for a JPEG,
// FF D8 FF), within 1..65535 each, and
// CheckJPEG rejects exactly the sizes over its limit.
func FuzzJPEGSize(f *testing.F) {
	f.Add(smallJPEG(f, 8, 8))
	f.Add(smallJPEG(f, 1, 17))
	var b bytes.Buffer
	jpeg.Encode(&b, image.NewGray(image.Rect(0, 0, 33, 5)), nil)
	f.Add(b.Bytes())
	f.Add([]byte{0xFF, 0xD8, 0xFF})
	f.Add([]byte{0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08, 0x75, 0x30, 0x75, 0x30, 0x03})
	f.Add([]byte("\x89PNG\r\n\x1a\n"))

	f.Fuzz(func(t *testing.T, data []byte) {
		w, h, err := JPEGSize(data)
		if err == nil && (w < 1 || w > 65535 || h < 1 || h > 65535) {
			t.Fatalf("size %d×%d", w, h)
		}
		// Go's reader is the reference, except that it takes a zero height
		// (defined later by a DNL marker), which libjpeg refuses.
		if cfg, gerr := jpeg.DecodeConfig(bytes.NewReader(data)); gerr == nil && len(data) > 2 && data[2] == 0xFF && cfg.Width > 0 && cfg.Height > 0 {
			if err != nil {
				t.Fatalf("Go reads a %d×%d JPEG, JPEGSize fails: %v", cfg.Width, cfg.Height, err)
			}
			if cfg.Width != w || cfg.Height != h {
				t.Fatalf("Go reads %d×%d, JPEGSize %d×%d", cfg.Width, cfg.Height, w, h)
			}
		}
		if err != nil {
			return
		}
		limit := 1000
		_, _, cerr := CheckJPEG(data, limit)
		if (w*h > limit) != errors.Is(cerr, ErrFrameTooLarge) || (w*h <= limit && cerr != nil) {
			t.Fatalf("%d×%d against a limit of %d: %v", w, h, limit, cerr)
		}
	})
}

// roundTrip checks the codec of one message type on arbitrary bytes: what
// decodes re-encodes, and the re-encoding decodes to a value that encodes
// to the same bytes; what does not decode is an error naming the type.
func roundTrip[T Plan | Output | Result | Heartbeat | PredictRequest | Escalation](t *testing.T, data []byte) *T {
	v, err := Unmarshal[T](data)
	if err != nil {
		if v != nil {
			t.Fatalf("error %v with a value", err)
		}
		if !strings.HasPrefix(err.Error(), "decode pipeline.") {
			t.Fatalf("error does not name the message type: %v", err)
		}
		return nil
	}
	b1, err := Marshal(v)
	if err != nil {
		t.Fatalf("decoded %+v does not encode: %v", v, err)
	}
	v2, err := Unmarshal[T](b1)
	if err != nil {
		t.Fatalf("re-encoded %s does not decode: %v", b1, err)
	}
	b2, err := Marshal(v2)
	if err != nil || !bytes.Equal(b1, b2) {
		t.Fatalf("encoding is not stable: %v\n%s\n%s", err, b1, b2)
	}
	return v
}

func noNull(t *testing.T, what string, outs map[string]*Output) {
	for name, o := range outs {
		if o == nil {
			t.Fatalf("%s: output %q decoded as null", what, name)
		}
	}
}

func marshalSeed[T Plan | Output | Result | Heartbeat | PredictRequest | Escalation](f *testing.F, v *T) {
	b, err := Marshal(v)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
}

var (
	seedAt  = time.Date(2024, 5, 1, 12, 0, 0, 123456789, time.FixedZone("", 2*3600))
	seedOut = &Output{Camera: "plaza", Seq: 7, Model: "hog", Kind: KindSequence, Type: TypeBoxes, Value: []float64{2},
		Boxes: []Box{{X1: 0.1, Y1: 0.2, X2: 0.3, Y2: 0.9, Score: 0.8, Class: "person"}, {X2: 1, Y2: 1}},
		Extra: map[string]float64{"fg": 0.25}, Source: SourceExact, InferMS: 12.5, Worker: "w-1"}
	seedPred = &Output{Model: "count", Kind: KindVector, Type: TypeCount, Value: []float64{3.5}, Source: SourcePredicted,
		Sources: []string{"hog", "face"}, Confidence: 0.93}
	seedPlan = &Plan{Camera: "plaza", Seq: 7, CapturedAt: seedAt, Policy: "mlink-hybrid", Exact: []string{"hog"},
		Predicted: []string{"count"}, Reused: []string{"motion"}, Temporal: []string{"count"}, Profiling: true, Sampled: true}
)

func FuzzUnmarshalOutput(f *testing.F) {
	marshalSeed(f, seedOut)
	marshalSeed(f, seedPred)
	marshalSeed(f, &Output{Camera: "c", Seq: 1, Error: "corrupt frame: decode JPEG"})
	f.Add([]byte(`{"value":[1e308,-0,5e-324],"boxes":[{"x1":3.4e38}],"seq":18446744073709551615}`))
	f.Add([]byte(`{"boxes":[{"x1":3.5e38}]}`))
	f.Add([]byte(`{"Model":"a","model":"b","value":null,"extra":{"":1}}`))
	f.Add([]byte("{\"camera\":\"\xff\xfe\"}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if o := roundTrip[Output](t, data); o != nil {
			if _, ok := o.Count(); ok != (len(o.Value) > 0) {
				t.Fatal("Count disagrees with Value")
			}
		}
	})
}

func FuzzUnmarshalPlan(f *testing.F) {
	marshalSeed(f, seedPlan)
	marshalSeed(f, &Plan{Camera: "c", Policy: "all"})
	f.Add([]byte(`{"captured_at":"9999-12-31T23:59:59.999999999-23:59","exact":["a","a"]}`))
	f.Add([]byte(`{"captured_at":"2024-13-01T00:00:00Z"}`))
	f.Add([]byte(`{"seq":-1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if p := roundTrip[Plan](t, data); p != nil {
			if n := len(p.Models()); n != len(p.Exact)+len(p.Predicted)+len(p.Reused) {
				t.Fatalf("Models() has %d names", n)
			}
		}
	})
}

func FuzzUnmarshalResult(f *testing.F) {
	marshalSeed(f, &Result{Camera: "plaza", Seq: 7, CapturedAt: seedAt, Outputs: map[string]*Output{"hog": seedOut, "count": seedPred},
		Plan: *seedPlan, Partial: true, Missing: []string{"motion"}, LatencyMS: 81.5})
	f.Add([]byte(`{"outputs":{"hog":null}}`))
	f.Add([]byte(`{"outputs":{"hog":{}},"plan":null,"missing":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if r := roundTrip[Result](t, data); r != nil {
			noNull(t, "result", r.Outputs)
		}
	})
}

func FuzzUnmarshalPredictRequest(f *testing.F) {
	marshalSeed(f, &PredictRequest{Camera: "plaza", Seq: 7, CapturedAt: seedAt, Targets: []string{"count"},
		Exact: map[string]*Output{"hog": seedOut}, Last: map[string]*Output{"count": seedPred}})
	f.Add([]byte(`{"exact":{"hog":null}}`))
	f.Add([]byte(`{"targets":["a"],"exact":{},"last":{"a":null}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if r := roundTrip[PredictRequest](t, data); r != nil {
			noNull(t, "exact", r.Exact)
			noNull(t, "last", r.Last)
		}
	})
}

func FuzzUnmarshalHeartbeat(f *testing.F) {
	marshalSeed(f, &Heartbeat{Model: "hog", Worker: "w-1", At: seedAt, Frames: 1 << 40, Queued: 3, LastProgress: seedAt, InferMS: 40, MemoryBytes: 1 << 30})
	f.Add([]byte(`{"frames":9223372036854775808}`))
	f.Add([]byte(`{"at":"0000-01-01T00:00:00Z","queued":1e3}`))
	f.Fuzz(func(t *testing.T, data []byte) { roundTrip[Heartbeat](t, data) })
}

// FuzzUnmarshalEscalation: the merger's request that the scheduler re-send
// a frame to a cascade's next tier (policy coe) decodes or is an error
// naming its type, and round-trips.
func FuzzUnmarshalEscalation(f *testing.F) {
	marshalSeed(f, &Escalation{Camera: "plaza", Seq: 7, Models: []string{"hog"}, Token: "T0K3N"})
	f.Add([]byte(`{"models":null,"seq":18446744073709551615}`))
	f.Add([]byte(`{"models":["a","a",""],"token":"\u0000"}`))
	f.Fuzz(func(t *testing.T, data []byte) { roundTrip[Escalation](t, data) })
}

// FuzzParseConfig: a config either parses, defaults and validates, or is a
// ConfigError listing its problems. A valid config re-encodes to YAML that
// parses to the same config, and its defaults are idempotent.
func FuzzParseConfig(f *testing.F) {
	files, _ := filepath.Glob("../configs/*.yaml")
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{minimalConfig, "", "{}", "cameras: []\nmodels: []\nmergr: {}\nmerger: {deadline: soon}\n",
		minimalConfig + "reducto: {enabled: true, safety_margin: 0.1}\nnats: {max_payload: 1.5MB, results_max_bytes: 1e30GB}\n",
		minimalConfig + "merger: {deadline: 1ms}\nbudget: {time: -1s}\n",
		"a: &a [*a, *a]\n", "cameras: &c [{id: x}]\nmodels: *c\n",
		// ${ENV} substitution and the security options.
		minimalConfig + "# ${NOT_SET}\nnats: {url: 'nats://u:${MLINK_FUZZ_UNSET}@h', user: \"$${x}\", password: ${HOME}}\n",
		minimalConfig + "nats: {token: t, tls: {ca_file: x.pem, cert_file: c.pem}, results_replicas: 3}\n"} {
		f.Add([]byte(s))
	}
	dir, err := filepath.Abs("../configs")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data, dir)
		if err != nil {
			var ce *ConfigError
			if cfg != nil || !errors.As(err, &ce) || len(ce.Problems) == 0 {
				t.Fatalf("want a ConfigError listing problems, got %#v (config %v)", err, cfg != nil)
			}
			for _, p := range ce.Problems {
				if strings.TrimSpace(p) == "" {
					t.Fatalf("empty problem in %q", ce.Problems)
				}
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("parsed config does not validate: %v", err)
		}
		again := *cfg
		again.EnsureDefaults()
		if d := diff(cfg, &again); len(d) > 0 {
			t.Fatalf("defaults are not idempotent: %q", d)
		}
		out, err := yaml.Marshal(cfg)
		if err != nil {
			t.Fatalf("valid config does not encode: %v", err)
		}
		back, err := ParseConfig(out, dir)
		if err != nil {
			t.Fatalf("re-encoded config does not parse: %v\n%s", err, out)
		}
		if d := diff(cfg, back); len(d) > 0 {
			t.Fatalf("config changed through YAML: %q\n%s", d, out)
		}
	})
}

// FuzzParseByteSize: a size parses to a non-negative number of bytes that
// its own decimal form parses back to, or is an error.
func FuzzParseByteSize(f *testing.F) {
	for _, s := range []string{"512", "64KB", "8MB", "1.5GB", "2 GiB", "", "-1MB", "MB", "NaN", "Inf", "1e30GB", "9223372036854775807", "0x10M", "1e-9K"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseByteSize(s)
		if err != nil {
			if b != 0 {
				t.Fatalf("error %v with size %d", err, b)
			}
			return
		}
		if b < 0 {
			t.Fatalf("%q parsed to %d", s, b)
		}
		back, err := ParseByteSize(strconv.FormatInt(int64(b), 10))
		if err != nil || back != b {
			// float64 keeps integers exactly up to 2^53 only.
			if b <= 1<<53 || math.Abs(float64(back-b)) > float64(b)/(1<<50) {
				t.Fatalf("%q = %d bytes, which parses back as %d: %v", s, b, back, err)
			}
		}
	})
}

// diff lists the paths at which a and b differ; nil and empty slices or
// maps are alike (YAML and JSON do not tell them apart).
func diff(a, b any) []string {
	var out []string
	var walk func(x, y reflect.Value, path string)
	walk = func(x, y reflect.Value, path string) {
		if len(out) > 20 {
			return
		}
		if x.Kind() != y.Kind() {
			out = append(out, path+": kinds differ")
			return
		}
		switch x.Kind() {
		case reflect.Pointer, reflect.Interface:
			if x.IsNil() || y.IsNil() {
				if x.IsNil() != y.IsNil() {
					out = append(out, path+": nil vs non-nil")
				}
				return
			}
			walk(x.Elem(), y.Elem(), path)
		case reflect.Struct:
			for i := range x.NumField() {
				walk(x.Field(i), y.Field(i), path+"."+x.Type().Field(i).Name)
			}
		case reflect.Slice, reflect.Array:
			if x.Len() != y.Len() {
				out = append(out, path+": lengths differ")
				return
			}
			for i := range x.Len() {
				walk(x.Index(i), y.Index(i), path+"["+strconv.Itoa(i)+"]")
			}
		case reflect.Map:
			if x.Len() != y.Len() {
				out = append(out, path+": maps differ")
				return
			}
			for _, k := range x.MapKeys() {
				if !y.MapIndex(k).IsValid() {
					out = append(out, path+": key missing")
					continue
				}
				walk(x.MapIndex(k), y.MapIndex(k), path+"[key]")
			}
		default:
			if x.CanInterface() && !reflect.DeepEqual(x.Interface(), y.Interface()) {
				out = append(out, path+": "+strconv.Quote(strings.TrimSpace(fmtValue(x)))+" vs "+strconv.Quote(strings.TrimSpace(fmtValue(y))))
			}
		}
	}
	walk(reflect.ValueOf(a), reflect.ValueOf(b), "")
	return out
}

func fmtValue(v reflect.Value) string {
	b, _ := yaml.Marshal(v.Interface())
	return string(b)
}

// The bugs the fuzzers found, pinned by name (their inputs are also in
// testdata/fuzz).

func TestDecodeFrameChecksDimensions(t *testing.T) {
	for _, c := range []struct{ w, h, want string }{
		{"0", "360", "bad Mlink-Width header: 0 is not within 1..65535"},
		{"640", "-360", "bad Mlink-Height header: -360 is not within 1..65535"},
		{"65536", "1", "bad Mlink-Width header: 65536 is not within 1..65535"},
		{"65535", "65535", ""},
	} {
		m := FrameMsg("mlink.frames.c", &Frame{Camera: "c", Seq: 1, CapturedAt: time.Unix(1, 0), Width: 1, Height: 1, JPEG: []byte{1}})
		m.Header.Set(HeaderWidth, c.w)
		m.Header.Set(HeaderHeight, c.h)
		_, err := DecodeFrame(m)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s×%s: want %q, got %v", c.w, c.h, c.want, err)
		}
	}
}

// A null output in a result made every results subscriber that reads
// outputs (the scheduler's policies, mlink watch/status) dereference nil.
func TestUnmarshalRejectsNullOutputs(t *testing.T) {
	if _, err := Unmarshal[Result]([]byte(`{"camera":"plaza","seq":3,"outputs":{"hog":null}}`)); err == nil ||
		err.Error() != `decode pipeline.Result: outputs: output "hog" is null` {
		t.Errorf("result: %v", err)
	}
	if _, err := Unmarshal[PredictRequest]([]byte(`{"exact":{"hog":{}},"last":{"count":null}}`)); err == nil ||
		!strings.Contains(err.Error(), `last: output "count" is null`) {
		t.Errorf("predict request: %v", err)
	}
	if _, err := Unmarshal[Result]([]byte(`{"outputs":{}}`)); err != nil {
		t.Errorf("no outputs is fine: %v", err)
	}
}

// Sizes past 2^63 bytes, NaN and infinity parsed to -2^63.
func TestParseByteSizeRejectsOverflow(t *testing.T) {
	for _, s := range []string{"1e30GB", "9.3e18", "NaN", "Inf", "+Inf", "8GiB8"} {
		if b, err := ParseByteSize(s); err == nil {
			t.Errorf("ParseByteSize(%q) = %d, want an error", s, b)
		}
	}
	if b, err := ParseByteSize("7EB"); err == nil {
		t.Errorf("unknown unit: %d", b)
	}
	if b, err := ParseByteSize("8589934591GB"); err != nil || b != 8589934591<<30 {
		t.Errorf("the largest whole GB: %d, %v", b, err)
	}
}

// .nan and .inf passed every range check.
func TestConfigRejectsNonFiniteNumbers(t *testing.T) {
	_, err := ParseConfig([]byte(`
cameras: [{id: cam, source: rtsp, url: "rtsp://127.0.0.1:8554/x"}]
models: [{name: hog, backend: opencv-hog, threshold: .nan}]
scheduler: {active_share: .nan}
budget: {ms_per_frame: .inf}
reducto: {target_accuracy: .nan}
`), "")
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("want a ConfigError, got %v", err)
	}
	for _, w := range []string{"models[0].threshold: NaN is not a number", "scheduler.active_share: NaN", "budget.ms_per_frame: +Inf", "reducto.target_accuracy: NaN"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%q not reported in:\n%v", w, err)
		}
	}
}
