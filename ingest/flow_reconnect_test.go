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
