package stages

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/pipeline/natstest"
)

// note is links of no kind the store knows: it shares whatever marshals
// and comes back through its decoder.
type note string

func (n note) MarshalBinary() ([]byte, error) { return []byte(n), nil }

func decodeNote(b []byte) (note, error) {
	if string(b) == "corrupt" {
		return "", errors.New("does not load")
	}
	return note(b), nil
}

func TestLinkStoreSharesWhatMarshals(t *testing.T) {
	srv := natstest.Start(t)
	nc := natstest.Connect(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := OpenLinkStore(ctx, nc, pipeline.DefaultSubjects, decodeNote, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Latest(ctx); err != nil || got != "" {
		t.Fatalf("nothing published: %q, %v; want the zero value and no error", got, err)
	}
	if err := s.Publish(ctx, note("first")); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Latest(ctx); err != nil || got != "first" {
		t.Fatalf("latest %q, %v; want first", got, err)
	}
	var mu sync.Mutex
	var seen []note
	followCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- s.Follow(followCtx, func(n note) {
			mu.Lock()
			seen = append(seen, n)
			mu.Unlock()
		})
	}()
	last := func() note {
		mu.Lock()
		defer mu.Unlock()
		if len(seen) == 0 {
			return ""
		}
		return seen[len(seen)-1]
	}
	natstest.WaitFor(t, 10*time.Second, "the current links", func() bool { return last() == "first" })
	// A set that does not load is skipped; the next one is installed.
	for _, n := range []note{"corrupt", "second"} {
		if err := s.Publish(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	natstest.WaitFor(t, 10*time.Second, "the second links", func() bool { return last() == "second" })
	mu.Lock()
	for _, n := range seen {
		if n == "corrupt" || n == "" {
			t.Errorf("installed %q", n)
		}
	}
	mu.Unlock()
	if _, err := s.Latest(ctx); err != nil {
		t.Fatal(err)
	}
	stop()
	if err := <-done; err != nil {
		t.Errorf("follow: %v", err)
	}
}
