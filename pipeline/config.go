package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole of mlink's configuration: one flat file, flags
// override it (see cmd/mlink).
type Config struct {
	NATS    NATSConfig     `yaml:"nats"`
	Log     LogConfig      `yaml:"log"`
	Ingest  IngestConfig   `yaml:"ingest"`
	Cameras []CameraConfig `yaml:"cameras"`
	Models  []ModelSpec    `yaml:"models"`
	// Pools are the worker pools models may run on (pipeline/pools.go):
	// policy jellybean places its variants on them, policy coe its tiers.
	Pools     []WorkerPool    `yaml:"pools"`
	Scheduler SchedulerConfig `yaml:"scheduler"`
	Budget    BudgetConfig    `yaml:"budget"`
	Merger    MergerConfig    `yaml:"merger"`
	ONNX      ONNXConfig      `yaml:"onnx"`
	Reducto   ReductoConfig   `yaml:"reducto"`
	HTTP      HTTPConfig      `yaml:"http"`

	// Dir is the directory of the config file: relative paths in the file
	// resolve against it.
	Dir string `yaml:"-"`
}

// NATSConfig selects the bus. With URL empty mlink embeds a NATS server.
type NATSConfig struct {
	URL string `yaml:"url"`
	// Listen is the embedded server's address (host:port); port -1 picks a free one.
	Listen string `yaml:"listen"`
	// DataDir holds the embedded server's JetStream store.
	DataDir    string   `yaml:"data_dir"`
	MaxPayload ByteSize `yaml:"max_payload"`
	// ResultsMaxAge and ResultsMaxBytes bound the durable results stream.
	ResultsMaxAge   time.Duration `yaml:"results_max_age"`
	ResultsMaxBytes ByteSize      `yaml:"results_max_bytes"`
	// ResultsReplicas is how many servers of a NATS cluster keep the
	// results stream (3: one may fail without losing a stored result).
	ResultsReplicas int `yaml:"results_replicas"`
	// SubjectPrefix is the first token of every subject, queue group and
	// (upper-cased) JetStream name of this deployment, so that two
	// deployments can share one NATS account (Subjects).
	SubjectPrefix string `yaml:"subject_prefix"`

	// Client credentials for the server of URL, one kind at most: user and
	// password, a token, an nkey seed file, or a .creds file (user JWT and
	// seed). None set: no credentials, or, for the embedded server and
	// loopback URLs, the per-role ones it generated in DataDir (see
	// ClientOptions). Secrets print as [redacted]; give them as ${ENV}.
	User         string        `yaml:"user"`
	Password     Secret        `yaml:"password"`
	Token        Secret        `yaml:"token"`
	NKeySeedFile string        `yaml:"nkey_seed_file"`
	CredsFile    string        `yaml:"creds_file"`
	TLS          NATSTLSConfig `yaml:"tls"`
}

// LogConfig sets the root logger.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // auto (console in a terminal, JSON otherwise), console, json
}

// IngestConfig holds settings shared by all cameras.
type IngestConfig struct {
	// MaxInFlight is how many frames of one camera may be in the pipeline
	// (published, result not yet emitted). A live camera drops its stale
	// frames beyond it; a file waits.
	MaxInFlight int `yaml:"max_in_flight"`
	// InFlightTimeout releases a frame's slot when its result never comes.
	InFlightTimeout time.Duration `yaml:"in_flight_timeout"`
	// MaxFramePixels bounds the frames mlink decodes (width × height, from
	// the JPEG's own header, checked before decoding): MJPEG parts and the
	// frames model workers take from the bus. Default DefaultMaxFramePixels
	// (2^25, 8K fits), which is also the most allowed.
	MaxFramePixels int `yaml:"max_frame_pixels"`
}

// EmbeddedListen is the embedded server's default address: not NATS's 4222,
// so that mlink's own server never collides with a system nats-server
// (Debian's package starts one on 4222); `mlink watch` looks here by default.
const EmbeddedListen = "127.0.0.1:4242"

// Source types of cameras.
const (
	SourceFile   = "file"
	SourceRTSP   = "rtsp"
	SourceHTTP   = "http"
	SourceDevice = "device"
)

// CameraConfig is one video source.
type CameraConfig struct {
	ID     string `yaml:"id"`
	Source string `yaml:"source"` // file, rtsp, http, device
	// URL is a file path (file), rtsp:// or http(s):// URL, or a device index.
	URL string `yaml:"url"`
	// Loop replays a file from the start when it ends.
	Loop bool `yaml:"loop"`
	// Realtime paces a file at its native fps: it then behaves like a camera
	// and stale frames are dropped. Otherwise a file is read as fast as the
	// pipeline consumes it and no frame is dropped.
	Realtime bool `yaml:"realtime"`
	// FPS caps the published frame rate (0: no cap).
	FPS float64 `yaml:"fps"`
	// Width and Height resize frames before publishing (0: keep; one of them
	// 0: keep the aspect ratio).
	Width       int `yaml:"width"`
	Height      int `yaml:"height"`
	JPEGQuality int `yaml:"jpeg_quality"`
	// ReconnectMin and ReconnectMax bound the exponential back-off between
	// reconnection attempts of a failed stream.
	ReconnectMin time.Duration `yaml:"reconnect_min"`
	ReconnectMax time.Duration `yaml:"reconnect_max"`
}

// Model backends.
const (
	BackendHOG     = "opencv-hog"
	BackendCascade = "opencv-cascade"
	BackendMOG2    = "opencv-mog2"
	BackendONNX    = "onnx"
)

// ONNX decoders: how a model's raw tensors become an Output.
const (
	DecoderBlazeFace  = "blazeface"
	DecoderPPOCRDet   = "ppocr-det"
	DecoderMLSD       = "mlsd"
	DecoderClassifier = "classifier" // [1,C] logits or probabilities
	DecoderYOLO       = "yolo"       // [1,N,5+C] or [1,5+C,N] (cx,cy,w,h,obj,classes)
	DecoderSSD        = "ssd"        // boxes [1,N,4] + scores [1,N,C]
	DecoderCount      = "count"      // [1] or [1,1]: a regression count
	// NanoDet's GFL head: per stride class scores [1,N,C] and side
	// distances as bin distributions [1,N,4·bins]; COCO's 80 classes by
	// default.
	DecoderNanoDet = "nanodet"
)

// ModelSpec declares one model: its backend, file, pre- and post-processing
// and output type. A user plugs in an ONNX model by declaring it here.
type ModelSpec struct {
	Name    string     `yaml:"name"`
	Backend string     `yaml:"backend"`
	Output  OutputType `yaml:"output"`
	// File is the model file (ONNX) or cascade XML (opencv-cascade).
	File string `yaml:"file"`
	// Decoder selects ONNX post-processing (see Decoder* constants).
	Decoder string `yaml:"decoder"`
	// Input declares ONNX pre-processing.
	Input InputSpec `yaml:"input"`
	// Classes names the classes of class outputs and detectors; Keep limits
	// a detector to these classes (empty: all).
	Classes []string `yaml:"classes"`
	Keep    []string `yaml:"keep"`
	// Threshold is the score threshold of detections; NMS the IoU threshold
	// of non-maximum suppression.
	Threshold float64 `yaml:"threshold"`
	NMS       float64 `yaml:"nms"`
	// Provider is the ONNX Runtime execution provider: cpu or cuda (which
	// falls back to cpu where CUDA is absent).
	Provider string `yaml:"provider"`
	// Params holds backend-specific numeric knobs (documented per backend).
	Params map[string]float64 `yaml:"params"`
	// Workers is the number of instances of the model in one worker process;
	// Queue bounds the frames waiting for them.
	Workers int `yaml:"workers"`
	Queue   int `yaml:"queue"`
	// Memory is the model's configured memory cost, used when it cannot be
	// measured (no GPU).
	Memory ByteSize `yaml:"memory"`
}

// InputSpec is the pre-processing of an ONNX model's single image input.
type InputSpec struct {
	Width  int `yaml:"width"`
	Height int `yaml:"height"`
	// Layout is nchw (default) or nhwc.
	Layout string `yaml:"layout"`
	// Color is rgb (default) or bgr.
	Color string `yaml:"color"`
	// Pixel values are (p*Scale - Mean[c]) / Std[c]; Scale defaults to 1/255.
	Scale float64   `yaml:"scale"`
	Mean  []float64 `yaml:"mean"`
	Std   []float64 `yaml:"std"`
	// Resize is stretch (default) or letterbox (keep aspect ratio, pad).
	Resize string `yaml:"resize"`
}

// ONNXConfig locates the ONNX Runtime shared library.
type ONNXConfig struct {
	Library string `yaml:"library"`
}

// SchedulerConfig selects the scheduling policy and its settings.
type SchedulerConfig struct {
	// Policy is one of the registered policies (Policies).
	Policy PolicyName `yaml:"policy"`
	// Period is how often the mlink policies re-profile and re-select
	// (the paper: 1 hour); ProfileShare the share of each period, at its
	// start, on which every model runs (the paper: 1%).
	Period       time.Duration `yaml:"period"`
	ProfileShare float64       `yaml:"profile_share"`
	// BootstrapFrames is how many frames run every model at a cold start,
	// to train the first links (the paper trains on the first 10% of a
	// stream; a live stream has no length, so this is a count).
	BootstrapFrames int `yaml:"bootstrap_frames"`
	// HoldOut is the share of profiled frames kept out of training to
	// measure link accuracy.
	HoldOut float64 `yaml:"hold_out"`
	// Seed makes link training and drls/random's order deterministic.
	Seed int64 `yaml:"seed"`
	// Training is where links are trained: "local" (in the scheduler's
	// process) or "remote" (by the trainer role, from the profiled results
	// in the results stream; links reach the scheduler and the predictors
	// through the link store).
	Training string `yaml:"training"`
	// ActiveShare is the share of frames active sampling may profile on top
	// of the periodic windows (MLink's adaptive update: the frame after one
	// whose links predict a high loss; the paper samples 1–5 %). 0 is off.
	ActiveShare float64 `yaml:"active_share"`
	// ActiveBatch sampled frames make one fine-tuning of the links.
	ActiveBatch int `yaml:"active_batch"`
	// TuneFrames: profiling windows' frames are pooled until there are
	// this many, then the links are fine-tuned on them (every window is
	// measured; tuning on a handful of frames overfits them).
	TuneFrames int `yaml:"tune_frames"`
	// TurnBatch: frames on which a rotating model ran on its turn (it and
	// the always-run sources exact: a fresh training pair) are pooled until
	// there are this many, then the links are fine-tuned on them. 0 is off.
	TurnBatch int `yaml:"turn_batch"`
	// TurnEvidence: mlink-hybrid measures every rotation turn — how
	// reusing, tracking or moving the rotating model's earlier output along
	// a source's motion would have done — and selects again on the
	// profiled evidence as the turns correct it. Off by default: on the
	// committed traces it moved rows by under a point either way.
	TurnEvidence bool `yaml:"turn_evidence"`
	// TemporalLinks trains temporal links (a model's own last exact output
	// among a link's inputs) for mlink-hybrid, which then uses them where
	// they measure best. Off by default: they roughly double training time
	// and did not beat plain reuse on vtest.
	TemporalLinks bool `yaml:"temporal_links"`
	// InLineTraining trains links, and observes every result, on the
	// scheduler's routing goroutine: each frame is planned knowing every
	// result that came before it, as mlink bench replays a trace, so a run
	// whose frames are paced by their results is reproducible and matches
	// its replay. Routing pauses while links train (frames wait, a live
	// camera drops stale ones). Off by default: training runs beside
	// routing. Needs training: local.
	InLineTraining bool `yaml:"in_line_training"`
	// Importance weighs outputs for policy dcta: "camera/model" for one
	// camera's model, "camera" or "model" for all of a camera's or a
	// model's outputs; an output's weight is its own key's, else its
	// camera's times its model's, each 1 when not given.
	Importance map[string]float64 `yaml:"importance"`
	// CoE declares policy coe's cascades of ensembles (pipeline/coe.go).
	CoE CoEConfig `yaml:"coe"`
	// JellyBean is policy jellybean's SLOs and variants.
	JellyBean JellyBeanConfig `yaml:"jellybean"`
}

// Training modes of the link policies.
const (
	TrainingLocal  = "local"
	TrainingRemote = "remote"
)

// BudgetConfig limits what runs per frame: GPU memory and/or compute time.
// Zero values are no limit.
type BudgetConfig struct {
	GPUMemory  ByteSize `yaml:"gpu_memory"`
	MSPerFrame float64  `yaml:"ms_per_frame"`
	// TimeMode is what ms_per_frame means: mean (the default; throughput,
	// the mean model time per frame over the run, profiling included) or
	// cap (no frame's executed models over it; profiling frames excepted).
	TimeMode string `yaml:"time_mode"`
}

// Time budget modes (budget.time_mode).
const (
	TimeModeMean = "mean"
	TimeModeCap  = "cap"
)

// MergerConfig bounds the merger.
type MergerConfig struct {
	// Deadline is how long the merger waits for a frame's outputs before it
	// emits a partial result.
	Deadline time.Duration `yaml:"deadline"`
	// MaxPending bounds the frames being joined; beyond it the oldest is
	// emitted as partial.
	MaxPending int `yaml:"max_pending"`
}

// ReductoConfig turns on Reducto frame filtering (stages/reducto, Li et al.,
// SIGCOMM 2020) in front of any policy: a frame goes to the models only when
// a cheap difference feature against the last sent frame exceeds a
// threshold learnt per segment; a filtered frame reuses every model's last
// exact output. Defaults are the published ones (see stages/reducto/doc.go,
// which a test keeps in step with these).
type ReductoConfig struct {
	Enabled bool `yaml:"enabled"`
	// Feature is the difference feature: pixel, area, edge or corner.
	Feature string `yaml:"feature"`
	// TargetAccuracy is the agreement with the models' exact outputs the
	// filter keeps on a segment; SafetyMargin is added to it when a profiled
	// segment's threshold is chosen.
	TargetAccuracy float64 `yaml:"target_accuracy"`
	SafetyMargin   float64 `yaml:"safety_margin"`
	// Segment is the length of the segments thresholds are chosen for.
	Segment time.Duration `yaml:"segment"`
	// Candidates is the number of thresholds tried on a profiled segment;
	// Bins the histogram bins of a segment's signature; K the neighbours of
	// the signature → threshold k-NN.
	Candidates int `yaml:"candidates"`
	Bins       int `yaml:"bins"`
	K          int `yaml:"k"`
	// BootstrapSegments are sent whole and profiled before anything is
	// filtered.
	BootstrapSegments int `yaml:"bootstrap_segments"`
	// DistanceBound: a segment whose signature is farther than this from
	// every profiled one is sent whole and profiled again (lower it at high
	// frame rates, where signatures are less noisy).
	DistanceBound float64 `yaml:"distance_bound"`
	// Width is the working width of the features: wider frames are
	// downscaled first (cost falls with the pixel count).
	Width int `yaml:"width"`
}

// ReductoFeatures are Reducto's difference features.
var ReductoFeatures = []string{"pixel", "area", "edge", "corner"}

// LoadConfig reads, defaults and validates a config file. The error lists
// every problem found.
func LoadConfig(path string, overrides ...func(*Config)) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config path %q: %w", path, err)
	}
	return ParseConfig(data, filepath.Dir(abs), overrides...)
}

// ParseConfig parses YAML config data; dir resolves relative paths.
// Overrides (command-line flags) apply before defaults and validation.
func ParseConfig(data []byte, dir string, overrides ...func(*Config)) (*Config, error) {
	cfg := &Config{Dir: dir}
	data, envProblems := expandEnv(data, os.LookupEnv)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return nil, &ConfigError{Problems: append(envProblems, te.Errors...)}
		}
		return nil, &ConfigError{Problems: append(envProblems, err.Error())}
	}
	// A camera's video file is opened by ingest, profile and bench, which
	// know nothing of the config's directory: resolve it here, like the
	// validation does, so a relative url works from any working directory.
	for i := range cfg.Cameras {
		if cfg.Cameras[i].Source == SourceFile {
			cfg.Cameras[i].URL = cfg.Path(cfg.Cameras[i].URL)
		}
	}
	for _, o := range overrides {
		o(cfg)
	}
	cfg.EnsureDefaults()
	// Like the cameras' files: the NATS files and data dir are opened by
	// code that knows nothing of the config's directory.
	cfg.NATS.resolvePaths(cfg.Path)
	err := cfg.Validate()
	if len(envProblems) > 0 {
		var ce *ConfigError
		if errors.As(err, &ce) {
			envProblems = append(envProblems, ce.Problems...)
		}
		return nil, &ConfigError{Problems: envProblems}
	}
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

// ConfigError lists every problem of a config at once.
type ConfigError struct {
	Problems []string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("invalid config (%d problems):\n  - %s", len(e.Problems), strings.Join(e.Problems, "\n  - "))
}

// EnsureDefaults fills every unset field with its default.
func (c *Config) EnsureDefaults() {
	c.HTTP.ensureDefaults()
	if c.Budget.TimeMode == "" {
		c.Budget.TimeMode = TimeModeMean
	}
	if c.NATS.Listen == "" {
		c.NATS.Listen = EmbeddedListen
	}
	if c.NATS.DataDir == "" {
		c.NATS.DataDir = ".mlink/nats"
	}
	if c.NATS.MaxPayload == 0 {
		c.NATS.MaxPayload = 8 << 20
	}
	if c.NATS.ResultsMaxAge == 0 {
		c.NATS.ResultsMaxAge = 24 * time.Hour
	}
	if c.NATS.ResultsMaxBytes == 0 {
		c.NATS.ResultsMaxBytes = 1 << 30
	}
	if c.NATS.SubjectPrefix == "" {
		c.NATS.SubjectPrefix = DefaultSubjectPrefix
	}
	if c.NATS.ResultsReplicas == 0 {
		c.NATS.ResultsReplicas = 1
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "auto"
	}
	if c.Ingest.MaxInFlight == 0 {
		c.Ingest.MaxInFlight = 2
	}
	if c.Ingest.InFlightTimeout == 0 {
		c.Ingest.InFlightTimeout = 30 * time.Second
	}
	if c.Ingest.MaxFramePixels == 0 {
		c.Ingest.MaxFramePixels = DefaultMaxFramePixels
	}
	for i := range c.Cameras {
		cam := &c.Cameras[i]
		if cam.JPEGQuality == 0 {
			cam.JPEGQuality = 90
		}
		if cam.ReconnectMin == 0 {
			cam.ReconnectMin = 500 * time.Millisecond
		}
		if cam.ReconnectMax == 0 {
			cam.ReconnectMax = 30 * time.Second
		}
	}
	for i := range c.Models {
		m := &c.Models[i]
		if m.Output == "" {
			switch m.Backend {
			case BackendHOG, BackendCascade:
				m.Output = TypeBoxes
			case BackendMOG2:
				m.Output = TypeClass
			case BackendONNX:
				m.Output = defaultDecoderOutput[m.Decoder]
			}
		}
		if m.Provider == "" {
			m.Provider = "cpu"
		}
		if m.Workers == 0 {
			m.Workers = 1
		}
		if m.Queue == 0 {
			m.Queue = 8
		}
		if m.Input.Layout == "" {
			m.Input.Layout = "nchw"
		}
		if m.Input.Color == "" {
			m.Input.Color = "rgb"
		}
		if m.Input.Scale == 0 {
			m.Input.Scale = 1.0 / 255
		}
		if m.Input.Resize == "" {
			m.Input.Resize = "stretch"
		}
	}
	if c.Scheduler.Policy == "" {
		c.Scheduler.Policy = "all"
	}
	if c.Scheduler.Period == 0 {
		c.Scheduler.Period = time.Hour
	}
	if c.Scheduler.ProfileShare == 0 {
		c.Scheduler.ProfileShare = 0.01
	}
	if c.Scheduler.BootstrapFrames == 0 {
		c.Scheduler.BootstrapFrames = 100
	}
	if c.Scheduler.Training == "" {
		c.Scheduler.Training = TrainingLocal
	}
	if c.Scheduler.ActiveBatch == 0 {
		c.Scheduler.ActiveBatch = 16
	}
	if c.Scheduler.TuneFrames == 0 {
		c.Scheduler.TuneFrames = 30
	}
	if c.Scheduler.HoldOut == 0 {
		c.Scheduler.HoldOut = 0.3
	}
	if c.Merger.Deadline == 0 {
		c.Merger.Deadline = 10 * time.Second
	}
	if c.Merger.MaxPending == 0 {
		c.Merger.MaxPending = 256
	}
	c.Reducto.ensureDefaults()
}

func (r *ReductoConfig) ensureDefaults() {
	if r.Feature == "" {
		r.Feature = "area"
	}
	if r.TargetAccuracy == 0 {
		r.TargetAccuracy = 0.9
	}
	if r.Segment == 0 {
		r.Segment = 5 * time.Second
	}
	if r.Candidates == 0 {
		r.Candidates = 50
	}
	if r.Bins == 0 {
		r.Bins = 30
	}
	if r.K == 0 {
		r.K = 5
	}
	if r.BootstrapSegments == 0 {
		r.BootstrapSegments = 5
	}
	if r.DistanceBound == 0 {
		r.DistanceBound = 0.5
	}
	if r.Width == 0 {
		r.Width = 320
	}
}

var defaultDecoderOutput = map[string]OutputType{
	DecoderBlazeFace:  TypeBoxes,
	DecoderPPOCRDet:   TypeBoxes,
	DecoderMLSD:       TypeLines,
	DecoderClassifier: TypeClass,
	DecoderYOLO:       TypeBoxes,
	DecoderSSD:        TypeBoxes,
	DecoderCount:      TypeCount,
	DecoderNanoDet:    TypeBoxes,
}

// Validate reports every problem of a defaulted config at once.
// entryName checks the name of entry i of a list section (a subject
// token, unique among seen, which it joins) and returns how problems name
// the entry: "models[2] (hog)".
func (p *problems) entryName(section string, i int, field, name, what string, seen map[string]bool) string {
	where := fmt.Sprintf("%s[%d]", section, i)
	if name != "" {
		where = fmt.Sprintf("%s[%d] (%s)", section, i, name)
	}
	if err := ValidName(name); err != nil {
		p.add("%s.%s: %v", where, field, err)
	} else if seen[name] {
		p.add("%s.%s: duplicate %s", where, field, what)
	}
	seen[name] = true
	return where
}

func (c *Config) Validate() error {
	var p problems
	if c.NATS.MaxPayload < 64<<10 || c.NATS.MaxPayload > 64<<20 {
		p.add("nats.max_payload: %s is outside 64KB..64MB", c.NATS.MaxPayload)
	}
	c.NATS.validateSecurity(&p)
	if err := ValidSubjectPrefix(c.NATS.SubjectPrefix); err != nil {
		p.add("nats.subject_prefix: %v", err)
	}
	if c.NATS.ResultsReplicas < 1 || c.NATS.ResultsReplicas > 5 {
		p.add("nats.results_replicas: must be within 1..5 (JetStream's limit), got %d", c.NATS.ResultsReplicas)
	} else if c.NATS.ResultsReplicas > 1 && c.NATS.URL == "" {
		p.add("nats.results_replicas: %d needs a NATS cluster (nats.url); the embedded server is one node", c.NATS.ResultsReplicas)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		p.add("log.level: %q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "auto", "console", "json":
	default:
		p.add("log.format: %q is not one of auto, console, json", c.Log.Format)
	}
	if c.Ingest.MaxInFlight < 1 {
		p.add("ingest.max_in_flight: must be at least 1, got %d", c.Ingest.MaxInFlight)
	}
	if c.Ingest.MaxFramePixels < 1 || c.Ingest.MaxFramePixels > DefaultMaxFramePixels {
		p.add("ingest.max_frame_pixels: must be within 1..%d, got %d", DefaultMaxFramePixels, c.Ingest.MaxFramePixels)
	}
	if len(c.Cameras) == 0 {
		p.add("cameras: at least one camera is needed")
	}
	seen := map[string]bool{}
	for i, cam := range c.Cameras {
		where := p.entryName("cameras", i, "id", cam.ID, "camera id", seen)
		switch cam.Source {
		case SourceFile:
			if cam.URL == "" {
				p.add("%s.url: a file source needs a path", where)
			} else if _, err := os.Stat(c.Path(cam.URL)); err != nil {
				p.add("%s.url: video file %s: %v", where, c.Path(cam.URL), errors.Unwrap(err))
			}
		case SourceRTSP:
			if !strings.HasPrefix(cam.URL, "rtsp://") && !strings.HasPrefix(cam.URL, "rtsps://") {
				p.add("%s.url: an rtsp source needs an rtsp:// URL, got %q", where, cam.URL)
			}
		case SourceHTTP:
			if !strings.HasPrefix(cam.URL, "http://") && !strings.HasPrefix(cam.URL, "https://") {
				p.add("%s.url: an http source needs an http:// URL, got %q", where, cam.URL)
			}
		case SourceDevice:
			if _, err := strconv.Atoi(cam.URL); err != nil {
				p.add("%s.url: a device source needs a device index such as \"0\", got %q", where, cam.URL)
			}
		default:
			p.add("%s.source: %q is not one of file, rtsp, http, device", where, cam.Source)
		}
		if cam.Source != SourceFile && (cam.Loop || cam.Realtime) {
			p.add("%s: loop and realtime apply to file sources only", where)
		}
		if cam.FPS < 0 {
			p.add("%s.fps: must not be negative", where)
		}
		if cam.Width < 0 || cam.Height < 0 || cam.Width > 8192 || cam.Height > 8192 {
			p.add("%s: width/height must be within 0..8192", where)
		}
		if cam.JPEGQuality < 1 || cam.JPEGQuality > 100 {
			p.add("%s.jpeg_quality: must be within 1..100, got %d", where, cam.JPEGQuality)
		}
		if cam.ReconnectMin > cam.ReconnectMax {
			p.add("%s: reconnect_min %s exceeds reconnect_max %s", where, cam.ReconnectMin, cam.ReconnectMax)
		}
	}
	if len(c.Models) == 0 {
		p.add("models: at least one model is needed")
	}
	seen = map[string]bool{}
	for i, m := range c.Models {
		where := p.entryName("models", i, "name", m.Name, "model name", seen)
		c.validateModel(&p, where, &m)
	}
	policy, known := LookupPolicy(c.Scheduler.Policy)
	if !known {
		p.add("scheduler.policy: %q is not one of %s", c.Scheduler.Policy, strings.Join(PolicyNames(), ", "))
	}
	if policy.BenchOnly {
		p.add("scheduler.policy: %s is bench-only (it needs what only a replay of a recorded trace has, such as the decoded frames of its videos): compare it with mlink bench --policies %s", c.Scheduler.Policy, c.Scheduler.Policy)
	}
	if c.Scheduler.Period < time.Second {
		p.add("scheduler.period: %s is too short (at least 1s)", c.Scheduler.Period)
	}
	if c.Scheduler.ProfileShare <= 0 || c.Scheduler.ProfileShare > 1 {
		p.add("scheduler.profile_share: must be within (0,1], got %g", c.Scheduler.ProfileShare)
	}
	if c.Scheduler.BootstrapFrames < 10 {
		p.add("scheduler.bootstrap_frames: at least 10 frames are needed to train links, got %d", c.Scheduler.BootstrapFrames)
	}
	if c.Scheduler.ActiveShare < 0 || c.Scheduler.ActiveShare > 0.5 {
		p.add("scheduler.active_share: must be within [0, 0.5], got %g", c.Scheduler.ActiveShare)
	}
	if c.Scheduler.TurnBatch < 0 {
		p.add("scheduler.turn_batch: must be 0 (off) or more, got %d", c.Scheduler.TurnBatch)
	}
	if c.Scheduler.TuneFrames < 1 {
		p.add("scheduler.tune_frames: must be at least 1, got %d", c.Scheduler.TuneFrames)
	}
	if c.Scheduler.ActiveBatch < 1 {
		p.add("scheduler.active_batch: must be at least 1, got %d", c.Scheduler.ActiveBatch)
	}
	if c.Scheduler.Training != TrainingLocal && c.Scheduler.Training != TrainingRemote {
		p.add("scheduler.training: %q is not one of local, remote", c.Scheduler.Training)
	}
	if c.Scheduler.InLineTraining && c.Scheduler.Training == TrainingRemote {
		p.add("scheduler.in_line_training: links trained remotely arrive when they arrive; it needs training: local")
	}
	if c.Scheduler.HoldOut <= 0 || c.Scheduler.HoldOut >= 1 {
		p.add("scheduler.hold_out: must be within (0,1), got %g", c.Scheduler.HoldOut)
	}
	if c.Budget.GPUMemory < 0 || c.Budget.MSPerFrame < 0 {
		p.add("budget: gpu_memory and ms_per_frame must not be negative")
	}
	if c.Budget.TimeMode != TimeModeMean && c.Budget.TimeMode != TimeModeCap {
		p.add("budget.time_mode: %q is not one of mean, cap", c.Budget.TimeMode)
	}
	c.validateImportance(&p)
	c.validatePools(&p)
	c.Scheduler.CoE.validate(&p, c.ModelNames(), c.Pools)
	c.validateJellyBean(&p)
	switch policy.Needs {
	case NeedsTimeBudget:
		if c.Budget.MSPerFrame == 0 {
			p.add("budget: policy %s needs a time budget (budget.ms_per_frame, or --budget 400ms)%s", c.Scheduler.Policy, policy.NeedsWhy)
		}
	case NeedsBudget:
		if c.Budget.GPUMemory == 0 && c.Budget.MSPerFrame == 0 {
			p.add("budget: policy %s needs a budget (budget.gpu_memory and/or budget.ms_per_frame, or --budget)%s", c.Scheduler.Policy, policy.NeedsWhy)
		}
	}
	if c.Merger.Deadline < 10*time.Millisecond {
		p.add("merger.deadline: %s is too short (at least 10ms)", c.Merger.Deadline)
	}
	if c.Merger.MaxPending < 1 {
		p.add("merger.max_pending: must be at least 1")
	}
	c.Reducto.validate(&p)
	c.HTTP.validate(&p)
	checkFinite(&p, reflect.ValueOf(c).Elem(), "")
	return p.err()
}

// validate checks the section even when it is disabled, so that turning it
// on never reveals old mistakes.
func (r *ReductoConfig) validate(p *problems) {
	if !slices.Contains(ReductoFeatures, r.Feature) {
		p.add("reducto.feature: %q is not one of %s", r.Feature, strings.Join(ReductoFeatures, ", "))
	}
	if r.TargetAccuracy <= 0 || r.TargetAccuracy > 1 {
		p.add("reducto.target_accuracy: must be within (0,1], got %g", r.TargetAccuracy)
	}
	if r.SafetyMargin <= -1 || r.SafetyMargin >= 1 {
		p.add("reducto.safety_margin: must be within (-1,1), got %g", r.SafetyMargin)
	} else if r.TargetAccuracy > 0 && r.TargetAccuracy <= 1 && r.TargetAccuracy+r.SafetyMargin > 1+1e-9 { // 1 itself is reachable
		p.add("reducto.safety_margin: target_accuracy + safety_margin = %g exceeds 1: no threshold can meet it, so every changed frame would be sent", r.TargetAccuracy+r.SafetyMargin)
	}
	if r.Segment < 100*time.Millisecond {
		p.add("reducto.segment: %s is too short (at least 100ms)", r.Segment)
	}
	if r.Candidates < 1 || r.Candidates > 10000 {
		p.add("reducto.candidates: must be within 1..10000, got %d", r.Candidates)
	}
	if r.Bins < 1 || r.Bins > 10000 {
		p.add("reducto.bins: must be within 1..10000, got %d", r.Bins)
	}
	if r.K < 1 {
		p.add("reducto.k: must be at least 1, got %d", r.K)
	}
	if r.BootstrapSegments < 1 {
		p.add("reducto.bootstrap_segments: must be at least 1, got %d", r.BootstrapSegments)
	}
	if r.DistanceBound <= 0 {
		p.add("reducto.distance_bound: must be positive, got %g", r.DistanceBound)
	}
	if r.Width < 8 || r.Width > 8192 {
		p.add("reducto.width: must be within 8..8192, got %d", r.Width)
	}
}

func (c *Config) validateModel(p *problems, where string, m *ModelSpec) {
	knownBackend := m.Backend == BackendHOG || m.Backend == BackendMOG2 || m.Backend == BackendCascade || m.Backend == BackendONNX
	if !m.Output.Valid() && (knownBackend || m.Output != "") {
		p.add("%s.output: %q is not one of count, class, scalar, boxes, lines", where, m.Output)
	}
	needFile := false
	switch m.Backend {
	case BackendHOG:
	case BackendMOG2:
		if m.Output != TypeClass && m.Output != TypeCount {
			p.add("%s.output: opencv-mog2 produces class outputs (the motion level) or counts (the foreground blobs)", where)
		}
	case BackendCascade:
		needFile = true
	case BackendONNX:
		needFile = true
		if _, ok := defaultDecoderOutput[m.Decoder]; !ok {
			p.add("%s.decoder: %q is not one of blazeface, ppocr-det, mlsd, classifier, yolo, ssd, count, nanodet", where, m.Decoder)
		}
		if m.Decoder == DecoderClassifier && len(m.Classes) == 0 {
			p.add("%s.classes: a classifier needs its class names", where)
		}
		if m.Input.Width < 0 || m.Input.Height < 0 {
			p.add("%s.input: width/height must not be negative", where)
		}
		if m.Input.Layout != "nchw" && m.Input.Layout != "nhwc" {
			p.add("%s.input.layout: %q is not nchw or nhwc", where, m.Input.Layout)
		}
		if m.Input.Color != "rgb" && m.Input.Color != "bgr" {
			p.add("%s.input.color: %q is not rgb or bgr", where, m.Input.Color)
		}
		if m.Input.Resize != "stretch" && m.Input.Resize != "letterbox" {
			p.add("%s.input.resize: %q is not stretch or letterbox", where, m.Input.Resize)
		}
		for _, v := range [][]float64{m.Input.Mean, m.Input.Std} {
			if len(v) != 0 && len(v) != 1 && len(v) != 3 {
				p.add("%s.input: mean and std take 1 or 3 values", where)
			}
		}
		for _, s := range m.Input.Std {
			if s == 0 {
				p.add("%s.input.std: must not be zero", where)
			}
		}
	default:
		p.add("%s.backend: %q is not one of opencv-hog, opencv-cascade, opencv-mog2, onnx", where, m.Backend)
	}
	if needFile {
		if m.File == "" {
			p.add("%s.file: backend %s needs a model file", where, m.Backend)
		} else if _, err := os.Stat(c.Path(m.File)); err != nil {
			p.add("%s.file: %s: %v (run `make deps` to fetch the bundled models)", where, c.Path(m.File), errors.Unwrap(err))
		}
	}
	if m.Provider != "cpu" && m.Provider != "cuda" {
		p.add("%s.provider: %q is not cpu or cuda", where, m.Provider)
	}
	if m.Threshold < 0 || m.Threshold > 1 {
		p.add("%s.threshold: must be within 0..1", where)
	}
	if m.NMS < 0 || m.NMS > 1 {
		p.add("%s.nms: must be within 0..1", where)
	}
	if m.Workers < 1 || m.Workers > 64 {
		p.add("%s.workers: must be within 1..64", where)
	}
	if m.Queue < 1 {
		p.add("%s.queue: must be at least 1", where)
	}
	validateParams(p, where, m)
}

// Path resolves a path from the config file against the file's directory.
func (c *Config) Path(p string) string {
	if p == "" || filepath.IsAbs(p) || c.Dir == "" {
		return p
	}
	return filepath.Join(c.Dir, p)
}

// Model returns the spec of a named model.
func (c *Config) Model(name string) (*ModelSpec, bool) {
	for i := range c.Models {
		if c.Models[i].Name == name {
			return &c.Models[i], true
		}
	}
	return nil, false
}

// ModelNames lists the configured models in config order.
func (c *Config) ModelNames() []string {
	out := make([]string, len(c.Models))
	for i, m := range c.Models {
		out[i] = m.Name
	}
	return out
}

// validateImportance: every key names a camera, a model, or a camera's
// model, and every weight is a number ≥ 0.
func (c *Config) validateImportance(p *problems) {
	cams, models := map[string]bool{}, map[string]bool{}
	for _, cam := range c.Cameras {
		cams[cam.ID] = true
	}
	for _, m := range c.Models {
		models[m.Name] = true
	}
	keys := make([]string, 0, len(c.Scheduler.Importance))
	for k := range c.Scheduler.Importance {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		w := c.Scheduler.Importance[k]
		cam, model, pair := strings.Cut(k, "/")
		known := cams[k] || models[k] || (pair && cams[cam] && models[model])
		if !known {
			p.add("scheduler.importance: %q is not a camera id, a model name or camera/model of this config", k)
		}
		if w < 0 || math.IsNaN(w) || math.IsInf(w, 0) {
			p.add("scheduler.importance.%s: must be a number ≥ 0, got %g", k, w)
		}
	}
}

type problems []string

func (p *problems) add(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return &ConfigError{Problems: p}
}

// ByteSize is a size in bytes that YAML may give as "8MB", "1.5GiB" or a number.
type ByteSize int64

// ParseByteSize parses sizes such as 512, 64KB, 8MB, 1.5GB (decimal units are
// taken as binary, as memory sizes usually are).
func ParseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(strings.ToUpper(s))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GIB", 1 << 30}, {"MIB", 1 << 20}, {"KIB", 1 << 10}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			mult = u.mult
			s = strings.TrimSpace(strings.TrimSuffix(s, u.suffix))
			break
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || !(f >= 0) || math.IsInf(f, 1) {
		return 0, fmt.Errorf("size %q: want a number with an optional unit (KB, MB, GB)", s)
	}
	// float64(MaxInt64) rounds up to 2^63: anything from there overflows.
	if f*float64(mult) >= math.MaxInt64 {
		return 0, fmt.Errorf("size %q: more than the largest size, 2^63-1 bytes", s)
	}
	return ByteSize(f * float64(mult)), nil
}

// UnmarshalYAML accepts a number or a string with a unit.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*b = v
	return nil
}

func (b ByteSize) String() string {
	switch {
	case b >= 1<<30 && b%(1<<30) == 0:
		return fmt.Sprintf("%dGB", b>>30)
	case b >= 1<<20:
		return fmt.Sprintf("%.1fMB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1fKB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%dB", int64(b))
}
