package pipeline

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

func TestFrameRoundTrip(t *testing.T) {
	in := &Frame{Camera: "cam-1", Seq: 42, CapturedAt: time.Unix(1700000000, 123456789), Width: 640, Height: 360, JPEG: []byte{0xFF, 0xD8, 1, 2}, Profiling: true}
	m := FrameMsg(DefaultSubjects.Infer("hog"), in)
	out, err := DecodeFrame(m)
	if err != nil {
		t.Fatal(err)
	}
	if out.Camera != in.Camera || out.Seq != in.Seq || !out.CapturedAt.Equal(in.CapturedAt) ||
		out.Width != 640 || out.Height != 360 || string(out.JPEG) != string(in.JPEG) || !out.Profiling {
		t.Fatalf("round trip changed the frame: %+v", out)
	}
	for k := range m.Header {
		if !strings.HasPrefix(k, "Mlink-") {
			t.Errorf("header %q lacks the Mlink- prefix", k)
		}
	}
}

func TestDecodeFrameRejectsBadMetadata(t *testing.T) {
	good := func() *nats.Msg {
		return FrameMsg("mlink.frames.c", &Frame{Camera: "c", Seq: 1, CapturedAt: time.Now(), Width: 1, Height: 1, JPEG: []byte{1}})
	}
	cases := map[string]func(m *nats.Msg){
		"no headers": func(m *nats.Msg) { m.Header = nil },
		"camera":     func(m *nats.Msg) { m.Header.Set(HeaderCamera, "a.b") },
		"seq":        func(m *nats.Msg) { m.Header.Set(HeaderSeq, "x") },
		"captured":   func(m *nats.Msg) { m.Header.Del(HeaderCapturedAt) },
		"width":      func(m *nats.Msg) { m.Header.Set(HeaderWidth, "") },
		"empty body": func(m *nats.Msg) { m.Data = nil },
	}
	for name, breakIt := range cases {
		m := good()
		breakIt(m)
		if _, err := DecodeFrame(m); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
}

func TestResultJSONHasTheDocumentedFields(t *testing.T) {
	r := &Result{Camera: "c", Seq: 3, Outputs: map[string]*Output{"hog": {Kind: KindSequence, Type: TypeBoxes, Value: []float64{1}, Boxes: []Box{{X2: 1, Y2: 1}}, Source: SourceExact}}, Plan: Plan{Policy: "all", Exact: []string{"hog"}}}
	data, err := Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"camera"`, `"seq"`, `"captured_at"`, `"outputs"`, `"kind":"sequence"`, `"value"`, `"source":"exact"`, `"boxes"`, `"plan"`, `"partial"`, `"latency_ms"`} {
		if !strings.Contains(string(data), field) {
			t.Errorf("result JSON lacks %s: %s", field, data)
		}
	}
	back, err := Unmarshal[Result](data)
	if err != nil || back.Outputs["hog"].Boxes[0].X2 != 1 {
		t.Fatalf("round trip: %v %+v", err, back)
	}
}
