package links

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/mlink-project/mlink/pipeline"
)

// writeTrace writes a one-record trace with the given videos to path.
func writeTrace(t *testing.T, path string, videos map[string]string) {
	t.Helper()
	h := TraceHeader{Models: []TraceModel{{Name: "n", Type: pipeline.TypeCount}}, Videos: videos}
	w, err := CreateTrace(path, h)
	if err != nil {
		t.Fatal(err)
	}
	rec := &TraceRecord{Camera: "a", Seq: 1, Outputs: map[string]*pipeline.Output{
		"n": {Model: "n", Type: pipeline.TypeCount, Value: []float64{1}}}}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// storedVideos is the header's videos as the file holds them (unresolved).
func storedVideos(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := NewTraceReader(f)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	return r.Header().Videos
}

func TestTraceVideoPathsResolveAgainstTheTraceDirectory(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "traces")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	trace := filepath.Join(dir, "t.trace.gz")
	system := "/usr/share/doc/opencv-doc/examples/data/vtest.avi"
	writeTrace(t, trace, map[string]string{
		"here":    filepath.Join(dir, "here.mp4"),
		"below":   filepath.Join(dir, "cams", "below.mp4"),
		"sibling": filepath.Join(root, "videos", "sibling.mp4"),
		"system":  system,
	})

	// Inside the trace's tree: relative (portable); outside: as given.
	stored := storedVideos(t, trace)
	want := map[string]string{"here": "here.mp4", "below": "cams/below.mp4",
		"sibling": filepath.Join(root, "videos", "sibling.mp4"), "system": system}
	for cam, w := range want {
		if stored[cam] != w {
			t.Errorf("stored video of %s = %q, want %q", cam, stored[cam], w)
		}
	}

	// A trace moved elsewhere (a clone at another path) finds its videos
	// next to it; absolute paths are unchanged.
	moved := filepath.Join(t.TempDir(), "moved.trace.gz")
	b, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(moved, b, 0o644); err != nil {
		t.Fatal(err)
	}
	h, _, err := ReadTrace(moved)
	if err != nil {
		t.Fatal(err)
	}
	want = map[string]string{
		"here":    filepath.Join(filepath.Dir(moved), "here.mp4"),
		"below":   filepath.Join(filepath.Dir(moved), "cams", "below.mp4"),
		"sibling": filepath.Join(root, "videos", "sibling.mp4"),
		"system":  system,
	}
	for cam, w := range want {
		if h.Videos[cam] != w {
			t.Errorf("read video of %s = %q, want %q", cam, h.Videos[cam], w)
		}
	}
}

func TestTraceVideoPathsWithRelativeTracePath(t *testing.T) {
	t.Chdir(t.TempDir())
	if err := os.Mkdir("out", 0o755); err != nil {
		t.Fatal(err)
	}
	// Paths relative to the working directory, as on a command line.
	writeTrace(t, filepath.Join("out", "t.trace.gz"), map[string]string{"c": filepath.Join("out", "c.mp4")})
	if v := storedVideos(t, filepath.Join("out", "t.trace.gz"))["c"]; v != "c.mp4" {
		t.Errorf("stored video %q, want c.mp4", v)
	}
	h, _, err := ReadTrace(filepath.Join("out", "t.trace.gz"))
	if err != nil {
		t.Fatal(err)
	}
	if v := h.Videos["c"]; v != filepath.Join("out", "c.mp4") {
		t.Errorf("read video %q, want %s", v, filepath.Join("out", "c.mp4"))
	}
}
