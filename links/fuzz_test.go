package links

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/gob"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand"
	"strings"
	"testing"

	"github.com/mlink-project/mlink/pipeline"
)

// Fuzz targets for the decoders of traces (files) and link sets (files, and
// blobs from the JetStream key-value bucket). `go test` replays the seeds
// and testdata/fuzz/<target>/; `make fuzz` fuzzes each for a bounded time.

func gzipped(data []byte) []byte {
	var b bytes.Buffer
	gz := gzip.NewWriter(&b)
	gz.Write(data)
	gz.Close()
	return b.Bytes()
}

// traceBytes writes a trace with TraceWriter and returns it uncompressed.
func traceBytes(t testing.TB, h TraceHeader, recs []*TraceRecord) []byte {
	b := gzTraceBytes(t, h, recs)
	gz, err := gzip.NewReader(b)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(gz)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// gzTraceBytes writes a trace with TraceWriter, as a trace file holds it.
func gzTraceBytes(t testing.TB, h TraceHeader, recs []*TraceRecord) *bytes.Buffer {
	t.Helper()
	var b bytes.Buffer
	w, err := NewTraceWriter(&b, h)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return &b
}

const maxFuzzRecords = 1000

// readAll reads a trace the way ReadTrace does, without a file.
func readAll(in []byte) (TraceHeader, []*TraceRecord, error) {
	r, err := NewTraceReader(bytes.NewReader(in))
	if err != nil {
		return TraceHeader{}, nil, err
	}
	defer r.Close()
	var recs []*TraceRecord
	for len(recs) < maxFuzzRecords {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return r.Header(), recs, err
		}
		recs = append(recs, rec)
	}
	return r.Header(), recs, nil
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("decoded value does not encode: %v", err)
	}
	return string(b)
}

// FuzzTraceReader: a trace (gzip-compressed by the harness unless raw) is
// either rejected with an error saying what is wrong, or has a header of
// the right format and version with models; every record read has no
// null output, and the header and records re-encode to a trace that reads
// back identically.
func FuzzTraceReader(f *testing.F) {
	h, recs := allFamiliesTrace(3, 1)
	good := traceBytes(f, h, recs)
	f.Add(good, false)
	f.Add(gzipped(good), true)
	lines := bytes.SplitAfter(good, []byte("\n"))
	f.Add(lines[0], false) // a header alone
	f.Add(append(append([]byte{}, lines[0]...), `{"camera":"cam","seq":1,"outputs":{"cnt":null}}`...), false)
	f.Add(append(append([]byte{}, lines[0]...), `{"camera":"cam","seq":1,"time":"x"}`...), false)
	f.Add([]byte(`{"format":"mlink-trace","version":1,"models":[]}`), false)
	f.Add([]byte(`{"format":"mlink-trace","version":2,"models":[{"name":"a","type":"count"}]}`), false)
	f.Add([]byte(`{"format":"mlink-trace","version":1,"models":[{"name":"a"}]} {} {"outputs":{}}[]`), false)
	f.Add([]byte("hello"), true)
	f.Add(gzipped(nil), true)
	f.Add(append(gzipped(good), gzipped(good)...), true) // two gzip members

	f.Fuzz(func(t *testing.T, data []byte, raw bool) {
		in := data
		if !raw {
			in = gzipped(data)
		}
		hd, recs, err := readAll(in)
		if err != nil {
			if !strings.Contains(err.Error(), "trace") {
				t.Fatalf("error does not say it is about a trace: %v", err)
			}
			if hd.Format == "" && len(recs) > 0 {
				t.Fatal("records without a header")
			}
			if len(recs) == 0 {
				return
			}
			// Records before a bad one are still good: check them.
		}
		if hd.Format != traceFormat || hd.Version != TraceVersion || len(hd.Models) == 0 {
			t.Fatalf("accepted header %+v", hd)
		}
		for i, r := range recs {
			for name, o := range r.Outputs {
				if o == nil {
					t.Fatalf("record %d: output %q is null", i, name)
				}
			}
		}
		again := traceBytes(t, hd, recs)
		hd2, recs2, err := readAll(gzipped(again))
		if err != nil {
			t.Fatalf("re-encoded trace does not read: %v", err)
		}
		if hd.CreatedAt.IsZero() {
			hd2.CreatedAt = hd.CreatedAt // the writer stamps a missing time
		}
		if a, b := mustJSON(t, hd), mustJSON(t, hd2); a != b {
			t.Fatalf("header changed:\n%s\n%s", a, b)
		}
		if a, b := mustJSON(t, recs), mustJSON(t, recs2); a != b {
			t.Fatalf("records changed:\n%s\n%s", a, b)
		}
	})
}

// fuzzSets are small trained link sets: every family, both decoders,
// temporal links, an evaluation.
func fuzzSets(t testing.TB) []*Set {
	h, recs := allFamiliesTrace(24, 3)
	var out []*Set
	for _, o := range []TrainOptions{
		{Epochs: 1, Seed: 1, Hidden: 1, DecoderUnits: 2, AttentionUnits: 2, MaxSeqLen: 3, NoTemporal: true},
		{Epochs: 1, Seed: 2, Hidden: 1, DecoderUnits: 2, AttentionUnits: 2, MaxSeqLen: 2, SeqDecoder: DecoderAttention, EvalAges: []int{1, 2}},
	} {
		o.Workers = 1
		s := mustTrain(t, h, recs[:16], o)
		s.Evaluate(recs[16:])
		out = append(out, s)
	}
	// Two count models: the smallest architecture.
	models := []TraceModel{{Name: "a", Type: pipeline.TypeCount}, {Name: "b", Type: pipeline.TypeCount}}
	rng := rand.New(rand.NewSource(1))
	h2, recs2 := makeTrace(models, 12, func(int) map[string]*pipeline.Output {
		k := float64(rng.Intn(3))
		return map[string]*pipeline.Output{"a": countOut("a", k), "b": countOut("b", k+1)}
	})
	out = append(out, mustTrain(t, h2, recs2, TrainOptions{Epochs: 1, Seed: 1, Hidden: 1, NoTemporal: true, Workers: 1}))
	return out
}

func encodeSet(t testing.TB, s *Set) map[string][]byte {
	files, err := s.encodeFiles()
	if err != nil {
		t.Fatalf("loaded set does not encode: %v", err)
	}
	return files
}

func loadFiles(files map[string][]byte) (*Set, error) {
	return decodeFiles("fuzz", func(name string) ([]byte, error) {
		d, ok := files[name]
		if !ok {
			return nil, errors.New(name + ": file does not exist")
		}
		return d, nil
	})
}

// fixChecksum rewrites the manifest's weights checksum to match the
// weights, when the manifest is a JSON object: the fuzzer then gets past the
// checksum to the architecture and weight checks.
func fixChecksum(manifest, weights []byte) []byte {
	var m map[string]any
	if json.Unmarshal(manifest, &m) != nil || m == nil {
		return manifest
	}
	w, _ := m["weights"].(map[string]any)
	if w == nil {
		w = map[string]any{}
		m["weights"] = w
	}
	sum := sha256.Sum256(weights)
	w["sha256"] = hex.EncodeToString(sum[:])
	b, err := json.Marshal(m)
	if err != nil {
		return manifest
	}
	return b
}

// checkLoaded: a loaded set has 2..64 models, re-encodes to files that
// load to a set encoding to the same files, and predicts every model from
// the others without panicking.
func checkLoaded(t *testing.T, s *Set) {
	if n := len(s.Models); n < 2 || n > 64 {
		t.Fatalf("loaded a set of %d models", n)
	}
	files := encodeSet(t, s)
	s2, err := loadFiles(files)
	if err != nil {
		t.Fatalf("re-encoded set does not load: %v", err)
	}
	files2 := encodeSet(t, s2)
	for name, b := range files {
		if !bytes.Equal(b, files2[name]) {
			t.Fatalf("%s changed through save and load:\n%.2000s\n%.2000s", name, b, files2[name])
		}
	}
	if len(files) != len(files2) {
		t.Fatalf("files %d then %d", len(files), len(files2))
	}
	weights := 0
	for _, p := range s.orderedParams() {
		weights += len(p.W)
	}
	if weights > 200_000 {
		return // predicting would be slow: the shape checks above suffice
	}
	exact := map[string]*pipeline.Output{}
	for _, m := range s.Models {
		o := &pipeline.Output{Model: m.Name, Type: m.Type, Kind: m.Type.Kind(), Value: make([]float64, m.Dim), Source: pipeline.SourceExact}
		if m.Seq() {
			o.Value[0] = 1
			o.Boxes = []pipeline.Box{{X1: 0.1, Y1: 0.1, X2: 0.5, Y2: 0.5, Score: 0.9}}
		}
		exact[m.Name] = o
	}
	for _, m := range s.Models {
		others := without(exact, m.Name)
		if out, err := s.Predict(m.Name, others); err == nil && out.Model != m.Name && out.Model != "" {
			t.Fatalf("predicted %s as %s", m.Name, out.Model)
		}
		if !s.Options.NoTemporal {
			s.PredictTemporal(m.Name, others, exact[m.Name], 2)
		}
	}
}

// FuzzLoadLinks: the files of a links directory (manifest, weights,
// evaluation; fixed marks a manifest whose checksum the harness makes
// match the weights) either load to a usable set (checkLoaded) or give an
// error; no architecture is built beyond what the weights file can hold.
func FuzzLoadLinks(f *testing.F) {
	for _, s := range fuzzSets(f) {
		files := encodeSet(f, s)
		f.Add(files[manifestFile], files[weightsFile], files[evaluationFile], false)
		f.Add(files[manifestFile], files[weightsFile], []byte(nil), true)
		// A manifest asking for a huge architecture: refused before it
		// is allocated.
		var m map[string]any
		json.Unmarshal(files[manifestFile], &m)
		m["options"].(map[string]any)["hidden"] = 1 << 40
		huge, _ := json.Marshal(m)
		f.Add(huge, files[weightsFile], []byte(nil), true)
		m["options"].(map[string]any)["hidden"] = 4096
		big, _ := json.Marshal(m)
		f.Add(big, files[weightsFile], []byte(nil), true)
	}
	var nan bytes.Buffer
	gob.NewEncoder(&nan).Encode([]float64{1, 2, 3})
	f.Add([]byte(`{"format":"mlink-links","version":1,"weights":{"file":"/dev/zero"}}`), nan.Bytes(), []byte(nil), true)
	f.Add([]byte(`{"format":"mlink-links","version":1}`), []byte{}, []byte(`{}`), true)

	f.Fuzz(func(t *testing.T, manifest, weights, evaluation []byte, fixed bool) {
		if fixed {
			manifest = fixChecksum(manifest, weights)
		}
		files := map[string][]byte{manifestFile: manifest, weightsFile: weights}
		if evaluation != nil {
			files[evaluationFile] = evaluation
		}
		s, err := loadFiles(files)
		if err != nil {
			if s != nil || !strings.HasPrefix(err.Error(), "load links") {
				t.Fatalf("error %q (set %v)", err, s != nil)
			}
			return
		}
		checkLoaded(t, s)
	})
}

// FuzzUnmarshalSet: a links blob from the key-value bucket either decodes
// to a usable set (checkLoaded) or gives an error.
func FuzzUnmarshalSet(f *testing.F) {
	for _, s := range fuzzSets(f) {
		b, err := s.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	var b bytes.Buffer
	gob.NewEncoder(&b).Encode(map[string][]byte{manifestFile: []byte("{}")})
	f.Add(b.Bytes())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := UnmarshalSet(data)
		if err != nil {
			if s != nil || !strings.HasPrefix(err.Error(), "load links") {
				t.Fatalf("error %q (set %v)", err, s != nil)
			}
			return
		}
		checkLoaded(t, s)
	})
}

// The bugs the fuzzers found, pinned by name (their inputs are also in
// testdata/fuzz).

// A null output in a trace record made `mlink bench --trace` dereference
// nil in the replay.
func TestTraceRejectsNullOutputs(t *testing.T) {
	h, recs := allFamiliesTrace(2, 1)
	lines := bytes.SplitAfter(traceBytes(t, h, recs), []byte("\n"))
	in := append(append(bytes.Clone(lines[0]), lines[1]...), `{"camera":"cam","seq":2,"outputs":{"cnt":null}}`...)
	_, got, err := readAll(gzipped(in))
	wantErr(t, err, `trace record 2 (cam/2): output "cnt" is null`)
	if len(got) != 1 {
		t.Errorf("%d good records before the bad one", len(got))
	}
}

// A manifest's options sized the architecture unchecked: hidden 2^40 made
// Load ask for 24 TB (a fatal out of memory), a few thousand hidden units
// gigabytes; a weights file named /dev/zero was read forever.
func TestLoadRefusesHugeArchitectures(t *testing.T) {
	s := fuzzSets(t)[2]
	files := encodeSet(t, s)
	withOptions := func(key string, v any) map[string][]byte {
		var m map[string]any
		if err := json.Unmarshal(files[manifestFile], &m); err != nil {
			t.Fatal(err)
		}
		m["options"].(map[string]any)[key] = v
		b, _ := json.Marshal(m)
		out := map[string][]byte{manifestFile: b, weightsFile: files[weightsFile]}
		return out
	}
	_, err := loadFiles(withOptions("hidden", 1<<40))
	wantErr(t, err, "more than the limit of 268435456 weights")
	_, err = loadFiles(withOptions("min_hidden", 1<<20))
	wantErr(t, err, "the weights file has only")
	_, err = loadFiles(withOptions("hidden", -(1 << 62)))
	wantErr(t, err, "hidden, decoder and attention widths must be ≥ 1")

	var m map[string]any
	json.Unmarshal(files[manifestFile], &m)
	m["weights"].(map[string]any)["file"] = "/dev/zero"
	b, _ := json.Marshal(m)
	_, err = loadFiles(map[string][]byte{manifestFile: b})
	wantErr(t, err, `names weights file "/dev/zero", want "weights.gob"`)

	var models []any
	for i := range 65 {
		models = append(models, map[string]any{"name": fmt.Sprint("m", i), "type": "count", "dim": 1, "vec_mean": []float64{0}, "vec_std": []float64{1}, "constant": map[string]any{}})
	}
	json.Unmarshal(files[manifestFile], &m)
	m["models"] = models
	b, _ = json.Marshal(m)
	_, err = loadFiles(map[string][]byte{manifestFile: b, weightsFile: files[weightsFile]})
	wantErr(t, err, "65 models: links support at most 64")
}

// Weights that are not numbers are a corrupt file, not a set predicting NaN.
func TestLoadRefusesNonFiniteWeights(t *testing.T) {
	s := fuzzSets(t)[2]
	s.orderedParams()[1].W[0] = math.NaN()
	files := encodeSet(t, s)
	_, err := loadFiles(files)
	wantErr(t, err, "is corrupt: weight ")
	wantErr(t, err, " is NaN")
}

// Under a megabyte of gzip inflating to one huge line is refused at the
// limit, not buffered whole.
func TestTraceRefusesHugeLines(t *testing.T) {
	h, recs := allFamiliesTrace(1, 1)
	lines := bytes.SplitAfter(traceBytes(t, h, recs), []byte("\n"))
	var b bytes.Buffer
	gz, _ := gzip.NewWriterLevel(&b, gzip.BestSpeed)
	gz.Write(lines[0])
	gz.Write([]byte(`{"camera":"`))
	zeros := bytes.Repeat([]byte("a"), 1<<20)
	for range MaxTraceLine>>20 + 2 {
		gz.Write(zeros)
	}
	gz.Write([]byte(`"}` + "\n"))
	gz.Close()
	if b.Len() > 1<<20 {
		t.Fatalf("the bomb is %d bytes", b.Len())
	}
	_, _, err := readAll(b.Bytes())
	wantErr(t, err, "trace record 1: longer than the limit of 64 MiB")
}

// Load sizes an architecture with a counting build before building it:
// the count is what the real build allocates.
func TestArchitectureSizeMatchesBuild(t *testing.T) {
	for _, s := range fuzzSets(t) {
		var size weightCount
		newSet(s.Models, s.Options).buildWith(alloc{count: &size})
		n := 0
		for _, p := range s.orderedParams() {
			n += len(p.W)
		}
		if size.bad || size.n != int64(n) {
			t.Errorf("%s decoder: counted %d weights (bad %v), built %d", s.Options.SeqDecoder, size.n, size.bad, n)
		}
	}
}

// gob makes a map of the size a blob declares before reading an entry: 4
// KB declaring 192 million files took 11 GB. The count is read first.
func TestUnmarshalSetRefusesHugeMaps(t *testing.T) {
	blob, err := fuzzSets(t)[2].MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := UnmarshalSet(blob); err != nil {
		t.Fatalf("a real blob: %v", err)
	}
	// The type definition, then the value: length, type id, delta 0, count.
	def := int(blob[0]) + 1
	if blob[def] < 0x80 {
		t.Fatalf("value length %#x: expected a multi-byte uint", blob[def])
	}
	at := def + 1 + (256 - int(blob[def])) + 2 + 1 // type id 65 is two bytes
	if blob[at] != 2 {                             // manifest and weights: no evaluation
		t.Fatalf("entry count %d at %d, want 2", blob[at], at)
	}
	huge := append(append(bytes.Clone(blob[:at]), 0xfc, 0x0b, 0x77, 0x65, 0x69), blob[at+1:]...)
	_, err = UnmarshalSet(huge)
	wantErr(t, err, "declares 192374121 files, more than the 8 a links blob holds")
	for _, b := range [][]byte{{0x80}, {0x05, 0xff}, blob[:def+2], {}} {
		if _, err := UnmarshalSet(b); err == nil {
			t.Errorf("%x: no error", b)
		}
	}
}
