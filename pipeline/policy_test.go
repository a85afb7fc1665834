package pipeline

import (
	"strings"
	"testing"
)

// The real policies register from package scheduler, which this package's
// tests cannot import; these stand for them in config validation here
// (scheduler's tests check the real ones against this validation).
func init() {
	RegisterPolicy(PolicyInfo{Name: "all"})
	RegisterPolicy(PolicyInfo{Name: "standalone", Needs: NeedsBudget})
	RegisterPolicy(PolicyInfo{Name: "skip", Needs: NeedsTimeBudget, NeedsWhy: ": skipping frames saves time, not memory"})
	RegisterPolicy(PolicyInfo{Name: "mtl", Needs: NeedsBudget, BenchOnly: true})
}

func TestPolicyValidationFollowsTheRegisteredNeeds(t *testing.T) {
	for _, tc := range []struct {
		policy, budget, want string
	}{
		{"all", "", ""},
		{"standalone", "", "policy standalone needs a budget"},
		{"standalone", "gpu_memory: 1GB", ""},
		{"skip", "gpu_memory: 1GB", "policy skip needs a time budget (budget.ms_per_frame, or --budget 400ms): skipping frames saves time"},
		{"skip", "ms_per_frame: 100", ""},
		{"mtl", "ms_per_frame: 100", "scheduler.policy: mtl is bench-only (it needs what only a replay of a recorded trace has, such as the decoded frames of its videos): compare it with mlink bench --policies mtl"},
		{"fastest", "", `scheduler.policy: "fastest" is not one of all, mtl, skip, standalone`},
	} {
		yml := "cameras: [{id: c, source: rtsp, url: \"rtsp://127.0.0.1:8554/x\"}]\nmodels: [{name: m, backend: opencv-mog2}]\nscheduler: {policy: " + tc.policy + "}\nbudget: {" + tc.budget + "}\n"
		_, err := ParseConfig([]byte(yml), t.TempDir())
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s with {%s}: %v", tc.policy, tc.budget, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s with {%s}: error %v, want one saying %q", tc.policy, tc.budget, err, tc.want)
		}
	}
}

func TestRegisterPolicyRefusesDuplicatesAndBadNames(t *testing.T) {
	for _, name := range []PolicyName{"all", "", "Mlink"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("RegisterPolicy(%q) did not panic", name)
				}
			}()
			RegisterPolicy(PolicyInfo{Name: name})
		}()
	}
}

func TestImportanceNamesCamerasAndModels(t *testing.T) {
	yml := "cameras: [{id: door, source: rtsp, url: \"rtsp://127.0.0.1:8554/x\"}]\nmodels: [{name: m, backend: opencv-mog2}]\n" +
		"scheduler: {importance: {door: 3, m: 2, door/m: 5, yard: 1, door/x: 1, m/door: 1}}\n"
	_, err := ParseConfig([]byte(yml), t.TempDir())
	if err == nil {
		t.Fatal("want errors for yard, door/x and m/door")
	}
	for _, bad := range []string{`"yard"`, `"door/x"`, `"m/door"`} {
		if !strings.Contains(err.Error(), bad) {
			t.Errorf("error %v does not name %s", err, bad)
		}
	}
	for _, good := range []string{`"door"`, `"m"`, `"door/m"`} {
		if strings.Contains(err.Error(), good+" is not") {
			t.Errorf("error %v refuses %s", err, good)
		}
	}
}
