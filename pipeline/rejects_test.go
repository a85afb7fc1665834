package pipeline

import (
	"bytes"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// A flood of rejections is counted exactly and logged sampled: the first
// of each reason at once, then one line per reason per period carrying the
// number suppressed since.
func TestRejectsCountExactlyAndLogSampled(t *testing.T) {
	var buf bytes.Buffer
	r := NewRejects(zerolog.New(&buf), 10*time.Second)
	now := time.Unix(1000, 0)
	var clock sync.Mutex
	r.now = func() time.Time { clock.Lock(); defer clock.Unlock(); return now }

	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				r.Reject(RejectBadToken, "mlink.outputs.a.b", nil)
			}
		}()
	}
	wg.Wait()
	r.Reject(RejectLate, "mlink.plan.a", nil)
	if got := r.Snapshot(); got[RejectBadToken] != 4000 || got[RejectLate] != 1 || r.Total() != 4001 {
		t.Fatalf("counts %v, want 4000 bad tokens and 1 late", got)
	}
	lines := bytes.Count(buf.Bytes(), []byte("\n"))
	if lines != 2 {
		t.Fatalf("%d log lines for 4001 rejections in one period, want 2 (one per reason):\n%s", lines, buf.String())
	}
	buf.Reset()
	clock.Lock()
	now = now.Add(10 * time.Second)
	clock.Unlock()
	r.Reject(RejectBadToken, "mlink.outputs.a.b", nil)
	var line struct {
		Reason     string `json:"reason"`
		Suppressed uint64 `json:"suppressed"`
	}
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("%v: %q", err, buf.String())
	}
	if line.Reason != string(RejectBadToken) || line.Suppressed != 3999 {
		t.Fatalf("after the period: %+v, want bad_token with 3999 suppressed", line)
	}
}

func TestTokensDiffer(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		tok := NewToken()
		if len(tok) < 26 || seen[tok] {
			t.Fatalf("token %q short or repeated", tok)
		}
		seen[tok] = true
	}
}
