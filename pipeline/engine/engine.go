// Package engine runs the long-lived parts of an mlink process as stages of
// one run group: stages start downstream first, any stage that fails stops
// the whole process with its error, and the group stops them in one stated
// order, each given what is left of a deadline (as Prometheus'
// cmd/prometheus run group, with an order instead of all at once).
package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Stage is one long-running part of a process: a camera, the scheduler, a
// model worker, the merger, the HTTP side.
type Stage interface {
	// Name identifies the stage in logs, errors and metrics ("worker hog_people").
	Name() string
	// Run works until ctx is cancelled, then releases what it holds and
	// returns nil. Any other return is the stage's end: an error is a
	// failure that stops the process; nil before ctx ends is a failure too
	// unless the stage is Finite.
	Run(ctx context.Context) error
}

// Readier is a stage that needs a moment before it serves (its
// subscriptions live): the group waits for Ready before the next stage
// starts, so nothing upstream publishes into the void.
type Readier interface {
	Ready() <-chan struct{}
}

// Func is a Stage made of a function; Ready, when not nil, is its ready
// signal.
type Func struct {
	StageName string
	RunFunc   func(ctx context.Context) error
	ReadyChan <-chan struct{}
}

// Name implements Stage.
func (f Func) Name() string { return f.StageName }

// Run implements Stage.
func (f Func) Run(ctx context.Context) error { return f.RunFunc(ctx) }

// Ready implements Readier (a nil channel means ready at once).
func (f Func) Ready() <-chan struct{} {
	if f.ReadyChan == nil {
		return closed
	}
	return f.ReadyChan
}

var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Options set how one stage is run.
type Options struct {
	// Finite stages may end on their own with nil (a camera reading a file
	// to its end, --max-frames): that ends the stage, not the process.
	Finite bool
	// ReadyTimeout bounds the wait for a Readier (default 10s).
	ReadyTimeout time.Duration
}

// Info is what the group knows of one stage, for metrics and status.
type Info struct {
	Name    string
	Tier    string
	Running bool
	Started time.Time
	// Err is the stage's error once it failed.
	Err error
}

// Group is a run group: every stage of a process, in tiers stopped in a
// fixed order.
type Group struct {
	order []string

	mu       sync.Mutex
	members  []*member
	stopping bool

	failOnce sync.Once
	failed   chan struct{}
	err      error
}

type member struct {
	stage   Stage
	tier    string
	finite  bool
	started time.Time
	cancel  context.CancelFunc
	done    chan struct{}
	err     error // set before done is closed
}

// New makes a group whose tiers stop in stopOrder, first to last (start
// them in the reverse order: downstream first).
func New(stopOrder ...string) *Group {
	return &Group{order: stopOrder, failed: make(chan struct{})}
}

// Go starts s in tier and, for a Readier, waits until it is ready. The
// stage's context is the group's, not the caller's: it ends when the group
// stops the stage's tier or the stage itself (Handle.Stop).
func (g *Group) Go(tier string, s Stage, o Options) (*Handle, error) {
	if !slices.Contains(g.order, tier) {
		return nil, fmt.Errorf("stage %q: tier %q is not one of %s", s.Name(), tier, strings.Join(g.order, ", "))
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &member{stage: s, tier: tier, finite: o.Finite, started: time.Now(), cancel: cancel, done: make(chan struct{})}
	g.mu.Lock()
	if g.stopping {
		g.mu.Unlock()
		cancel()
		return nil, fmt.Errorf("stage %q: the process is stopping", s.Name())
	}
	g.members = append(g.members, m)
	g.mu.Unlock()
	go func() {
		err := s.Run(ctx)
		if err == nil && ctx.Err() == nil && !m.finite {
			err = errors.New("ended on its own; it must run until stopped")
		}
		if err != nil {
			err = fmt.Errorf("stage %s: %w", s.Name(), err)
			g.fail(err)
		}
		m.err = err
		close(m.done)
	}()
	h := &Handle{g: g, m: m}
	r, ok := s.(Readier)
	if !ok {
		return h, nil
	}
	timeout := o.ReadyTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-r.Ready():
		return h, nil
	case <-m.done:
		return h, m.err
	case <-t.C:
		return h, fmt.Errorf("stage %s: not ready within %s", s.Name(), timeout)
	}
}

func (g *Group) fail(err error) {
	g.failOnce.Do(func() {
		g.err = err
		close(g.failed)
	})
}

// Failed is closed when a stage fails (see Err).
func (g *Group) Failed() <-chan struct{} { return g.failed }

// Err is the first stage failure, nil while none failed.
func (g *Group) Err() error {
	select {
	case <-g.failed:
		return g.err
	default:
		return nil
	}
}

// Stop stops every tier in order: each stage of a tier is cancelled, and
// the next tier starts stopping once they have all returned. When ctx ends
// first, Stop returns at once with an error naming the stages still
// running: the caller forces the exit. Stages added while stopping are
// refused.
func (g *Group) Stop(ctx context.Context) error {
	g.mu.Lock()
	g.stopping = true
	members := slices.Clone(g.members)
	g.mu.Unlock()
	for _, tier := range g.order {
		var mine []*member
		for _, m := range members {
			if m.tier == tier {
				m.cancel()
				mine = append(mine, m)
			}
		}
		for _, m := range mine {
			select {
			case <-m.done:
			case <-ctx.Done():
				return fmt.Errorf("forced stop: %s still running: %w", strings.Join(running(members), ", "), ctx.Err())
			}
		}
	}
	return nil
}

func running(ms []*member) []string {
	var names []string
	for _, m := range ms {
		select {
		case <-m.done:
		default:
			names = append(names, m.stage.Name())
		}
	}
	return names
}

// Stages lists every stage started, in start order.
func (g *Group) Stages() []Info {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Info, 0, len(g.members))
	for _, m := range g.members {
		i := Info{Name: m.stage.Name(), Tier: m.tier, Started: m.started, Running: true}
		select {
		case <-m.done:
			i.Running, i.Err = false, m.err
		default:
		}
		out = append(out, i)
	}
	return out
}

// Handle is one started stage.
type Handle struct {
	g *Group
	m *member
}

// Done is closed once the stage has returned.
func (h *Handle) Done() <-chan struct{} { return h.m.done }

// Stop stops this stage alone (a camera removed by a reload) and forgets
// it; it waits until the stage returned or ctx ended.
func (h *Handle) Stop(ctx context.Context) error {
	h.m.cancel()
	select {
	case <-h.m.done:
	case <-ctx.Done():
		return fmt.Errorf("stage %s did not stop: %w", h.m.stage.Name(), ctx.Err())
	}
	h.g.mu.Lock()
	h.g.members = slices.DeleteFunc(h.g.members, func(m *member) bool { return m == h.m })
	h.g.mu.Unlock()
	return nil
}
