package scheduler

import (
	"time"

	"github.com/mlink-project/mlink/pipeline"
)

// FrameFilter decides, before the policy plans a frame, whether the frame
// goes to the models at all (Reducto, stages/reducto). A filtered frame
// reuses every model's last exact result (the merger fills them in).
//
// Filter is called from the scheduler's one routing goroutine, in each
// camera's frame order; ObserveResult from the results subscription's
// goroutine, concurrently with Filter. The scheduler never calls Close:
// whoever made the filter closes it after the scheduler's Run returned.
type FrameFilter interface {
	// Filter says whether f goes to the models. An error rejects nothing:
	// the scheduler logs it and sends the frame.
	Filter(f *pipeline.Frame) (send bool, err error)
	// ObserveResult sees every result (a filter profiles on exact outputs).
	ObserveResult(r *pipeline.Result)
	Close() error
}

// SetFilter puts a frame filter in front of the policy. Call it before Run.
func (s *Scheduler) SetFilter(f FrameFilter) { s.filter = f }

// filterErrorEvery bounds the filter's error logs: one per camera per
// period, so a camera sending undecodable frames cannot flood the log.
const filterErrorEvery = time.Minute

// filterErrors rate-limits the logs of one camera's filter errors.
type filterErrors struct {
	logged     time.Time
	suppressed int
}

// sendPast asks the filter about f. Failures send the frame: a broken
// filter must cost executions, never results.
func (s *Scheduler) sendPast(f *pipeline.Frame) bool {
	send, err := s.filter.Filter(f)
	if err == nil {
		return send
	}
	s.stats.FilterErrors.Add(1)
	// Only the routing goroutine gets here: the map needs no lock.
	fe := s.filterErrs[f.Camera]
	if fe == nil {
		fe = &filterErrors{}
		s.filterErrs[f.Camera] = fe
	}
	if now := time.Now(); now.Sub(fe.logged) >= filterErrorEvery {
		s.log.Warn().Err(err).Str("camera", f.Camera).Uint64("seq", f.Seq).Int("suppressed", fe.suppressed).
			Msg("frame filter failed: frame sent to the models (one log per camera per minute)")
		fe.logged, fe.suppressed = now, 0
	} else {
		fe.suppressed++
	}
	return true
}
