package links

import (
	"fmt"
	"math/rand"
	"sync"
	"sync/atomic"
	"time"
)

// Set is a trained set of model links over the models of one trace: a link
// for every ordered pair of models, a temporal link for every pair plus a
// self-temporal link per model, and one ensemble per target (pure and
// temporal). A Set is safe for concurrent Predict calls; FineTune returns a
// new Set, so workers can swap sets atomically.
type Set struct {
	Models  []*ModelInfo
	Options TrainOptions
	// TrainFrames is the number of frames the links were trained on;
	// TrainSeconds the wall time of Train.
	TrainFrames  int
	TrainSeconds float64
	CreatedAt    time.Time

	index map[string]int
	// pure[t][s] is the link s→t (nil on the diagonal); temp[t][s] the
	// temporal link s→t, temp[t][t] the self-temporal link of t.
	pure, temp [][]*Link
	ens, tens  []*Ensemble

	eval  atomic.Pointer[evalIndex]
	tapes sync.Pool
}

func newSet(models []*ModelInfo, opts TrainOptions) *Set {
	s := &Set{Models: models, Options: opts, index: map[string]int{}}
	for i, m := range models {
		s.index[m.Name] = i
	}
	n := len(models)
	s.pure = make([][]*Link, n)
	s.temp = make([][]*Link, n)
	s.ens = make([]*Ensemble, n)
	s.tens = make([]*Ensemble, n)
	for t := range models {
		s.pure[t] = make([]*Link, n)
		s.temp[t] = make([]*Link, n)
	}
	s.tapes.New = func() any { return newTape(rand.New(rand.NewSource(1))) }
	return s
}

// build creates every link and ensemble of the architecture (untrained).
func (s *Set) build() { s.buildWith(alloc{}) }

// buildWith builds with al: a counting alloc sizes the architecture.
func (s *Set) buildWith(al alloc) {
	o := &s.Options
	for t, tm := range s.Models {
		var srcs []string
		var members []*Link
		for i, sm := range s.Models {
			if i == t {
				continue
			}
			l := newLink(sm, tm, false, o, al)
			s.pure[t][i] = l
			srcs = append(srcs, sm.Name)
			members = append(members, l)
		}
		s.ens[t] = newEnsemble(tm.Name, false, srcs, members, al)
		if o.NoTemporal {
			continue
		}
		var tsrcs []string
		var tmembers []*Link
		for i, sm := range s.Models {
			var l *Link
			if i == t {
				l = newLink(nil, tm, true, o, al)
			} else {
				l = newLink(sm, tm, true, o, al)
			}
			s.temp[t][i] = l
			tsrcs = append(tsrcs, l.Source)
			tmembers = append(tmembers, l)
		}
		s.tens[t] = newEnsemble(tm.Name, true, tsrcs, tmembers, al)
	}
}

// Links returns the pure links (every ordered pair), target-major.
func (s *Set) Links() []*Link {
	var out []*Link
	for t := range s.pure {
		for _, l := range s.pure[t] {
			if l != nil {
				out = append(out, l)
			}
		}
	}
	return out
}

// TemporalLinks returns the temporal links, self-temporal ones included.
func (s *Set) TemporalLinks() []*Link {
	var out []*Link
	for t := range s.temp {
		for _, l := range s.temp[t] {
			if l != nil {
				out = append(out, l)
			}
		}
	}
	return out
}

// Link returns the pure link source→target.
func (s *Set) Link(source, target string) (*Link, error) {
	si, ok := s.index[source]
	if !ok {
		return nil, fmt.Errorf("unknown source model %q (the links know %s)", source, s.modelList())
	}
	ti, ok := s.index[target]
	if !ok {
		return nil, fmt.Errorf("unknown target model %q (the links know %s)", target, s.modelList())
	}
	if si == ti {
		return nil, fmt.Errorf("no link from %q to itself", source)
	}
	return s.pure[ti][si], nil
}

// Model returns the model named name.
func (s *Set) Model(name string) (*ModelInfo, bool) {
	i, ok := s.index[name]
	if !ok {
		return nil, false
	}
	return s.Models[i], true
}

// Covers reports whether the set has links for every one of models.
func (s *Set) Covers(models []string) bool {
	for _, m := range models {
		if _, ok := s.Model(m); !ok {
			return false
		}
	}
	return true
}

func (s *Set) modelList() string {
	out := ""
	for i, m := range s.Models {
		if i > 0 {
			out += ", "
		}
		out += m.Name
	}
	return out
}

func (s *Set) allLinks() []*Link { return append(s.Links(), s.TemporalLinks()...) }

func (s *Set) ensembles() []*Ensemble {
	var out []*Ensemble
	for _, e := range s.ens {
		if e != nil {
			out = append(out, e)
		}
	}
	for _, e := range s.tens {
		if e != nil {
			out = append(out, e)
		}
	}
	return out
}

func (s *Set) getTape() *tape  { return s.tapes.Get().(*tape) }
func (s *Set) putTape(t *tape) { s.tapes.Put(t) }

// CheckTrace verifies that a trace holds this set's models with the same
// output types, so its frames can be predicted and evaluated.
func (s *Set) CheckTrace(h TraceHeader) error {
	byName := map[string]TraceModel{}
	for _, m := range h.Models {
		byName[m.Name] = m
	}
	for _, m := range s.Models {
		tm, ok := byName[m.Name]
		if !ok {
			return fmt.Errorf("model %q of the links is not in the trace (the trace has %d models): retrain the links on this configuration", m.Name, len(h.Models))
		}
		if tm.Type != m.Type {
			return fmt.Errorf("model %q: the links were trained on %s outputs, the trace has %s", m.Name, m.Type, tm.Type)
		}
		if m.Type == "class" && len(tm.Classes) > 0 && len(tm.Classes) != m.Dim {
			return fmt.Errorf("model %q: the links were trained on %d classes, the trace has %d (mismatched dimensions)", m.Name, m.Dim, len(tm.Classes))
		}
	}
	return nil
}
