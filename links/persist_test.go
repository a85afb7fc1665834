package links

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mlink-project/mlink/pipeline"
)

// allFamiliesTrace has a count, a class, a box and a line model: every
// link family occurs among its pairs.
func allFamiliesTrace(n int, seed int64) (TraceHeader, []*TraceRecord) {
	rng := rand.New(rand.NewSource(seed))
	models := []TraceModel{
		{Name: "cnt", Type: pipeline.TypeCount},
		{Name: "cls", Type: pipeline.TypeClass, Classes: motionClasses},
		{Name: "box", Type: pipeline.TypeBoxes, Classes: []string{"person"}},
		{Name: "lin", Type: pipeline.TypeLines},
	}
	return makeTrace(models, n, func(int) map[string]*pipeline.Output {
		k := rng.Intn(5)
		c := min(k/2, 2)
		var lines []pipeline.Box
		for i := 0; i < k+3; i++ {
			x := 0.1 + 0.1*float32(i)
			lines = append(lines, pipeline.Box{X1: x, Y1: 0.1, X2: x + 0.02*rng.Float32(), Y2: 0.5, Score: rng.Float32()})
		}
		return map[string]*pipeline.Output{
			"cnt": countOut("cnt", float64(k)),
			"cls": classOut("cls", motionClasses, c),
			"box": boxesOut("box", pipeline.TypeBoxes, randomPeople(k, rng, 0.01)),
			"lin": boxesOut("lin", pipeline.TypeLines, lines),
		}
	})
}

func without(outs map[string]*pipeline.Output, name string) map[string]*pipeline.Output {
	m := map[string]*pipeline.Output{}
	for k, v := range outs {
		if k != name {
			m[k] = v
		}
	}
	return m
}

func TestSaveLoadPredictIdentical(t *testing.T) {
	for _, dec := range []string{DecoderSet, DecoderAttention} {
		t.Run(dec, func(t *testing.T) {
			t.Parallel()
			h, recs := allFamiliesTrace(120, 5)
			s := mustTrain(t, h, recs[:60], TrainOptions{Epochs: 3, Seed: 9, SeqDecoder: dec})
			s.Evaluate(recs[60:])
			dir := t.TempDir()
			if err := s.Save(dir); err != nil {
				t.Fatal(err)
			}
			s2, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			for i := 61; i < 70; i++ {
				for _, m := range s.Models {
					exact := without(recs[i].Outputs, m.Name)
					a, err1 := s.Predict(m.Name, exact)
					b, err2 := s2.Predict(m.Name, exact)
					if err1 != nil || err2 != nil {
						t.Fatalf("predict %s: %v / %v", m.Name, err1, err2)
					}
					if !reflect.DeepEqual(a, b) {
						t.Fatalf("%s: prediction differs after save/load:\n%+v\n%+v", m.Name, a, b)
					}
					if a.Confidence <= 0 {
						t.Errorf("%s: no confidence from the saved evaluation", m.Name)
					}
					last := recs[i-1].Outputs[m.Name]
					a, err1 = s.PredictTemporal(m.Name, exact, last, 1)
					b, err2 = s2.PredictTemporal(m.Name, exact, last, 1)
					if err1 != nil || err2 != nil {
						t.Fatalf("predict temporal %s: %v / %v", m.Name, err1, err2)
					}
					if !reflect.DeepEqual(a, b) {
						t.Fatalf("%s: temporal prediction differs after save/load:\n%+v\n%+v", m.Name, a, b)
					}
				}
			}
			if s.PairAccuracy("box", "cnt") != s2.PairAccuracy("box", "cnt") || s2.EnsembleAccuracy("cnt", []string{"box", "lin"}) == 0 {
				t.Error("measured accuracies not restored")
			}
			// Saving over an existing set replaces it.
			if err := s2.Save(dir); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestTrainingIsDeterministic(t *testing.T) {
	h, recs := allFamiliesTrace(60, 2)
	o := TrainOptions{Epochs: 2, Seed: 3, Workers: 1}
	a := mustTrain(t, h, recs, o)
	o.Workers = 3
	b := mustTrain(t, h, recs, o)
	pa, pb := a.orderedParams(), b.orderedParams()
	for i := range pa {
		if !reflect.DeepEqual(pa[i].W, pb[i].W) {
			t.Fatalf("weights %s differ between runs with the same seed", pa[i].Name)
		}
	}
	o.Seed = 4
	c := mustTrain(t, h, recs, o)
	if reflect.DeepEqual(pa[0].W, c.orderedParams()[0].W) {
		t.Error("another seed gave the same weights")
	}
}

func wantErr(t *testing.T, err error, substr string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", substr)
	}
	if !strings.Contains(err.Error(), substr) {
		t.Fatalf("error %q does not contain %q", err, substr)
	}
}

func writeGzip(t *testing.T, path string, lines ...string) {
	t.Helper()
	var b bytes.Buffer
	gz := gzip.NewWriter(&b)
	for _, l := range lines {
		gz.Write([]byte(l + "\n"))
	}
	gz.Close()
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestBadTraces(t *testing.T) {
	dir := t.TempDir()
	h, recs := allFamiliesTrace(10, 1)

	_, err := Train(h, nil, TrainOptions{})
	wantErr(t, err, "no training frames")

	_, err = Train(TraceHeader{Version: 1, Models: h.Models[:1]}, recs, TrainOptions{})
	wantErr(t, err, "at least two models")

	hb, _ := json.Marshal(h)
	empty := filepath.Join(dir, "empty.trace.gz")
	writeGzip(t, empty, string(hb))
	_, _, err = ReadTrace(empty)
	wantErr(t, err, "holds no frames")

	h2 := h
	h2.Version = 2
	hb2, _ := json.Marshal(h2)
	v2 := filepath.Join(dir, "v2.trace.gz")
	writeGzip(t, v2, string(hb2))
	_, _, err = ReadTrace(v2)
	wantErr(t, err, "version 2 is not supported")
	_, err = Train(h2, recs, TrainOptions{})
	wantErr(t, err, "version 2 is not supported")

	notGzip := filepath.Join(dir, "plain.trace.gz")
	os.WriteFile(notGzip, []byte("hello"), 0o644)
	_, _, err = ReadTrace(notGzip)
	wantErr(t, err, "not an mlink trace")

	// A model whose output does not fit its declared classes.
	bad := make([]*TraceRecord, len(recs))
	for i, r := range recs {
		c := *r
		c.Outputs = without(r.Outputs, "")
		c.Outputs["cls"] = &pipeline.Output{Model: "cls", Type: pipeline.TypeClass, Value: []float64{1, 0}}
		bad[i] = &c
	}
	_, err = Train(h, bad, TrainOptions{Epochs: 1})
	wantErr(t, err, "mismatched dimensions")

	_, err = Train(h, recs, TrainOptions{SeqDecoder: "lstm", BatchSize: -1})
	wantErr(t, err, "seq decoder")
	wantErr(t, err, "batch size")
}

func TestBadPredictInputs(t *testing.T) {
	h, recs := allFamiliesTrace(40, 1)
	s := mustTrain(t, h, recs, TrainOptions{Epochs: 1})
	_, err := s.Predict("ghost", recs[0].Outputs)
	wantErr(t, err, `unknown target model "ghost"`)

	_, err = s.Predict("cnt", map[string]*pipeline.Output{"cls": {Model: "cls", Type: pipeline.TypeClass, Value: []float64{0.5, 0.5}}})
	wantErr(t, err, "mismatched dimensions")

	_, err = s.Predict("cnt", map[string]*pipeline.Output{"cls": {Error: "model crashed"}, "other": countOut("other", 1)})
	if !errors.Is(err, ErrNoSource) {
		t.Fatalf("no usable source: %v, want ErrNoSource", err)
	}
	_, err = s.PredictTemporal("cnt", nil, nil, 1)
	wantErr(t, err, "no usable last output")
	// The self-temporal link needs no source at all.
	if _, err := s.PredictTemporal("cnt", nil, countOut("cnt", 2), 3); err != nil {
		t.Fatal(err)
	}
	err = s.CheckTrace(TraceHeader{Models: h.Models[:3]})
	wantErr(t, err, `model "lin" of the links is not in the trace`)
	hm := h
	hm.Models = append([]TraceModel(nil), h.Models...)
	hm.Models[0].Type = pipeline.TypeScalar
	wantErr(t, s.CheckTrace(hm), "trained on count outputs")
}

func TestBadLinkFiles(t *testing.T) {
	h, recs := allFamiliesTrace(30, 1)
	s := mustTrain(t, h, recs, TrainOptions{Epochs: 1})
	save := func(t *testing.T) string {
		dir := t.TempDir()
		if err := s.Save(dir); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	editManifest := func(t *testing.T, dir string, edit func(m map[string]any)) {
		p := filepath.Join(dir, manifestFile)
		b, _ := os.ReadFile(p)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		b, _ = json.Marshal(m)
		os.WriteFile(p, b, 0o644)
	}
	cases := []struct {
		name   string
		break_ func(t *testing.T, dir string)
		want   string
	}{
		{"missing directory", func(t *testing.T, dir string) { os.RemoveAll(dir) }, "not a links directory"},
		{"corrupt weights", func(t *testing.T, dir string) {
			p := filepath.Join(dir, weightsFile)
			b, _ := os.ReadFile(p)
			b[len(b)/2] ^= 0xff
			os.WriteFile(p, b, 0o644)
		}, "corrupt (checksum mismatch)"},
		{"truncated manifest", func(t *testing.T, dir string) {
			p := filepath.Join(dir, manifestFile)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)/2], 0o644)
		}, "is corrupt"},
		{"version mismatch", func(t *testing.T, dir string) {
			editManifest(t, dir, func(m map[string]any) { m["version"] = 2 })
		}, "format version 2 is not supported"},
		{"unknown model in a link", func(t *testing.T, dir string) {
			editManifest(t, dir, func(m map[string]any) {
				m["links"].([]any)[0].(map[string]any)["source"] = "ghost"
			})
		}, `unknown model "ghost"`},
		{"mismatched weight shape", func(t *testing.T, dir string) {
			editManifest(t, dir, func(m map[string]any) {
				p := m["links"].([]any)[0].(map[string]any)["params"].([]any)[0].(map[string]any)
				p["rows"] = p["rows"].(float64) + 1
			})
		}, "mismatched dimensions"},
		{"mismatched model dimensions", func(t *testing.T, dir string) {
			editManifest(t, dir, func(m map[string]any) {
				m["models"].([]any)[1].(map[string]any)["dim"] = 5
			})
		}, "mismatched dimensions"},
		{"options give another architecture", func(t *testing.T, dir string) {
			editManifest(t, dir, func(m map[string]any) {
				m["options"].(map[string]any)["decoder_units"] = 8
			})
		}, "mismatched dimensions"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := save(t)
			c.break_(t, dir)
			_, err := Load(dir)
			wantErr(t, err, c.want)
		})
	}
}

func TestMarshalUnmarshalPredictIdentical(t *testing.T) {
	h, recs := allFamiliesTrace(80, 6)
	s := mustTrain(t, h, recs[:40], TrainOptions{Epochs: 2, Seed: 3, NoTemporal: true})
	s.Evaluate(recs[40:])
	blob, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	s2, err := UnmarshalSet(blob)
	if err != nil {
		t.Fatal(err)
	}
	for i := 41; i < 50; i++ {
		for _, m := range s.Models {
			exact := without(recs[i].Outputs, m.Name)
			a, err1 := s.Predict(m.Name, exact)
			b, err2 := s2.Predict(m.Name, exact)
			if err1 != nil || err2 != nil || !reflect.DeepEqual(a, b) {
				t.Fatalf("%s: prediction differs after marshal/unmarshal (%v, %v):\n%+v\n%+v", m.Name, err1, err2, a, b)
			}
		}
	}
	if _, err := UnmarshalSet([]byte("not a links blob")); err == nil {
		t.Error("a corrupt blob must be an error")
	}
	if _, err := UnmarshalSet(blob[:len(blob)/2]); err == nil {
		t.Error("a truncated blob must be an error")
	}
}
