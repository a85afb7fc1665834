package links

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mlink-project/mlink/pipeline"
)

// TraceVersion is the version of the trace format written by TraceWriter.
//
// A trace is a gzip-compressed stream of JSON lines: the first line is a
// TraceHeader, each following line a TraceRecord (one frame of one camera,
// with every model's exact output). It is streamable: records are written
// as frames complete and read one at a time.
const TraceVersion = 1

// TraceHeader describes a trace: which models it holds and how their
// outputs are typed.
type TraceHeader struct {
	Format    string       `json:"format"` // always "mlink-trace"
	Version   int          `json:"version"`
	CreatedAt time.Time    `json:"created_at"`
	Models    []TraceModel `json:"models"`
	Cameras   []string     `json:"cameras"`
	// FPS is the cameras' nominal frame rate (0: unknown).
	FPS float64 `json:"fps,omitempty"`
	// Videos maps each camera recorded from a file to the file, so a
	// replay can look at the frames again (Reducto's difference features).
	// In a trace file, a video inside the trace's own directory tree is
	// stored relative to that directory, so that a trace committed next to
	// its video resolves on any checkout; CreateTrace writes them so and
	// OpenTrace (ReadTrace) resolves them back to paths that open.
	Videos map[string]string `json:"videos,omitempty"`
	// Source describes where the trace came from (config file, videos).
	Source string `json:"source,omitempty"`
}

// TraceModel is one model of a trace.
type TraceModel struct {
	Name    string              `json:"name"`
	Type    pipeline.OutputType `json:"type"`
	Classes []string            `json:"classes,omitempty"`
	// MemoryBytes and InferMS are the model's measured cost.
	MemoryBytes int64   `json:"memory_bytes,omitempty"`
	InferMS     float64 `json:"infer_ms,omitempty"`
}

// TraceRecord is one frame: every model's exact output and its cost.
type TraceRecord struct {
	Camera  string                      `json:"camera"`
	Seq     uint64                      `json:"seq"`
	Time    time.Time                   `json:"time"`
	Outputs map[string]*pipeline.Output `json:"outputs"`
}

const traceFormat = "mlink-trace"

// TraceWriter writes a trace.
type TraceWriter struct {
	f  io.Closer
	gz *gzip.Writer
	bw *bufio.Writer
	en *json.Encoder
	n  int
}

// CreateTrace creates a trace file and writes its header. Videos at or
// below the trace's directory are recorded relative to it (see
// TraceHeader.Videos); others as given.
func CreateTrace(path string, h TraceHeader) (*TraceWriter, error) {
	h.Videos = relativeVideos(filepath.Dir(path), h.Videos)
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create trace: %w", err)
	}
	w, err := NewTraceWriter(f, h)
	if err != nil {
		f.Close()
		return nil, err
	}
	w.f = f
	return w, nil
}

// NewTraceWriter writes a trace to w.
func NewTraceWriter(w io.Writer, h TraceHeader) (*TraceWriter, error) {
	h.Format, h.Version = traceFormat, TraceVersion
	if h.CreatedAt.IsZero() {
		h.CreatedAt = time.Now().UTC()
	}
	gz := gzip.NewWriter(w)
	bw := bufio.NewWriter(gz)
	tw := &TraceWriter{gz: gz, bw: bw, en: json.NewEncoder(bw)}
	if err := tw.en.Encode(&h); err != nil {
		return nil, fmt.Errorf("write trace header: %w", err)
	}
	return tw, nil
}

// Write appends one record.
func (w *TraceWriter) Write(r *TraceRecord) error {
	if err := w.en.Encode(r); err != nil {
		return fmt.Errorf("write trace record %s/%d: %w", r.Camera, r.Seq, err)
	}
	w.n++
	return nil
}

// Records is the number of records written.
func (w *TraceWriter) Records() int { return w.n }

// Close flushes the trace (and closes its file).
func (w *TraceWriter) Close() error {
	err := errors.Join(w.bw.Flush(), w.gz.Close())
	if w.f != nil {
		err = errors.Join(err, w.f.Close())
	}
	if err != nil {
		return fmt.Errorf("close trace: %w", err)
	}
	return nil
}

// TraceReader reads a trace one record at a time.
type TraceReader struct {
	header TraceHeader
	gz     *gzip.Reader
	lim    *lineLimit
	dec    *json.Decoder
	closer io.Closer
	line   int
}

// MaxTraceLine bounds one line of a trace (the header or a record) as
// decompressed: a record holds one frame's outputs, kilobytes; a small
// gzip file may inflate a thousandfold into one line the JSON decoder
// would buffer whole.
const MaxTraceLine = 64 << 20

// lineLimit fails reads once more than MaxTraceLine bytes were read since
// the current line began (the decoder reads ahead a little: the bound is
// approximate, never exceeded by more than a buffer).
type lineLimit struct {
	r        io.Reader
	n, start int64
}

var errLineTooLong = fmt.Errorf("longer than the limit of %d MiB", MaxTraceLine>>20)

func (l *lineLimit) Read(p []byte) (int, error) {
	if l.n-l.start > MaxTraceLine {
		return 0, errLineTooLong
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	return n, err
}

// OpenTrace opens a trace file.
func OpenTrace(path string) (*TraceReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open trace: %w", err)
	}
	r, err := NewTraceReader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("trace %s: %w", path, err)
	}
	r.closer = f
	r.header.Videos = resolveVideos(filepath.Dir(path), r.header.Videos)
	return r, nil
}

// relativeVideos returns videos with each file at or below dir made
// relative to dir. A video elsewhere (a system sample such as
// /usr/share/…/vtest.avi, or a sibling tree a clone would not reproduce)
// keeps its path: a relative path climbing out of dir would only hold for
// one layout of the file system. videos itself is not modified.
func relativeVideos(dir string, videos map[string]string) map[string]string {
	if len(videos) == 0 {
		return videos
	}
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return videos // no worse than before: the paths as given
	}
	out := make(map[string]string, len(videos))
	for cam, v := range videos {
		out[cam] = v
		abs, err := filepath.Abs(v)
		if err != nil {
			continue
		}
		rel, err := filepath.Rel(absDir, abs)
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			continue
		}
		// Slashes: the trace may be read on another OS.
		out[cam] = filepath.ToSlash(rel)
	}
	return out
}

// resolveVideos returns videos with each relative path resolved against
// dir, the trace's directory; absolute paths are kept unchanged.
func resolveVideos(dir string, videos map[string]string) map[string]string {
	if len(videos) == 0 {
		return videos
	}
	out := make(map[string]string, len(videos))
	for cam, v := range videos {
		if v != "" && !filepath.IsAbs(v) {
			v = filepath.Join(dir, filepath.FromSlash(v))
		}
		out[cam] = v
	}
	return out
}

// NewTraceReader reads a trace from r and checks its header.
func NewTraceReader(r io.Reader) (*TraceReader, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("not an mlink trace (gzip): %w", err)
	}
	tr := &TraceReader{gz: gz, lim: &lineLimit{r: bufio.NewReader(gz)}}
	tr.dec = json.NewDecoder(tr.lim)
	if err := tr.dec.Decode(&tr.header); err != nil {
		return nil, fmt.Errorf("not an mlink trace (header): %w", err)
	}
	if tr.header.Format != traceFormat {
		return nil, fmt.Errorf("not an mlink trace: format %q", tr.header.Format)
	}
	if tr.header.Version != TraceVersion {
		return nil, fmt.Errorf("trace version %d is not supported (this mlink reads version %d)", tr.header.Version, TraceVersion)
	}
	if len(tr.header.Models) == 0 {
		return nil, errors.New("trace declares no models")
	}
	tr.line = 1
	return tr, nil
}

// Header returns the trace's header.
func (r *TraceReader) Header() TraceHeader { return r.header }

// Next returns the next record, or io.EOF at the end.
func (r *TraceReader) Next() (*TraceRecord, error) {
	rec := &TraceRecord{}
	r.lim.start = r.lim.n
	if err := r.dec.Decode(rec); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("trace record %d: %w", r.line, err)
	}
	for name, o := range rec.Outputs {
		if o == nil {
			return nil, fmt.Errorf("trace record %d (%s/%d): output %q is null", r.line, rec.Camera, rec.Seq, name)
		}
	}
	r.line++
	return rec, nil
}

// Close closes the trace.
func (r *TraceReader) Close() error {
	err := r.gz.Close()
	if r.closer != nil {
		err = errors.Join(err, r.closer.Close())
	}
	return err
}

// ReadTrace reads a whole trace file.
func ReadTrace(path string) (TraceHeader, []*TraceRecord, error) {
	r, err := OpenTrace(path)
	if err != nil {
		return TraceHeader{}, nil, err
	}
	defer r.Close()
	var recs []*TraceRecord
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return r.header, nil, fmt.Errorf("trace %s: %w", path, err)
		}
		recs = append(recs, rec)
	}
	if len(recs) == 0 {
		return r.header, nil, fmt.Errorf("trace %s holds no frames", path)
	}
	return r.header, recs, nil
}
