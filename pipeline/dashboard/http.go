package dashboard

import (
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strconv"
	"time"

	"github.com/mlink-project/mlink/pipeline"
)

// Endpoints the dashboard mounts.
const (
	PathPage   = "/"
	PathEvents = "/dashboard/events"
	PathState  = "/dashboard/state"
	PathFrame  = "/dashboard/frame/" // + camera
	PathAssets = "/dashboard/assets/"
)

// Mux is where the dashboard mounts its handlers: httpd.Server, or an
// http.ServeMux.
type Mux interface {
	Handle(pattern string, h http.Handler)
}

// The page, its style and script: plain files, no build step.
//
//go:embed assets
var assets embed.FS

// Mount serves the dashboard on m: the page at /, its assets, the event
// stream, the frames and the state.
func (h *Hub) Mount(m Mux) {
	page, err := fs.ReadFile(assets, "assets/index.html")
	if err != nil {
		panic(err) // embedded at build time
	}
	m.Handle("GET "+PathPage+"{$}", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Write(page)
	}))
	m.Handle("GET "+PathAssets, http.StripPrefix("/dashboard/", http.FileServerFS(assets)))
	m.Handle("GET "+PathEvents, http.HandlerFunc(h.serveEvents))
	m.Handle("GET "+PathState, http.HandlerFunc(h.serveState))
	m.Handle("GET "+PathFrame+"{camera}", http.HandlerFunc(h.serveFrame))
}

func (h *Hub) serveState(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if err := json.NewEncoder(w).Encode(h.State()); err != nil {
		return // the client went away
	}
}

// serveFrame sends a camera's shown frame, its seq and size in the
// Mlink-Seq, Mlink-Width and Mlink-Height headers (as on the bus).
func (h *Hub) serveFrame(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("camera")
	f, known := h.frameOf(id)
	if !known {
		http.Error(w, fmt.Sprintf("no camera %q in this process's config", id), http.StatusNotFound)
		return
	}
	if f == nil {
		http.Error(w, fmt.Sprintf("camera %q has no frame yet (frames are kept while the dashboard is open)", id), http.StatusNotFound)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "image/jpeg")
	hd.Set("Cache-Control", "no-store")
	hd.Set("Content-Length", strconv.Itoa(len(f.jpeg)))
	hd.Set(pipeline.HeaderSeq, strconv.FormatUint(f.Seq, 10))
	hd.Set(pipeline.HeaderWidth, strconv.Itoa(f.Width))
	hd.Set(pipeline.HeaderHeight, strconv.Itoa(f.Height))
	w.Write(f.jpeg)
}

// serveEvents is the event stream: the state first, then every result
// and a stats event each StatsEvery, with heartbeat comments. It returns
// when the client goes, a write fails or times out, or the hub closes.
func (h *Hub) serveEvents(w http.ResponseWriter, r *http.Request) {
	cl, cams := h.join()
	if cl == nil {
		http.Error(w, "the dashboard is stopping", http.StatusServiceUnavailable)
		return
	}
	defer h.leave(cl)
	rc := http.NewResponseController(w)
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)

	write := func(write func(io.Writer) error) bool {
		// Not every ResponseWriter supports deadlines (tests' recorders).
		_ = rc.SetWriteDeadline(time.Now().Add(h.opts.WriteTimeout))
		return write(w) == nil && rc.Flush() == nil
	}
	// The browser reconnects by itself after a lost stream, in 2 s.
	if !write(func(w io.Writer) error { _, err := io.WriteString(w, "retry: 2000\n\n"); return err }) {
		return
	}
	state, err := json.Marshal(State{Models: h.models(), Cameras: cams, Stats: h.stats(cl)})
	if err != nil || !write(sseEvent{EventState, state}.writeTo) {
		return
	}
	stats := time.NewTicker(h.opts.StatsEvery)
	defer stats.Stop()
	beat := time.NewTicker(h.opts.Heartbeat)
	defer beat.Stop()
	for {
		var ok bool
		select {
		case <-r.Context().Done():
			return
		case <-h.done:
			return
		case ev := <-cl.events:
			ok = write(ev.writeTo)
		case <-stats.C:
			data, err := json.Marshal(h.stats(cl))
			ok = err == nil && write(sseEvent{EventStats, data}.writeTo)
		case <-beat.C:
			ok = write(func(w io.Writer) error { _, err := io.WriteString(w, ": heartbeat\n\n"); return err })
		}
		if !ok {
			return
		}
	}
}

// writeTo writes the event in the text/event-stream format. JSON from
// encoding/json holds no newline, so one data line carries it.
func (e sseEvent) writeTo(w io.Writer) error {
	_, err := io.WriteString(w, "event: "+e.name+"\ndata: ")
	if err == nil {
		_, err = w.Write(e.data)
	}
	if err == nil {
		_, err = io.WriteString(w, "\n\n")
	}
	return err
}
