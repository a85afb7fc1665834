package links

import (
	"bytes"
	"crypto/sha256"
	"encoding/gob"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"
)

// A saved link set is a directory:
//
//	manifest.json    format, version, options, models (with normalisation
//	                 and baselines), every link and ensemble with the names
//	                 and shapes of its weights, the weights file's SHA-256
//	weights.gob      all weights, one gob-encoded []float64 in manifest order
//	evaluation.json  the last Evaluation, if any (Confidence, scheduler)
//
// Load rebuilds the architecture from the manifest and checks every shape,
// so a file from another configuration fails with a clear error, never a
// silently wrong prediction.
const (
	LinksFormat  = "mlink-links"
	LinksVersion = 1

	manifestFile   = "manifest.json"
	weightsFile    = "weights.gob"
	evaluationFile = "evaluation.json"
)

type manifest struct {
	Format       string       `json:"format"`
	Version      int          `json:"version"`
	CreatedAt    time.Time    `json:"created_at"`
	TrainFrames  int          `json:"train_frames"`
	TrainSeconds float64      `json:"train_seconds"`
	Options      TrainOptions `json:"options"`
	Models       []*ModelInfo `json:"models"`
	Links        []linkEntry  `json:"links"`
	Ensembles    []ensEntry   `json:"ensembles"`
	Weights      weightsEntry `json:"weights"`
}

type linkEntry struct {
	Source   string       `json:"source,omitempty"`
	Target   string       `json:"target"`
	Family   string       `json:"family"`
	Temporal bool         `json:"temporal,omitempty"`
	Params   []paramEntry `json:"params"`
}

type paramEntry struct {
	Name string `json:"name"`
	Rows int    `json:"rows"`
	Cols int    `json:"cols"`
}

type ensEntry struct {
	Target   string   `json:"target"`
	Temporal bool     `json:"temporal,omitempty"`
	Sources  []string `json:"sources"`
}

type weightsEntry struct {
	File   string `json:"file"`
	SHA256 string `json:"sha256"`
	Values int    `json:"values"`
}

// orderedParams lists every weight of the set in manifest order.
func (s *Set) orderedParams() []*Param {
	var ps []*Param
	for _, l := range s.allLinks() {
		ps = append(ps, l.allParams()...)
	}
	for _, e := range s.ensembles() {
		ps = append(ps, e.W)
	}
	return ps
}

// Save writes the set to dir (created if needed). Files are written to
// temporary names and renamed, so a reader never sees half a set.
func (s *Set) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save links: %w", err)
	}
	files, err := s.encodeFiles()
	if err != nil {
		return err
	}
	if _, ok := files[evaluationFile]; !ok {
		_ = os.Remove(filepath.Join(dir, evaluationFile))
	}
	// The weights go first: a manifest never names weights not yet written.
	for _, name := range []string{weightsFile, manifestFile, evaluationFile} {
		data, ok := files[name]
		if !ok {
			continue
		}
		if err := writeAtomic(filepath.Join(dir, name), data); err != nil {
			return fmt.Errorf("save links: %w", err)
		}
	}
	return nil
}

// MarshalBinary encodes the whole set (manifest, weights, evaluation) as one
// blob: what the scheduler publishes in a JetStream key-value bucket for
// predictor workers in other processes.
func (s *Set) MarshalBinary() ([]byte, error) {
	files, err := s.encodeFiles()
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := gob.NewEncoder(&b).Encode(files); err != nil {
		return nil, fmt.Errorf("encode links: %w", err)
	}
	return b.Bytes(), nil
}

// UnmarshalSet decodes a blob written by MarshalBinary, with every check
// Load makes.
func UnmarshalSet(data []byte) (*Set, error) {
	if err := checkBlobEntries(data); err != nil {
		return nil, fmt.Errorf("load links: corrupt links blob: %w", err)
	}
	var files map[string][]byte
	if err := gob.NewDecoder(bytes.NewReader(data)).Decode(&files); err != nil {
		return nil, fmt.Errorf("load links: corrupt links blob: %w", err)
	}
	return decodeFiles("links blob", func(name string) ([]byte, error) {
		d, ok := files[name]
		if !ok {
			return nil, fmt.Errorf("%s: %w", name, os.ErrNotExist)
		}
		return d, nil
	})
}

// maxBlobEntries bounds the files of a links blob (MarshalBinary writes
// at most three).
const maxBlobEntries = 8

// checkBlobEntries reads the number of files a links blob declares from
// its gob encoding, without decoding it: gob makes a map of the declared
// size before it reads an entry, so 4 KB declaring 2^28 entries took 11 GB.
// A blob is one gob type definition (the map type) and one value: a
// message length, the type id, a zero field delta, the entry count.
func checkBlobEntries(data []byte) error {
	r := data
	next := func() (uint64, bool) {
		if len(r) == 0 {
			return 0, false
		}
		b := r[0]
		if b < 0x80 {
			r = r[1:]
			return uint64(b), true
		}
		n := 256 - int(b) // gob: a negated byte count, then the bytes
		if n > 8 || len(r) < 1+n {
			return 0, false
		}
		var u uint64
		for _, c := range r[1 : 1+n] {
			u = u<<8 | uint64(c)
		}
		r = r[1+n:]
		return u, true
	}
	n, ok := next() // the type definition
	if !ok || n > uint64(len(r)) {
		return errors.New("no gob type definition")
	}
	r = r[n:]
	n, ok = next() // the value
	if !ok || n > uint64(len(r)) {
		return errors.New("no gob value")
	}
	r = r[:n]
	if id, ok := next(); !ok || id&1 == 1 { // a type id; odd: negative, a definition
		return errors.New("no gob value after the type definition")
	}
	if delta, ok := next(); !ok || delta != 0 {
		return errors.New("not a gob map value")
	}
	count, ok := next()
	if !ok || count > maxBlobEntries {
		return fmt.Errorf("declares %d files, more than the %d a links blob holds", count, maxBlobEntries)
	}
	return nil
}

// encodeFiles renders the set as the files of a links directory.
func (s *Set) encodeFiles() (map[string][]byte, error) {
	m := manifest{Format: LinksFormat, Version: LinksVersion, CreatedAt: s.CreatedAt, TrainFrames: s.TrainFrames,
		TrainSeconds: s.TrainSeconds, Options: s.Options, Models: s.Models}
	for _, l := range s.allLinks() {
		le := linkEntry{Source: l.Source, Target: l.Target, Family: l.Family, Temporal: l.Temporal}
		for _, p := range l.allParams() {
			le.Params = append(le.Params, paramEntry{p.Name, p.Rows, p.Cols})
		}
		m.Links = append(m.Links, le)
	}
	for _, e := range s.ensembles() {
		m.Ensembles = append(m.Ensembles, ensEntry{Target: e.Target, Temporal: e.Temporal, Sources: e.Sources})
	}
	var flat []float64
	for _, p := range s.orderedParams() {
		flat = append(flat, p.W...)
	}
	var wb bytes.Buffer
	if err := gob.NewEncoder(&wb).Encode(flat); err != nil {
		return nil, fmt.Errorf("save links: encode weights: %w", err)
	}
	sum := sha256.Sum256(wb.Bytes())
	m.Weights = weightsEntry{File: weightsFile, SHA256: hex.EncodeToString(sum[:]), Values: len(flat)}
	mb, err := json.MarshalIndent(&m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("save links: %w", err)
	}
	files := map[string][]byte{weightsFile: wb.Bytes(), manifestFile: mb}
	if ev := s.Evaluation(); ev != nil {
		eb, err := json.Marshal(ev)
		if err != nil {
			return nil, fmt.Errorf("save links: %w", err)
		}
		files[evaluationFile] = eb
	}
	return files, nil
}

func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Load reads a set saved by Save.
func Load(dir string) (*Set, error) {
	return decodeFiles(dir, func(name string) ([]byte, error) { return os.ReadFile(filepath.Join(dir, name)) })
}

// decodeFiles rebuilds a set from the files of a links directory, read by
// read; where names the source in errors.
func decodeFiles(where string, read func(name string) ([]byte, error)) (*Set, error) {
	mb, err := read(manifestFile)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("load links: %s has no %s: not a links directory (train one with 'mlink links train')", where, manifestFile)
		}
		return nil, fmt.Errorf("load links: %w", err)
	}
	var m manifest
	if err := json.Unmarshal(mb, &m); err != nil {
		return nil, fmt.Errorf("load links: %s is corrupt: %w", filepath.Join(where, manifestFile), err)
	}
	if m.Format != LinksFormat {
		return nil, fmt.Errorf("load links: %s is not an mlink links manifest (format %q)", where, m.Format)
	}
	if m.Version != LinksVersion {
		return nil, fmt.Errorf("load links: format version %d is not supported (this mlink reads version %d): retrain the links", m.Version, LinksVersion)
	}
	// The weights come first: their size bounds the architecture the
	// manifest may describe (gob spends at least a byte per weight). They
	// are always in weights.gob: a manifest naming another file (/dev/zero,
	// ../x) is not read.
	if m.Weights.File != weightsFile {
		return nil, fmt.Errorf("load links: %s names weights file %q, want %q", filepath.Join(where, manifestFile), m.Weights.File, weightsFile)
	}
	wb, err := read(weightsFile)
	if err != nil {
		return nil, fmt.Errorf("load links: %w", err)
	}
	sum := sha256.Sum256(wb)
	if hex.EncodeToString(sum[:]) != m.Weights.SHA256 {
		return nil, fmt.Errorf("load links: %s is corrupt (checksum mismatch): re-save or retrain the links", filepath.Join(where, m.Weights.File))
	}
	s, err := setFromManifest(&m, len(wb))
	if err != nil {
		return nil, fmt.Errorf("load links %s: %w", where, err)
	}
	var flat []float64
	if err := gob.NewDecoder(bytes.NewReader(wb)).Decode(&flat); err != nil {
		return nil, fmt.Errorf("load links: %s is corrupt: %w", filepath.Join(where, m.Weights.File), err)
	}
	for i, w := range flat {
		if math.IsNaN(w) || math.IsInf(w, 0) {
			return nil, fmt.Errorf("load links: %s is corrupt: weight %d is %v", filepath.Join(where, m.Weights.File), i, w)
		}
	}
	ps := s.orderedParams()
	need := 0
	for _, p := range ps {
		need += len(p.W)
	}
	if len(flat) != need || m.Weights.Values != need {
		return nil, fmt.Errorf("load links: %d weights stored, the architecture needs %d (mismatched dimensions)", len(flat), need)
	}
	off := 0
	for _, p := range ps {
		copy(p.W, flat[off:off+len(p.W)])
		off += len(p.W)
	}
	if eb, err := read(evaluationFile); err == nil {
		var ev Evaluation
		if err := json.Unmarshal(eb, &ev); err != nil {
			return nil, fmt.Errorf("load links: %s is corrupt: %w", filepath.Join(where, evaluationFile), err)
		}
		s.SetEvaluation(&ev)
	}
	return s, nil
}

// MaxLinkWeights bounds the weights of a link set that Load accepts: 2^28
// float64s, 2 GiB.
const MaxLinkWeights = 1 << 28

// setFromManifest rebuilds the architecture and checks it against the
// manifest's links and shapes. weightBytes, the size of the weights file,
// bounds the architecture: it is sized before it is built.
func setFromManifest(m *manifest, weightBytes int) (*Set, error) {
	o := m.Options
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("options: %w", err)
	}
	if len(m.Models) < 2 {
		return nil, fmt.Errorf("%d models: links need at least two", len(m.Models))
	}
	if len(m.Models) > 64 {
		return nil, fmt.Errorf("%d models: links support at most 64", len(m.Models))
	}
	names := map[string]bool{}
	for _, mi := range m.Models {
		if err := mi.check(); err != nil {
			return nil, err
		}
		if names[mi.Name] {
			return nil, fmt.Errorf("model %q listed twice", mi.Name)
		}
		names[mi.Name] = true
	}
	var size weightCount
	newSet(m.Models, o).buildWith(alloc{count: &size})
	switch {
	case size.bad || size.n > MaxLinkWeights:
		return nil, fmt.Errorf("the options and models describe more than the limit of %d weights (mismatched architecture)", MaxLinkWeights)
	case size.n > int64(weightBytes):
		return nil, fmt.Errorf("the options and models describe %d weights, the weights file has only %d bytes (mismatched architecture)", size.n, weightBytes)
	}
	s := newSet(m.Models, o)
	s.build()
	s.TrainFrames, s.TrainSeconds, s.CreatedAt = m.TrainFrames, m.TrainSeconds, m.CreatedAt
	built := s.allLinks()
	for _, le := range m.Links {
		for _, n := range []string{le.Source, le.Target} {
			if n != "" && !names[n] {
				return nil, fmt.Errorf("link %s→%s: unknown model %q (the manifest lists %s)", le.Source, le.Target, n, s.modelList())
			}
		}
	}
	if len(m.Links) != len(built) {
		return nil, fmt.Errorf("%d links stored, the options and models give %d (mismatched architecture)", len(m.Links), len(built))
	}
	for i, le := range m.Links {
		l := built[i]
		if le.Source != l.Source || le.Target != l.Target || le.Temporal != l.Temporal {
			return nil, fmt.Errorf("link %d is %s→%s, expected %s: the manifest does not match its models", i, le.Source, le.Target, l.key())
		}
		ps := l.allParams()
		if len(le.Params) != len(ps) {
			return nil, fmt.Errorf("link %s: %d weight tensors stored, the architecture has %d (mismatched dimensions)", l.key(), len(le.Params), len(ps))
		}
		for k, pe := range le.Params {
			p := ps[k]
			if pe.Name != p.Name || pe.Rows != p.Rows || pe.Cols != p.Cols {
				return nil, fmt.Errorf("link %s: weight %s is %d×%d, the architecture needs %s %d×%d (mismatched dimensions)", l.key(), pe.Name, pe.Rows, pe.Cols, p.Name, p.Rows, p.Cols)
			}
		}
	}
	ens := s.ensembles()
	if len(m.Ensembles) != len(ens) {
		return nil, fmt.Errorf("%d ensembles stored, expected %d", len(m.Ensembles), len(ens))
	}
	for i, ee := range m.Ensembles {
		if ee.Target != ens[i].Target || !sameSet(ee.Sources, ens[i].Sources) {
			return nil, fmt.Errorf("ensemble %d (%s) does not match the models", i, ee.Target)
		}
	}
	return s, nil
}

// check validates a model's description and normalisation.
func (mi *ModelInfo) check() error {
	if mi.Name == "" {
		return errors.New("a model has no name")
	}
	if !mi.Type.Valid() {
		return fmt.Errorf("model %q: unknown output type %q", mi.Name, mi.Type)
	}
	if mi.Dim < 1 || len(mi.VecMean) != mi.Dim || len(mi.VecStd) != mi.Dim {
		return fmt.Errorf("model %q: vector view of %d values with %d/%d normalisation values (mismatched dimensions)", mi.Name, mi.Dim, len(mi.VecMean), len(mi.VecStd))
	}
	if mi.Type == "class" && len(mi.Classes) > 0 && len(mi.Classes) != mi.Dim {
		return fmt.Errorf("model %q: %d classes for %d values (mismatched dimensions)", mi.Name, len(mi.Classes), mi.Dim)
	}
	if mi.Seq() && (len(mi.ElemMean) != ElemDim || len(mi.ElemStd) != ElemDim || mi.MaxCount < 1) {
		return fmt.Errorf("model %q: sequence normalisation needs %d values (mismatched dimensions)", mi.Name, ElemDim)
	}
	for _, v := range mi.VecStd {
		if !(v > 0) {
			return fmt.Errorf("model %q: invalid normalisation", mi.Name)
		}
	}
	for _, v := range mi.ElemStd {
		if !(v > 0) {
			return fmt.Errorf("model %q: invalid normalisation", mi.Name)
		}
	}
	if mi.Constant == nil {
		return fmt.Errorf("model %q: missing constant baseline", mi.Name)
	}
	return nil
}
