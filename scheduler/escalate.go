package scheduler

import (
	"crypto/subtle"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/mlink-project/mlink/pipeline"
)

// keptFrames bounds the frames with cascades the scheduler keeps per
// camera for escalations: a frame is escalated within its merger deadline,
// while later frames keep coming; beyond this many the oldest is dropped
// (its escalation is refused and the frame goes out partial).
const keptFrames = 64

// keptFrame is a routed frame whose plan has cascades: its later tiers'
// models may still be asked for, each once.
type keptFrame struct {
	frame   *pipeline.Frame
	pending []string
	// pools are the plan's pools (Plan.Pools): a later tier runs where
	// the plan placed it.
	pools map[string]string
}

// keep remembers a frame the merger may escalate to its cascades' later
// tiers (the models its plan does not run yet).
func (s *Scheduler) keep(f *pipeline.Frame, plan *pipeline.Plan) {
	var later []string
	for _, c := range plan.Cascades {
		for _, m := range c.Members() {
			if !slices.Contains(plan.Exact, m) {
				later = append(later, m)
			}
		}
	}
	q := append(s.kept[f.Camera], &keptFrame{frame: f, pending: later, pools: plan.Pools})
	if len(q) > keptFrames {
		q = slices.Delete(q, 0, len(q)-keptFrames)
	}
	s.kept[f.Camera] = q
}

// escalate re-sends a kept frame to the models of a cascade's next tier,
// as the merger asks once the tier before disagreed. The bus is not
// trusted: the camera comes from the subject, the token must be the
// frame's, and every model must be one of its later tiers' not yet sent,
// so a forged escalation can neither name a frame nor multiply work.
func (s *Scheduler) escalate(msg *nats.Msg) error {
	camera := strings.TrimPrefix(msg.Subject, s.subjects.EscalatePrefix())
	e, err := pipeline.Unmarshal[pipeline.Escalation](msg.Data)
	if err != nil {
		return reject(pipeline.RejectMalformed, err)
	}
	if e.Camera != camera {
		return reject(pipeline.RejectCameraMismatch, fmt.Errorf("escalation of camera %q published on %s", e.Camera, msg.Subject))
	}
	var k *keptFrame
	for _, kf := range s.kept[camera] {
		if kf.frame.Seq == e.Seq && subtle.ConstantTimeCompare([]byte(kf.frame.Token), []byte(e.Token)) == 1 {
			k = kf
		}
	}
	if k == nil {
		return reject(pipeline.RejectNotEscalable, fmt.Errorf("escalation of %s/%d: no such frame kept with that token", camera, e.Seq))
	}
	if len(e.Models) == 0 || slices.ContainsFunc(e.Models, func(m string) bool { return !slices.Contains(k.pending, m) }) {
		return reject(pipeline.RejectNotEscalable, fmt.Errorf("escalation of %s/%d to %v: the frame's later tiers not yet sent are %v", camera, e.Seq, e.Models, k.pending))
	}
	for _, m := range e.Models {
		k.pending = slices.DeleteFunc(k.pending, func(p string) bool { return p == m })
		if err := s.nc.PublishMsg(pipeline.FrameMsg(s.subjects.InferFor(k.pools[m], m), k.frame)); err != nil {
			return fmt.Errorf("escalation of %s/%d: publish frame to %s: %w", camera, e.Seq, m, err)
		}
		s.stats.EscalatedBytes.Add(int64(len(k.frame.JPEG)))
		s.stats.sentToPool(k.pools[m], len(k.frame.JPEG))
	}
	s.stats.Escalations.Add(1)
	s.stats.Executions.Add(int64(len(e.Models)))
	return nil
}
