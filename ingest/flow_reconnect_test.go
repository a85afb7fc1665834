package ingest

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// A full window waiting for results that an outage lost is released as
// soon as the connection reconnects, not after the in-flight timeout.
func TestCreditsReleasedOnReconnect(t *testing.T) {
	w := newCreditWindow(2, time.Hour)
	var reconnects atomic.Uint64
	w.add(1)
	w.add(2)
	done := make(chan int)
	go func() {
		_, released, err := w.acquire(context.Background(), reconnects.Load)
		if err != nil {
			t.Error(err)
		}
		done <- released
	}()
	select {
	case <-done:
		t.Fatal("acquire returned with the window full")
	case <-time.After(300 * time.Millisecond):
	}
	reconnects.Add(1)
	select {
	case released := <-done:
		if released != 2 || w.len() != 0 {
			t.Fatalf("released %d, %d left in flight; want 2 and 0", released, w.len())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("credits not released on reconnect")
	}
}

// Frames published just after the reconnect may be lost too (the
// scheduler's connection can come back later than the camera's): a frame
// of the settling window whose result never comes is released once the
// window has passed; one published after it keeps its slot.
func TestCreditsOfTheSettlingWindowAreReleased(t *testing.T) {
	w := newCreditWindow(1, time.Hour)
	var reconnects atomic.Uint64
	w.add(1)
	reconnects.Add(1)
	if _, released, err := w.acquire(context.Background(), reconnects.Load); err != nil || released != 1 {
		t.Fatalf("released %d (%v) on the reconnect, want 1", released, err)
	}
	w.add(2) // published at once after the reconnect: lost, no result ever
	start := time.Now()
	_, released, err := w.acquire(context.Background(), reconnects.Load)
	waited := time.Since(start)
	if err != nil || released != 1 || w.len() != 0 {
		t.Fatalf("released %d (%v), %d left; want the settling window's frame released", released, err, w.len())
	}
	if waited < reconnectSettle/2 || waited > reconnectSettle+time.Second {
		t.Errorf("released after %s, want about the settling window (%s)", waited, reconnectSettle)
	}
	w.add(3) // after the window: waits for its result as usual
	ctx, cancel := context.WithTimeout(context.Background(), reconnectSettle+500*time.Millisecond)
	defer cancel()
	if _, _, err := w.acquire(ctx, reconnects.Load); err == nil {
		t.Error("a frame published after the settling window lost its slot without a result")
	}
}
