// Package rtsptest is an in-process RTSP server for tests: it serves an
// H.264 Annex-B file in a loop, paced at real time, on every path, like an
// IP camera. It can be stopped and started again on the same address to
// test reconnection, and frozen (connections open, nothing sent) to test
// stall detection.
package rtsptest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/mediacommon/pkg/codecs/h264"
)

// DefaultFPS paces streams whose SPS carries no timing information.
const DefaultFPS = 10

// Server serves one H.264 stream over RTSP. It has no UDP listeners:
// clients must use the TCP transport, as mlink's RTSP source does.
type Server struct {
	addr string
	fps  float64
	aus  [][][]byte // access units, each a list of NAL units

	srv    *gortsplib.Server
	mu     sync.Mutex // guards stream: handlers may run before Start sets it
	stream *gortsplib.ServerStream
	media  *description.Media
	cancel context.CancelFunc
	wg     sync.WaitGroup
	stop   sync.Once
	// frozen: the server keeps its connections open and sends nothing, as
	// a hung camera does.
	frozen atomic.Bool
}

// TranscodeH264 converts a video file to an H.264 Annex-B elementary stream
// suited to live serving: no B-frames, a key frame every 10 frames (a
// client joining mid-stream waits at most that long), in-band SPS/PPS.
// It needs the ffmpeg command.
func TranscodeH264(src, dst string) error {
	cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
		"-i", src, "-an", "-c:v", "libx264", "-pix_fmt", "yuv420p",
		"-preset", "ultrafast", "-crf", "28", "-tune", "zerolatency",
		"-bf", "0", "-g", "10", "-f", "h264", dst)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ffmpeg transcode %s: %w: %s", src, err, out)
	}
	return nil
}

// Start serves h264File (Annex-B, as TranscodeH264 writes it) at addr
// (host:port; port 0 picks a free one, see Addr) on every path, looping,
// at the frame rate in its SPS (DefaultFPS when absent).
func Start(h264File, addr string) (*Server, error) {
	data, err := os.ReadFile(h264File)
	if err != nil {
		return nil, fmt.Errorf("rtsptest: %w", err)
	}
	aus, sps, pps, err := splitAccessUnits(data)
	if err != nil {
		return nil, fmt.Errorf("rtsptest: %s: %w", h264File, err)
	}
	fps := float64(DefaultFPS)
	var p h264.SPS
	if err := p.Unmarshal(sps); err == nil && p.FPS() > 0 {
		fps = p.FPS()
	}

	// Resolve port 0 here so that Addr reports the real port and a restart
	// can reuse it.
	if _, port, err := net.SplitHostPort(addr); err == nil && port == "0" {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("rtsptest: listen %s: %w", addr, err)
		}
		addr = l.Addr().String()
		l.Close()
	}

	s := &Server{addr: addr, fps: fps, aus: aus}
	s.srv = &gortsplib.Server{
		Handler:     s,
		RTSPAddress: addr,
	}
	if err := s.srv.Start(); err != nil {
		return nil, fmt.Errorf("rtsptest: start server on %s: %w", addr, err)
	}
	forma := &format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: sps, PPS: pps}
	s.media = &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{forma}}
	enc, err := forma.CreateEncoder()
	if err != nil {
		s.srv.Close()
		return nil, fmt.Errorf("rtsptest: %w", err)
	}
	s.mu.Lock()
	s.stream = gortsplib.NewServerStream(s.srv, &description.Session{Medias: []*description.Media{s.media}})
	s.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(1)
	go s.feed(ctx, enc)
	return s, nil
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return s.addr }

// URL is an rtsp:// URL of the stream (any path serves it).
func (s *Server) URL() string { return "rtsp://" + s.addr + "/stream" }

// FPS is the rate the stream is served at.
func (s *Server) FPS() float64 { return s.fps }

// Stop closes the server and every client connection; Start on the same
// address works afterwards. Calling it again does nothing.
func (s *Server) Stop() {
	s.stop.Do(func() {
		s.cancel()
		s.wg.Wait()
		s.stream.Close()
		s.srv.Close()
	})
}

// Freeze stops sending frames while keeping every connection open (a hung
// camera: no error, no close, no data); Resume sends again.
func (s *Server) Freeze() { s.frozen.Store(true) }

// Resume ends a Freeze.
func (s *Server) Resume() { s.frozen.Store(false) }

// feed writes the access units in a loop at real time. The stream
// distributes them to whichever clients are playing.
func (s *Server) feed(ctx context.Context, enc *rtph264.Encoder) {
	defer s.wg.Done()
	ticker := time.NewTicker(time.Duration(float64(time.Second) / s.fps))
	defer ticker.Stop()
	var n uint64 // frames sent: the RTP clock keeps running across loops
	for {
		for _, au := range s.aus {
			pkts, err := enc.Encode(au)
			if err == nil && !s.frozen.Load() {
				ts := uint32(float64(n) * 90000 / s.fps) // H.264 RTP clock is 90 kHz
				now := time.Now()
				for _, p := range pkts {
					p.Timestamp = ts
					s.stream.WritePacketRTPWithNTP(s.media, p, now) //nolint:errcheck // no reader is not an error
				}
			}
			n++
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
			}
		}
	}
}

// ready returns the stream once Start has created it.
func (s *Server) ready() *gortsplib.ServerStream {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stream
}

// OnDescribe implements gortsplib.ServerHandlerOnDescribe.
func (s *Server) OnDescribe(*gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if st := s.ready(); st != nil {
		return &base.Response{StatusCode: base.StatusOK}, st, nil
	}
	return &base.Response{StatusCode: base.StatusServiceUnavailable}, nil, nil
}

// OnSetup implements gortsplib.ServerHandlerOnSetup.
func (s *Server) OnSetup(*gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if st := s.ready(); st != nil {
		return &base.Response{StatusCode: base.StatusOK}, st, nil
	}
	return &base.Response{StatusCode: base.StatusServiceUnavailable}, nil, nil
}

// OnPlay implements gortsplib.ServerHandlerOnPlay.
func (s *Server) OnPlay(*gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// splitAccessUnits splits an Annex-B stream into access units (one per
// frame) and returns the first SPS and PPS.
func splitAccessUnits(data []byte) (aus [][][]byte, sps, pps []byte, err error) {
	var au [][]byte
	hasVCL := false
	for _, nalu := range splitNALUs(data) {
		typ := h264.NALUType(nalu[0] & 0x1f)
		vcl := typ == h264.NALUTypeNonIDR || typ == h264.NALUTypeIDR
		// A frame ends where a non-VCL unit (SPS, PPS, SEI, AUD...) follows
		// its slices, or where a slice starts at macroblock 0
		// (first_mb_in_slice is ue(v): 0 is the single bit 1).
		if hasVCL && (!vcl || nalu[1]&0x80 != 0) {
			aus = append(aus, au)
			au, hasVCL = nil, false
		}
		switch typ {
		case h264.NALUTypeSPS:
			if sps == nil {
				sps = nalu
			}
		case h264.NALUTypePPS:
			if pps == nil {
				pps = nalu
			}
		}
		au = append(au, nalu)
		hasVCL = hasVCL || vcl
	}
	if hasVCL {
		aus = append(aus, au)
	}
	if len(aus) == 0 || sps == nil || pps == nil {
		return nil, nil, nil, errors.New("not an H.264 Annex-B stream with SPS, PPS and frames")
	}
	return aus, sps, pps, nil
}

// splitNALUs returns the NAL units between Annex-B start codes (00 00 01 or
// 00 00 00 01), skipping empty ones.
func splitNALUs(data []byte) [][]byte {
	var out [][]byte
	start := -1
	for i := 0; i+2 < len(data); i++ {
		if data[i] != 0 || data[i+1] != 0 || data[i+2] != 1 {
			continue
		}
		if start >= 0 {
			end := i
			// Drop a 4-byte start code's leading zero and trailing_zero_8bits:
			// a NAL unit never ends in a zero byte.
			for end > start && data[end-1] == 0 {
				end--
			}
			if end-start >= 2 {
				out = append(out, data[start:end])
			}
		}
		start = i + 3
		i += 2
	}
	if start >= 0 && len(data)-start >= 2 {
		out = append(out, data[start:])
	}
	return out
}
