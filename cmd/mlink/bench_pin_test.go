package main

import (
	"bytes"
	"flag"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/mlink-project/mlink/scheduler"
	"github.com/mlink-project/mlink/scheduler/report"
)

// updatePins rewrites the README's pinned tables with what the bench
// measures now (a deliberate change: review the diff):
//
//	go test ./cmd/mlink -run TestReadmeBenchNumbersArePinned -update-pins
var updatePins = flag.Bool("update-pins", false, "rewrite the README's pinned bench tables with the numbers measured now")

// pinTolerance is how far (in accuracy points) a freshly measured headline
// may be from the README's before the test fails.
const pinTolerance = 0.5

// pinBlock matches a pinned table in the README: the bench arguments that
// reproduce it in the opening comment (paths from the repository root),
// the Markdown written by report.WriteMarkdown between the comments.
var pinBlock = regexp.MustCompile(`(?s)<!-- bench-pin: ([^>]*?) -->\n(.*?)<!-- /bench-pin -->`)

// The README's headline tables are what the bench measures now, within
// pinTolerance, on every committed trace: a change that moves a headline
// number fails here until the README says the new one. Every row says
// whether it fits its budget, and that agrees with its measured cost.
func TestReadmeBenchNumbersArePinned(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := pinBlock.FindAllSubmatch(readme, -1)
	if len(blocks) < 3 {
		t.Fatalf("README pins %d bench tables, want one per committed trace (at least 3)", len(blocks))
	}
	updated := readme
	var mu sync.Mutex // guards updated
	// The blocks replay in parallel (each replay is one goroutine; the
	// package's tests must stay inside their time); the group returns when
	// every block is done, before the README is rewritten.
	// Blocks of one trace share its trained links (the same frames train
	// the same links): each trace's links train once.
	learners := newLearnerPool()
	t.Run("blocks", func(t *testing.T) {
		for _, b := range blocks {
			pinBlockTest(t, b, &updated, &mu, learners)
		}
	})
	if *updatePins {
		if err := os.WriteFile("../../README.md", updated, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Log("README's pinned tables rewritten: review `git diff README.md`")
	}
}

// pinBlockTest measures one pinned block in a parallel subtest: it checks
// the README's numbers, or (-update-pins) rewrites the block in updated.
func pinBlockTest(t *testing.T, b [][]byte, updated *[]byte, mu *sync.Mutex, learners *learnerPool) {
	args := strings.Fields(string(b[1]))
	for i, a := range args {
		if i > 0 && args[i-1] == "--trace" {
			args[i] = filepath.Join("../..", a)
		}
	}
	t.Run(strings.Join(args, " "), func(t *testing.T) {
		t.Parallel()
		o, err := parseBenchTrace(args)
		if err != nil {
			t.Fatalf("README's bench arguments: %v", err)
		}
		o.learners = learners
		rows, err := benchTrace(o, zerolog.Nop(), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		checkFits(t, rows)
		var md strings.Builder
		if err := report.WriteMarkdown(&md, rows); err != nil {
			t.Fatal(err)
		}
		if *updatePins {
			block := "<!-- bench-pin: " + string(b[1]) + " -->\n" + md.String() + "<!-- /bench-pin -->"
			mu.Lock()
			*updated = bytes.Replace(*updated, b[0], []byte(block), 1)
			mu.Unlock()
			return
		}
		want, got := parsePinned(t, string(b[2])), parsePinned(t, md.String())
		for key, w := range want {
			g, ok := got[key]
			switch {
			case !ok:
				t.Errorf("%s: in the README, not measured", key)
			case math.Abs(g.strict-w.strict) > pinTolerance || math.Abs(g.graded-w.graded) > pinTolerance || g.fits != w.fits:
				t.Errorf("%s: measured %.1f / %.1f (fits %v), README says %.1f / %.1f (fits %v)", key, g.strict, g.graded, g.fits, w.strict, w.graded, w.fits)
			}
		}
		for key := range got {
			if _, ok := want[key]; !ok {
				t.Errorf("%s: measured, missing from the README", key)
			}
		}
		if t.Failed() {
			t.Logf("measured now:\n%s", md.String())
		}
	})
}

// checkFits: each row's fits flag is what its measured cost says under its
// budget's semantics.
func checkFits(t *testing.T, rows []report.Row) {
	t.Helper()
	for _, r := range rows {
		if r.IsNone() || r.BudgetUnit != "ms" {
			continue
		}
		var fits bool
		switch r.BudgetMode {
		case string(scheduler.TimeCap):
			fits = r.MSPerFrameMaxUnprofiled <= r.BudgetValue+1e-6
		case string(scheduler.TimeMean):
			fits = r.MSPerFrame <= r.BudgetValue+1e-6
		default:
			t.Errorf("%s at %s: budget mode %q", r.Policy, r.Budget, r.BudgetMode)
			continue
		}
		if fits != r.Fits {
			t.Errorf("%s at %s (%s): fits %v, but mean %.1f and heaviest unprofiled frame %.1f ms", r.Policy, r.Budget, r.BudgetMode, r.Fits, r.MSPerFrame, r.MSPerFrameMaxUnprofiled)
		}
		if r.MSPerFrameP50 > r.MSPerFrameP95 || r.MSPerFrameP95 > r.MSPerFrameMax || r.MSPerFrameMaxUnprofiled > r.MSPerFrameMax {
			t.Errorf("%s at %s: per-frame costs out of order: p50 %.1f p95 %.1f max %.1f max unprofiled %.1f", r.Policy, r.Budget, r.MSPerFrameP50, r.MSPerFrameP95, r.MSPerFrameMax, r.MSPerFrameMaxUnprofiled)
		}
	}
}

type pinnedCell struct {
	strict, graded float64
	fits           bool
}

var pinnedCellRE = regexp.MustCompile(`^([0-9.]+) / ([0-9.]+)( ✗)?$`)

// parsePinned reads WriteMarkdown's tables: (table, policy, column) → cell.
func parsePinned(t *testing.T, md string) map[string]pinnedCell {
	t.Helper()
	out := map[string]pinnedCell{}
	var header []string
	for _, line := range strings.Split(md, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") || strings.HasPrefix(line, "|---") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if strings.HasPrefix(cells[0], "policy (") {
			header = cells
			continue
		}
		if header == nil || len(cells) != len(header) {
			t.Fatalf("pinned table line %q does not match its header %q", line, header)
		}
		for i := 1; i < len(cells); i++ {
			if cells[i] == "–" {
				continue
			}
			m := pinnedCellRE.FindStringSubmatch(cells[i])
			if m == nil {
				t.Fatalf("pinned cell %q (line %q): want STRICT / GRADED, ✗ when it does not fit", cells[i], line)
			}
			strict, _ := strconv.ParseFloat(m[1], 64)
			graded, _ := strconv.ParseFloat(m[2], 64)
			out[header[0]+" "+cells[0]+" @ "+header[i]] = pinnedCell{strict, graded, m[3] == ""}
		}
	}
	return out
}
