package pipeline

import (
	"slices"
	"strings"
	"testing"
)

func TestSubjectsCarryTheDeploymentPrefix(t *testing.T) {
	var zero Subjects
	if zero.Results("plaza") != "mlink.results.plaza" || zero.ResultsStream() != "MLINK_RESULTS" || zero.LinksBucket() != "MLINK_LINKS" {
		t.Fatalf("the zero value must be the default deployment: %s %s %s", zero.Results("plaza"), zero.ResultsStream(), zero.LinksBucket())
	}
	s := Subjects{Prefix: "site-b"}
	names := []string{s.Frames("plaza"), s.Infer("hog"), s.InferQueue("hog"), s.InferOn("gpu", "hog"), s.InferQueueOn("gpu", "hog"), s.Outputs("plaza", "hog"), s.Plan("plaza"),
		s.Results("plaza"), s.Predict(), s.PredictQueue(), s.Escalate("plaza"), s.Health("hog"), s.Consumer("trainer"),
		s.AllFrames(), s.AllOutputs(), s.AllPlans(), s.AllResults(), s.AllHealth(), s.AllEscalations()}
	for _, n := range names {
		if !strings.HasPrefix(n, "site-b.") && !strings.HasPrefix(n, "site-b-") {
			t.Errorf("%q does not start with the prefix", n)
		}
	}
	// A pool's infer subject is apart from the unpooled one: a worker of
	// neither takes the other's frames, and pool "hog" is no model.
	if s.InferOn("gpu", "hog") != "site-b.infer.gpu.hog" || s.InferFor("", "hog") != s.Infer("hog") || s.InferFor("gpu", "hog") != s.InferOn("gpu", "hog") ||
		s.InferQueueOn("gpu", "hog") == s.InferQueue("hog") {
		t.Errorf("pool subjects %s %s %s", s.InferOn("gpu", "hog"), s.InferFor("", "hog"), s.InferQueueOn("gpu", "hog"))
	}
	if s.ResultsStream() != "SITE-B_RESULTS" || s.LinksBucket() != "SITE-B_LINKS" {
		t.Errorf("JetStream names %s %s", s.ResultsStream(), s.LinksBucket())
	}
	if !strings.HasPrefix(s.Plan("plaza"), s.PlanPrefix()) || !strings.HasPrefix(s.Outputs("plaza", "hog"), s.OutputsPrefix()) ||
		!strings.HasPrefix(s.Results("plaza"), s.ResultsPrefix()) || !strings.HasPrefix(s.Escalate("plaza"), s.EscalatePrefix()) {
		t.Error("a subject's fixed part is not its prefix")
	}
}

func TestSubjectPrefixValidation(t *testing.T) {
	for _, ok := range []string{"mlink", "site-a", "b_2", strings.Repeat("x", 32)} {
		if err := ValidSubjectPrefix(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	// Upper case would let "a" and "A" share the stream A_RESULTS; a dot
	// or wildcard is not one token.
	for _, bad := range []string{"", "Site", "a.b", "a*", "a>", "a b", strings.Repeat("x", 33)} {
		if err := ValidSubjectPrefix(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Each role's permissions name the deployment's subjects, so that a role
// of one deployment cannot publish or read another's.
func TestRolePermissionsFollowThePrefix(t *testing.T) {
	s := Subjects{Prefix: "site-b"}
	for _, r := range Roles {
		p := RolePermissions(r, s)
		for _, subj := range slices.Concat(p.Publish, p.Subscribe) {
			if strings.HasPrefix(subj, "mlink.") || strings.Contains(subj, "MLINK_") {
				t.Errorf("role %s may use %q, a default-deployment subject", r, subj)
			}
		}
	}
	if p := RolePermissions(RoleControl, s); !slices.Contains(p.Publish, "$O.SITE-B_LINKS.>") {
		t.Errorf("control cannot use its links bucket: %v", p.Publish)
	}
	if p := RolePermissions(RoleWatch, s); !slices.Contains(p.Publish, "$JS.API.STREAM.INFO.SITE-B_RESULTS") {
		t.Errorf("watch cannot read its results stream: %v", p.Publish)
	}
}
