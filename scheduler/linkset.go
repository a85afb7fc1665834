package scheduler

import (
	"encoding"

	"github.com/mlink-project/mlink/links"
	"github.com/mlink-project/mlink/pipeline/assemble"
)

// LinkSet is what the pipeline needs of learned links beyond predicting:
// the scheduler, the trainer role, the predictors and the link store use
// only this, so none of them names the concrete links type (and another
// kind of links can take its place). Each piece is its own small interface
// where a caller needs only that piece.
type LinkSet interface {
	Predictor
	assemble.TemporalPredictor
	// assemble.LossPredictor gives active sampling the losses with the
	// outputs; LossPredictor computes them afterwards where it did not.
	assemble.LossPredictor
	LossPredictor
	Evaluated
	// MarshalBinary is the form the link store shares between processes.
	encoding.BinaryMarshaler
	// Covers reports whether the links predict every one of models: links
	// stored for another configuration are not used.
	Covers(models []string) bool
}

// Evaluated links carry the evaluation measured on them: it travels with
// them (through the link store, to a scheduler in another process, which
// selects on it) instead of beside them.
type Evaluated interface {
	Evaluation() *links.Evaluation
	SetEvaluation(*links.Evaluation)
}

var _ LinkSet = (*links.Set)(nil)
