package links

import (
	"errors"
	"fmt"
	"runtime"
)

// Decoders for links whose target is a sequence of boxes or line segments.
const (
	// DecoderSet: fixed slots (one per possible element) with an existence
	// score, trained with a greedy matching loss. The default: it measured
	// better and ~20× cheaper than the attention decoder on vtest (README).
	DecoderSet = "set"
	// DecoderAttention: the paper's recurrent decoder (GRU, 64 units) with
	// additive (Bahdanau) attention over the encoder memory and teacher
	// forcing.
	DecoderAttention = "attention"
)

// TrainOptions configures training. The zero value gives the published
// MLink defaults (EnsureDefaults).
type TrainOptions struct {
	// Epochs, BatchSize, LearningRate: RMSprop training (100, 32, 0.01).
	Epochs       int     `json:"epochs"`
	BatchSize    int     `json:"batch_size"`
	LearningRate float64 `json:"learning_rate"`
	// Dropout after the hidden layer of link heads: 0 selects the default
	// 0.5, a negative value disables it.
	Dropout float64 `json:"dropout"`
	// Hidden: hidden units per output dimension (2); MinHidden a floor on
	// hidden and encoder widths (0: the published rule alone).
	Hidden    int `json:"hidden"`
	MinHidden int `json:"min_hidden,omitempty"`
	// DecoderUnits is the recurrent decoder's (and the set decoder's hidden
	// layer's) width (64); AttentionUnits the additive attention's (32).
	DecoderUnits   int `json:"decoder_units"`
	AttentionUnits int `json:"attention_units"`
	// SeqDecoder is DecoderSet (default) or DecoderAttention.
	SeqDecoder string `json:"seq_decoder"`
	// MaxSeqLen caps sequence inputs and outputs (64 elements, the highest
	// scoring ones are kept).
	MaxSeqLen int `json:"max_seq_len"`
	// CountLoss is the loss of count and scalar targets: "mse" (default) or "mae".
	CountLoss string `json:"count_loss"`
	// NoTemporal skips temporal links (target's last exact output + age).
	NoTemporal bool `json:"no_temporal,omitempty"`
	// MaxAge is the largest age, in frames, temporal links are trained on (30).
	MaxAge int `json:"max_age"`
	// EvalAges are the ages, in frames of the camera's own rate (seq
	// differences), at which temporal links and the reuse baseline are
	// evaluated ({1, 2, 5, 10, 30}); on records sampled every s seqs they
	// are also evaluated at s times these ages (Evaluation.Ages).
	EvalAges []int `json:"eval_ages"`
	// LossMargin is the margin of the loss-prediction head's ranking loss (1.0).
	LossMargin float64 `json:"loss_margin"`
	// Seed makes training deterministic: the same seed, data and options
	// give the same weights, whatever Workers is.
	Seed int64 `json:"seed"`
	// Workers trains that many links in parallel (GOMAXPROCS).
	Workers int `json:"-"`
	// Progress, if set, is called after every epoch of every link and
	// ensemble, from one goroutine at a time.
	Progress func(Progress) `json:"-"`
}

// Progress reports training progress.
type Progress struct {
	// Stage is "link", "temporal" or "ensemble".
	Stage  string
	Source string // "" for a self-temporal link or an ensemble
	Target string
	Epoch  int
	Epochs int
	// Loss is the mean training loss of the epoch.
	Loss float64
	// Done and Total count finished and all training units (links and ensembles).
	Done, Total int
	// Finished is true on the last report of a unit.
	Finished bool
}

// EnsureDefaults fills unset options with the published defaults.
func (o *TrainOptions) EnsureDefaults() {
	if o.Epochs == 0 {
		o.Epochs = 100
	}
	if o.BatchSize == 0 {
		o.BatchSize = 32
	}
	if o.LearningRate == 0 {
		o.LearningRate = 0.01
	}
	if o.Dropout == 0 {
		o.Dropout = 0.5
	}
	if o.Hidden == 0 {
		o.Hidden = 2
	}
	if o.DecoderUnits == 0 {
		o.DecoderUnits = 64
	}
	if o.AttentionUnits == 0 {
		o.AttentionUnits = 32
	}
	if o.SeqDecoder == "" {
		o.SeqDecoder = DecoderSet
	}
	if o.MaxSeqLen == 0 {
		o.MaxSeqLen = 64
	}
	if o.CountLoss == "" {
		o.CountLoss = "mse"
	}
	if o.MaxAge == 0 {
		o.MaxAge = 30
	}
	if len(o.EvalAges) == 0 {
		o.EvalAges = []int{1, 2, 5, 10, 30}
	}
	if o.LossMargin == 0 {
		o.LossMargin = 1
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
}

// Validate reports every invalid option at once.
func (o *TrainOptions) Validate() error {
	var errs []error
	if o.Epochs < 0 {
		errs = append(errs, fmt.Errorf("epochs %d < 0", o.Epochs))
	}
	if o.BatchSize < 1 {
		errs = append(errs, fmt.Errorf("batch size %d < 1", o.BatchSize))
	}
	if o.LearningRate <= 0 {
		errs = append(errs, fmt.Errorf("learning rate %v ≤ 0", o.LearningRate))
	}
	if o.Dropout >= 1 {
		errs = append(errs, fmt.Errorf("dropout %v ≥ 1", o.Dropout))
	}
	if o.Hidden < 1 || o.MinHidden < 0 || o.DecoderUnits < 1 || o.AttentionUnits < 1 {
		errs = append(errs, errors.New("hidden, decoder and attention widths must be ≥ 1"))
	}
	if o.SeqDecoder != DecoderSet && o.SeqDecoder != DecoderAttention {
		errs = append(errs, fmt.Errorf("seq decoder %q: want %q or %q", o.SeqDecoder, DecoderSet, DecoderAttention))
	}
	if o.MaxSeqLen < 1 || o.MaxSeqLen > 1024 {
		errs = append(errs, fmt.Errorf("max sequence length %d: want 1..1024", o.MaxSeqLen))
	}
	if o.CountLoss != "mse" && o.CountLoss != "mae" {
		errs = append(errs, fmt.Errorf("count loss %q: want mse or mae", o.CountLoss))
	}
	if o.MaxAge < 1 {
		errs = append(errs, fmt.Errorf("max age %d < 1", o.MaxAge))
	}
	for _, a := range o.EvalAges {
		if a < 1 {
			errs = append(errs, fmt.Errorf("eval age %d < 1", a))
		}
	}
	return errors.Join(errs...)
}

func (o *TrainOptions) dropout() float64 { return max(o.Dropout, 0) }
