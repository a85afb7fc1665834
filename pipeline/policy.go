package pipeline

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
)

// PolicyName names a scheduling policy (scheduler.policy, --policy, the
// bench's rows).
type PolicyName string

// BudgetNeed is what budget a policy cannot do without.
type BudgetNeed int

const (
	// NeedsNoBudget: the policy runs without a budget (all, mlink-hybrid).
	NeedsNoBudget BudgetNeed = iota
	// NeedsBudget: a memory or a time budget (standalone, mlink).
	NeedsBudget
	// NeedsTimeBudget: a time budget (the frame-skipping policies).
	NeedsTimeBudget
)

// PolicyInfo is what the configuration knows of a policy. Policies register
// it themselves (package scheduler, one file each), so config validation,
// the --policy flag, the usage text and the bench list every registered
// policy with no other edit.
type PolicyInfo struct {
	Name PolicyName
	// Summary is one line for the usage text and the README's policy table:
	// what runs, and what serves the models that do not.
	Summary string
	// Rank orders the policies in lists (the reference first, then the
	// baselines, then the link policies); ties go by name.
	Rank  int
	Needs BudgetNeed
	// NeedsWhy is added to the error of a missing budget (": skipping
	// frames saves time, not memory").
	NeedsWhy string
	// Links: the policy trains model links and serves models with them
	// (the training modes, the trainer role and the link predictors apply).
	Links bool
	// TemporalLinks: the policy can use temporal links (scheduler.temporal_links).
	TemporalLinks bool
	// BenchOnly: the policy needs what only a replay of a recorded trace
	// has (e.g. the decoded frames of the trace's videos), so mlink bench
	// runs it and a live run (mlink run, validate) refuses it.
	BenchOnly bool
}

var (
	policiesMu sync.RWMutex
	policies   = map[PolicyName]PolicyInfo{}
)

// RegisterPolicy makes a policy known to the configuration. Called from
// init functions; a name registered twice is a programming error.
func RegisterPolicy(info PolicyInfo) {
	policiesMu.Lock()
	defer policiesMu.Unlock()
	if err := ValidPolicyName(info.Name); err != nil {
		panic(fmt.Sprintf("register policy: %v", err))
	}
	if _, dup := policies[info.Name]; dup {
		panic(fmt.Sprintf("register policy: %q registered twice", info.Name))
	}
	policies[info.Name] = info
}

// ValidPolicyName: lower-case words joined by '-', with an optional
// "/variant" (an ablation, e.g. mlink-hybrid/no-links).
func ValidPolicyName(n PolicyName) error {
	if n == "" {
		return fmt.Errorf("empty policy name")
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '/') {
			return fmt.Errorf("policy name %q: only a-z, 0-9, '-' and '/'", n)
		}
	}
	return nil
}

// LookupPolicy returns a registered policy.
func LookupPolicy(name PolicyName) (PolicyInfo, bool) {
	policiesMu.RLock()
	defer policiesMu.RUnlock()
	info, ok := policies[name]
	return info, ok
}

// Policies lists the registered policies by rank, then name.
func Policies() []PolicyInfo {
	policiesMu.RLock()
	out := make([]PolicyInfo, 0, len(policies))
	for _, p := range policies {
		out = append(out, p)
	}
	policiesMu.RUnlock()
	slices.SortFunc(out, func(a, b PolicyInfo) int {
		return cmp.Or(cmp.Compare(a.Rank, b.Rank), cmp.Compare(a.Name, b.Name))
	})
	return out
}

// PolicyNames lists the registered policies' names as Policies orders them.
func PolicyNames() []string {
	var out []string
	for _, p := range Policies() {
		out = append(out, string(p.Name))
	}
	return out
}
