package pipeline

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// Frame headers. NATS reserves the Nats- prefix; ours are Mlink-.
const (
	HeaderCamera     = "Mlink-Camera"
	HeaderSeq        = "Mlink-Seq"
	HeaderCapturedAt = "Mlink-Captured-At" // Unix nanoseconds
	HeaderWidth      = "Mlink-Width"
	HeaderHeight     = "Mlink-Height"
	HeaderProfiling  = "Mlink-Profiling"
	HeaderToken      = "Mlink-Token" // the frame's plan token (infer messages)
)

// FrameMsg encodes a frame as a NATS message on subject: the JPEG in the
// body, metadata in headers.
func FrameMsg(subject string, f *Frame) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Header.Set(HeaderCamera, f.Camera)
	m.Header.Set(HeaderSeq, strconv.FormatUint(f.Seq, 10))
	m.Header.Set(HeaderCapturedAt, strconv.FormatInt(f.CapturedAt.UnixNano(), 10))
	m.Header.Set(HeaderWidth, strconv.Itoa(f.Width))
	m.Header.Set(HeaderHeight, strconv.Itoa(f.Height))
	if f.Profiling {
		m.Header.Set(HeaderProfiling, "1")
	}
	if f.Token != "" {
		m.Header.Set(HeaderToken, f.Token)
	}
	m.Data = f.JPEG
	return m
}

// DecodeFrame reads a frame from a NATS message. The JPEG bytes alias
// m.Data. It checks the metadata only (a valid camera name, a seq, a
// capture time, dimensions within 1..MaxFrameDim, a body); the JPEG is
// decoded by the consumer, which checks it against the dimensions.
func DecodeFrame(m *nats.Msg) (*Frame, error) {
	if m.Header == nil {
		return nil, fmt.Errorf("frame on %s has no headers", m.Subject)
	}
	f := &Frame{Camera: m.Header.Get(HeaderCamera), JPEG: m.Data}
	if err := ValidName(f.Camera); err != nil {
		return nil, fmt.Errorf("frame on %s: bad %s header: %w", m.Subject, HeaderCamera, err)
	}
	var err error
	if f.Seq, err = strconv.ParseUint(m.Header.Get(HeaderSeq), 10, 64); err != nil {
		return nil, fmt.Errorf("frame on %s: bad %s header: %w", m.Subject, HeaderSeq, err)
	}
	ns, err := strconv.ParseInt(m.Header.Get(HeaderCapturedAt), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("frame %s/%d: bad %s header: %w", f.Camera, f.Seq, HeaderCapturedAt, err)
	}
	f.CapturedAt = time.Unix(0, ns)
	if f.Width, err = frameDim(m.Header.Get(HeaderWidth)); err != nil {
		return nil, fmt.Errorf("frame %s/%d: bad %s header: %w", f.Camera, f.Seq, HeaderWidth, err)
	}
	if f.Height, err = frameDim(m.Header.Get(HeaderHeight)); err != nil {
		return nil, fmt.Errorf("frame %s/%d: bad %s header: %w", f.Camera, f.Seq, HeaderHeight, err)
	}
	f.Profiling = m.Header.Get(HeaderProfiling) == "1"
	f.Token = m.Header.Get(HeaderToken)
	if len(f.JPEG) == 0 {
		return nil, fmt.Errorf("frame %s/%d: empty body", f.Camera, f.Seq)
	}
	return f, nil
}

// MaxFrameDim is the largest width or height a frame may declare: a JPEG's
// dimensions are 16-bit.
const MaxFrameDim = 65535

func frameDim(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, err
	}
	if n < 1 || n > MaxFrameDim {
		return 0, fmt.Errorf("%d is not within 1..%d", n, MaxFrameDim)
	}
	return n, nil
}

// Marshal encodes a typed message as JSON. Plans, outputs and results are
// JSON so that any subscriber, in any language, can read them. It fails only
// on NaN or infinite numbers, which a backend must not emit.
func Marshal[T Plan | Output | Result | Heartbeat | PredictRequest | Escalation](v *T) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %T: %w", *v, err)
	}
	return b, nil
}

// Unmarshal decodes a JSON message into a typed value. A null output in a
// result's or predict request's map is an error: every consumer may rely on
// the outputs it finds there.
func Unmarshal[T Plan | Output | Result | Heartbeat | PredictRequest | Escalation](data []byte) (*T, error) {
	v := new(T)
	if err := json.Unmarshal(data, v); err != nil {
		return nil, fmt.Errorf("decode %T: %w", *v, err)
	}
	var err error
	switch x := any(v).(type) {
	case *Result:
		err = noNullOutputs("outputs", x.Outputs)
	case *PredictRequest:
		if err = noNullOutputs("exact", x.Exact); err == nil {
			err = noNullOutputs("last", x.Last)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("decode %T: %w", *v, err)
	}
	return v, nil
}

func noNullOutputs(field string, outs map[string]*Output) error {
	for name, o := range outs {
		if o == nil {
			return fmt.Errorf("%s: output %q is null", field, name)
		}
	}
	return nil
}
