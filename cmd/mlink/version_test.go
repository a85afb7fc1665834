package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionFromBuildInfo(t *testing.T) {
	bi := func(version string, settings ...string) *debug.BuildInfo {
		b := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: "github.com/mlink-project/mlink", Version: version}}
		for i := 0; i+1 < len(settings); i += 2 {
			b.Settings = append(b.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
		}
		return b
	}
	const rev = "230d21c93ed727ef836de62dd046085577e93c26"
	cases := []struct {
		info *debug.BuildInfo
		want string
	}{
		{bi("v1.2.0", "vcs.revision", rev, "vcs.modified", "false"), "mlink v1.2.0 (230d21c, go1.26.0)"},
		{bi("v0.0.0-20261202011857-230d21c93ed7+dirty", "vcs.revision", rev, "vcs.modified", "true"),
			"mlink v0.0.0-20261202011857-230d21c93ed7+dirty (230d21c-dirty, go1.26.0)"},
		{bi("(devel)"), "mlink (devel) (revision unknown: built without VCS information, go1.26.0)"},
		{nil, "mlink unknown (no build information)"},
	}
	for _, c := range cases {
		if got := versionString(c.info); got != c.want {
			t.Errorf("versionString = %q, want %q", got, c.want)
		}
	}
	// -ldflags -X main.version (an image built without .git) wins.
	version = "v9.9.9"
	defer func() { version = "" }()
	if got := versionString(bi("(devel)")); got != "mlink v9.9.9 (revision unknown: built without VCS information, go1.26.0)" {
		t.Errorf("with -X main.version: %q", got)
	}
}

// TestVersionOfABinaryBuiltInACheckout builds mlink with `go build` in a
// git checkout made in a temporary directory from this tree's files (the
// tested code, committed there), with an uncommitted change, and checks
// `mlink version` names that checkout's HEAD as `git rev-parse --short`
// does, marked -dirty. Not built here: Go stamps VCS information only
// where .git is a directory, not in a linked worktree (golang/go#58218),
// where these tests may run.
func TestVersionOfABinaryBuiltInACheckout(t *testing.T) {
	git := needTool(t, "git", "apt-get install git")
	gobin := needTool(t, "go", "install Go")
	run := func(dir string, name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		// The machine's GOFLAGS may turn stamping off (-buildvcs=false);
		// the flag given below overrides it. Quiet the C warnings of cgo
		// dependencies, as the Makefile does.
		cmd.Env = append(os.Environ(), "CGO_CFLAGS=-Wno-deprecated-declarations",
			"GIT_AUTHOR_NAME=test", "GIT_AUTHOR_EMAIL=test@example.invalid",
			"GIT_COMMITTER_NAME=test", "GIT_COMMITTER_EMAIL=test@example.invalid")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	// The tree's files as git sees them: tracked and new, not ignored.
	files := strings.Split(run(repoRoot, git, "ls-files", "--cached", "--others", "--exclude-standard"), "\n")
	dir := filepath.Join(t.TempDir(), "src")
	copied := 0
	for _, f := range files {
		src := filepath.Join(repoRoot, f)
		if fi, err := os.Lstat(src); err != nil || !fi.Mode().IsRegular() {
			continue // deleted, or a symlink such as .deps
		}
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			t.Fatal(err)
		}
		copied++
	}
	if copied == 0 {
		t.Fatal("no files to build from")
	}
	run(dir, git, "init", "--quiet")
	run(dir, git, "add", "--all")
	run(dir, git, "commit", "--quiet", "--no-gpg-sign", "-m", "the tree under test")
	// An uncommitted change: what `git status --porcelain` reports is what
	// Go records as vcs.modified.
	readme := filepath.Join(dir, "README.md")
	data, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(readme, append(data, "\nchanged\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "mlink")
	run(dir, gobin, "build", "-buildvcs=true", "-o", bin, "./cmd/mlink")

	// git abbreviates to at least 7 characters, more only where 7 would be
	// ambiguous (never in this one-commit repository); mlink prints 7.
	short := run(dir, git, "rev-parse", "--short", "HEAD")
	out := run(dir, bin, "version")
	m := regexp.MustCompile(`^mlink (\S+) \(([0-9a-f]{7})(-dirty)?, go[0-9.]+\S*\)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("mlink version printed %q", out)
	}
	if m[2] != short || m[3] != "-dirty" {
		t.Errorf("mlink version printed revision %s%s, want %s-dirty (git rev-parse --short HEAD, with the uncommitted change)", m[2], m[3], short)
	}
	// The module version Go stamps from a checkout: the tag, or a
	// pseudo-version naming the commit, +dirty here.
	if !strings.HasPrefix(m[1], "v") || !strings.HasSuffix(m[1], "+dirty") {
		t.Errorf("module version %q, want Go's stamp of a changed checkout (v…+dirty)", m[1])
	}
}
