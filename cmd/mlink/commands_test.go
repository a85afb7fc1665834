package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mlink-project/mlink/pipeline"
)

// TestMain lets the test binary be mlink itself: with MLINK_TEST_MAIN=1 it
// runs main on its arguments, so that exit statuses and what goes to
// stdout and stderr are checked on the real entry point without a build.
func TestMain(m *testing.M) {
	if os.Getenv("MLINK_TEST_MAIN") == "1" {
		os.Args = append([]string{"mlink"}, os.Args[1:]...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// mlinkCLI runs main in a child process and returns its exit status,
// stdout and stderr.
func mlinkCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "MLINK_TEST_MAIN=1")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return code, out.String(), errOut.String()
}

func TestCLIHelpExitsZeroWithTheUsage(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"--help"}, {"-help"}, {"help"}} {
		code, out, errOut := mlinkCLI(t, args...)
		if code != 0 || out != usage() || errOut != "" {
			t.Errorf("mlink %v: exit %d, stdout %d bytes (usage: %v), stderr %q; want 0 and the usage on stdout",
				args, code, len(out), out == usage(), errOut)
		}
	}
}

func TestCLIEveryCommandHelpPrintsItsFlags(t *testing.T) {
	for _, c := range commands() {
		if c.hidden {
			continue // an alias: its flag set is the command's it aliases
		}
		args := append(strings.Fields(c.name), "-h")
		code, out, errOut := mlinkCLI(t, args...)
		if code != 0 || errOut != "" {
			t.Errorf("mlink %s -h: exit %d, stderr %q; want 0", c.name, code, errOut)
			continue
		}
		if !strings.HasPrefix(out, "Usage: mlink "+c.name+" ") {
			t.Errorf("mlink %s -h starts %.60q, want its usage line", c.name, out)
		}
		fs, _ := c.flags()
		fs.VisitAll(func(f *flag.Flag) {
			if !strings.Contains(out, "  -"+f.Name+" ") && !strings.Contains(out, "  -"+f.Name+"\n") {
				t.Errorf("mlink %s -h does not list -%s", c.name, f.Name)
			}
		})
		// mlink help COMMAND is the same.
		if _, viaHelp, _ := mlinkCLI(t, append([]string{"help"}, strings.Fields(c.name)...)...); viaHelp != out {
			t.Errorf("mlink help %s differs from mlink %s -h", c.name, c.name)
		}
	}
}

func TestCLIInvalidInvocationsExitTwo(t *testing.T) {
	cases := []struct {
		args       []string
		wantStderr []string
	}{
		{nil, []string{"Usage:", "no command given"}},
		{[]string{"nonsense"}, []string{"Usage:", `unknown command "nonsense"`}},
		{[]string{"help", "nonsense"}, []string{`unknown command "nonsense"`}},
		{[]string{"links"}, []string{"mlink links train", "give a subcommand"}},
		{[]string{"links", "nonsense"}, []string{`unknown subcommand "nonsense"`}},
		{[]string{"bench"}, []string{"mlink bench pipeline", "give --trace TRACE"}},
		{[]string{"bench", "nonsense"}, []string{`unknown subcommand "nonsense"`}},
		{[]string{"run", "--no-such-flag"}, []string{"flag provided but not defined", "Usage: mlink run"}},
		{[]string{"run", "-c", "x.yaml", "stray"}, []string{`mlink run: unexpected argument "stray"`}},
		{[]string{"validate"}, []string{"-c FILE is required"}},
		{[]string{"run", "-c", "../../configs/demo.yaml", "--pool", "nowhere"}, []string{"--pool nowhere: not a pool of the config (declared: camera-box, site-pc, cloud-gpu)"}},
		{[]string{"run", "-c", "../../configs/demo.yaml", "--role", "ingest", "--pool", "cloud-gpu"}, []string{"--pool cloud-gpu: only model workers join a pool"}},
		{[]string{"version", "extra"}, []string{"unexpected argument"}},
	}
	for _, c := range cases {
		code, out, errOut := mlinkCLI(t, c.args...)
		if code != 2 {
			t.Errorf("mlink %v: exit %d, want 2 (stderr %q)", c.args, code, errOut)
		}
		if out != "" {
			t.Errorf("mlink %v wrote to stdout: %.80q", c.args, out)
		}
		for _, w := range c.wantStderr {
			if !strings.Contains(errOut, w) {
				t.Errorf("mlink %v: stderr lacks %q:\n%s", c.args, w, errOut)
			}
		}
	}
}

func TestCLIValidateAConfigExitsZero(t *testing.T) {
	dir := t.TempDir()
	video := filepath.Join(dir, "v.avi")
	os.WriteFile(video, []byte("x"), 0o644)
	path := filepath.Join(dir, "c.yaml")
	os.WriteFile(path, []byte("cameras: [{id: a, source: file, url: v.avi}]\nmodels: [{name: motion, backend: opencv-mog2}]\n"), 0o644)
	code, out, errOut := mlinkCLI(t, "validate", "-c", path, "--policy", "skip", "--budget", "40ms")
	if code != 0 || !strings.Contains(out, "ok (1 cameras, 1 models, policy skip)") {
		t.Errorf("validate: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// A bench-only policy (mtl) is refused live, with the command that runs it.
func TestCLIRunRefusesABenchOnlyPolicy(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "v.avi"), []byte("x"), 0o644)
	path := filepath.Join(dir, "c.yaml")
	os.WriteFile(path, []byte("cameras: [{id: a, source: file, url: v.avi}]\nmodels: [{name: motion, backend: opencv-mog2}]\n"), 0o644)
	for _, cmd := range []string{"validate", "run"} {
		code, _, errOut := mlinkCLI(t, cmd, "-c", path, "--policy", "mtl", "--budget", "40ms")
		if code == 0 || !strings.Contains(errOut, "mtl is bench-only") || !strings.Contains(errOut, "mlink bench --policies mtl") {
			t.Errorf("mlink %s --policy mtl: exit %d, stderr %q; want a refusal naming mlink bench", cmd, code, errOut)
		}
	}
}

// TestUsageIsGeneratedFromTheCommandTable checks the usage lists every
// command with its synopsis, and the policies the config accepts.
func TestUsageIsGeneratedFromTheCommandTable(t *testing.T) {
	u := usage()
	for _, c := range commands() {
		line := "  mlink " + strings.TrimSpace(c.name+" "+c.synopsis) + "\n      " + c.help + "\n"
		if c.hidden == strings.Contains(u, line) {
			t.Errorf("usage and command %q (hidden %v) disagree:\n%s", c.name, c.hidden, u)
		}
	}
	if !strings.Contains(u, strings.Join(pipeline.PolicyNames(), ", ")) {
		t.Errorf("usage does not list the policies %v", pipeline.PolicyNames())
	}
}

// synopsisFlag matches the flags a synopsis or a README line names:
// -c, --max-frames, [--policy P].
var synopsisFlag = regexp.MustCompile(`(?:^|[\s\[])(--?[a-z][a-z0-9-]*)`)

// TestUsageSynopsesNameRealFlags keeps the hand-written synopses true:
// each flag they name is in the command's flag set.
func TestUsageSynopsesNameRealFlags(t *testing.T) {
	for _, c := range commands() {
		fs, _ := c.flags()
		for _, m := range synopsisFlag.FindAllStringSubmatch(c.synopsis, -1) {
			if fs.Lookup(strings.TrimLeft(m[1], "-")) == nil {
				t.Errorf("mlink %s: the synopsis names %s, which it does not take", c.name, m[1])
			}
		}
	}
}

// TestUsageReadmeNamesOnlyRealCommandsAndTargets checks every `make
// TARGET` the README names is a Makefile target, and every mlink
// invocation it shows is a command taking the flags shown.
func TestUsageReadmeNamesOnlyRealCommandsAndTargets(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	makefile, err := os.ReadFile(filepath.Join(repoRoot, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	targets := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^([a-zA-Z0-9_.-]+):`).FindAllStringSubmatch(string(makefile), -1) {
		targets[m[1]] = true
	}
	makes := regexp.MustCompile("`make ([a-z0-9-]+)`|(?m)^make ([a-z0-9-]+)")
	for _, m := range makes.FindAllStringSubmatch(string(readme), -1) {
		target := m[1] + m[2]
		if !targets[target] {
			t.Errorf("README names `make %s`, which the Makefile does not have", target)
		}
	}
	// Inline code, and lines of code blocks, that run mlink.
	invocations := regexp.MustCompile("`(?:bin/)?mlink ([^`]+)`|(?m)^bin/mlink ([^#\n]+)")
	n := 0
	for _, m := range invocations.FindAllStringSubmatch(string(readme), -1) {
		line := m[1] + m[2]
		words := strings.Fields(line)
		if len(words) == 0 || strings.ToUpper(words[0]) == words[0] {
			continue // a placeholder such as COMMAND
		}
		if isHelpFlag(words[0]) {
			continue // mlink -h
		}
		c, _ := findCommand(words)
		if c == nil {
			t.Errorf("README shows `mlink %s`: no such command", line)
			continue
		}
		fs, _ := c.flags()
		for _, f := range synopsisFlag.FindAllStringSubmatch(line, -1) {
			if name := strings.TrimLeft(f[1], "-"); name != "h" && name != "help" && fs.Lookup(name) == nil {
				t.Errorf("README shows `mlink %s`: mlink %s has no %s", line, c.name, f[1])
			}
		}
		n++
	}
	if n < 10 {
		t.Errorf("found %d mlink invocations in the README; the pattern no longer matches how it shows them", n)
	}
}
