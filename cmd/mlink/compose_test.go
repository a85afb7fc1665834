package main

// The Docker Compose deployment, checked as far as a machine without a
// Docker engine allows: the NATS service's config passes `nats-server -t`
// and, served by Debian's nats-server, gives mlink what it needs; every
// service built from this repo runs a valid mlink command, parsed with the
// binary's own flag sets, on a config that validates and that the image
// contains.

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mlink-project/mlink/links"
	"github.com/mlink-project/mlink/pipeline"
	"github.com/mlink-project/mlink/stages"
)

// repoRoot is the checkout's root, seen from this package's directory (the
// tests' working directory). Compose runs mlink in the image's /mlink,
// which holds the same tree for what the commands name (configs/, .deps/).
const repoRoot = "../.."

// needTool returns the path of a program a test needs. Where it is
// missing the test is skipped on a developer's machine, but fails under
// CI=true: CI must run every check, and a skip there would hide a gap.
func needTool(t *testing.T, name, install string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found (CI=true: this check must run): %s", name, install)
	}
	t.Skipf("%s not found: %s", name, install)
	return ""
}

type composeProject struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image string       `yaml:"image"`
	Build composeBuild `yaml:"build"`
	// Command must be a list (exec form): a string would go through a
	// shell-less split by Compose that this check could not reproduce.
	Command     []string          `yaml:"command"`
	Profiles    []string          `yaml:"profiles"`
	Volumes     []string          `yaml:"volumes"`
	DependsOn   []string          `yaml:"depends_on"`
	Environment map[string]string `yaml:"environment"`
	Deploy      struct {
		Resources struct {
			Reservations struct {
				Devices []composeDevice `yaml:"devices"`
			} `yaml:"reservations"`
		} `yaml:"resources"`
	} `yaml:"deploy"`
}

type composeDevice struct {
	Driver       string   `yaml:"driver"`
	Count        any      `yaml:"count"`
	Capabilities []string `yaml:"capabilities"`
}

// composeBuild is a service's build: a context path, or a mapping with one.
type composeBuild struct {
	Context string
	Args    map[string]string
}

func (b *composeBuild) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		b.Context = n.Value
		return nil
	}
	var m struct {
		Context string            `yaml:"context"`
		Args    map[string]string `yaml:"args"`
	}
	if err := n.Decode(&m); err != nil {
		return err
	}
	b.Context, b.Args = m.Context, m.Args
	return nil
}

// fromRepo reports whether the service's image is built from this repo.
func (s composeService) fromRepo() bool {
	return s.Build.Context == "." || s.Build.Context == "./"
}

func loadCompose(t *testing.T) composeProject {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var p composeProject
	if err := yaml.Unmarshal(data, &p); err != nil {
		t.Fatalf("docker-compose.yml: %v (commands must be lists: exec form)", err)
	}
	if len(p.Services) == 0 {
		t.Fatal("docker-compose.yml has no services")
	}
	return p
}

// natsService is the compose service running the NATS server and the repo
// file its -c names, found through the service's bind mounts.
func natsService(t *testing.T, p composeProject) (name string, conf string) {
	t.Helper()
	for n, s := range p.Services {
		if !strings.HasPrefix(s.Image, "nats:") {
			continue
		}
		i := slices.IndexFunc(s.Command, func(a string) bool { return a == "-c" || a == "--config" })
		if i < 0 || i+1 >= len(s.Command) {
			t.Fatalf("service %s: command %q does not start nats-server from a config file (-c FILE)", n, s.Command)
		}
		inContainer := s.Command[i+1]
		for _, v := range s.Volumes {
			parts := strings.Split(v, ":")
			if len(parts) >= 2 && parts[1] == inContainer {
				if !strings.HasPrefix(parts[0], "./") {
					t.Fatalf("service %s: %s is mounted from %s, not from a file kept in the repo", n, inContainer, parts[0])
				}
				return n, filepath.Join(repoRoot, parts[0])
			}
		}
		t.Fatalf("service %s: no volume mounts its config %s", n, inContainer)
	}
	t.Fatal("docker-compose.yml has no NATS service (image nats:...)")
	return "", ""
}

func TestComposeNATSConfigPassesNATSServerTest(t *testing.T) {
	bin := needTool(t, "nats-server", "apt-get install nats-server (make deps)")
	_, conf := natsService(t, loadCompose(t))
	out, err := exec.Command(bin, "-t", "-c", conf).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "is valid") {
		t.Fatalf("nats-server -t -c %s: %v\n%s", conf, err, out)
	}
}

// natsConfValue is a top-level option's value in a NATS config file (the
// simple "name: value" lines this repo's file uses).
func natsConfValue(t *testing.T, conf []byte, name string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + name + `\s*[:=]\s*"?([^"\s#]+)`).FindSubmatch(conf)
	if m == nil {
		return ""
	}
	return string(m[1])
}

// TestComposeNATSConfigServesWhatMlinkNeeds starts Debian's nats-server on
// the compose file's config (its store moved to a temporary directory, its
// ports to free ones) and checks what mlink relies on: the payload limit
// of the services' configs, JetStream with room for the results stream
// and the link store, the pending limit of mlink's own embedded server,
// and the monitoring port.
func TestComposeNATSConfigServesWhatMlinkNeeds(t *testing.T) {
	bin := needTool(t, "nats-server", "apt-get install nats-server (make deps)")
	p := loadCompose(t)
	_, conf := natsService(t, p)
	data, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	storeDir := regexp.MustCompile(`(?m)^(\s*store_dir\s*[:=]\s*).*$`)
	if !storeDir.Match(data) {
		t.Fatalf("%s: JetStream has no store_dir: streams would live in a temporary directory of the container", conf)
	}
	local := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(local, storeDir.ReplaceAll(data, []byte("${1}\""+t.TempDir()+"\"")), 0o644); err != nil {
		t.Fatal(err)
	}
	port, monitor := freePort(t), freePort(t)
	srv := exec.Command(bin, "-c", local, "-a", "127.0.0.1", "-p", fmt.Sprint(port), "-m", fmt.Sprint(monitor))
	var log strings.Builder
	srv.Stdout, srv.Stderr = &log, &log
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })

	nc, err := pipeline.Connect(fmt.Sprintf("nats://127.0.0.1:%d", port), "mlink-compose-test", 10*time.Second)
	if err != nil {
		t.Fatalf("%v\nnats-server log:\n%s", err, log.String())
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var checked int
	for name, s := range p.Services {
		cf := serviceConfigFlags(t, name, s)
		if cf == nil {
			continue
		}
		cfg, err := cf.load()
		if err != nil {
			t.Fatalf("service %s: %v", name, err)
		}
		if got := nc.MaxPayload(); got < int64(cfg.NATS.MaxPayload) {
			t.Errorf("service %s publishes frames of up to nats.max_payload %d bytes, the server accepts %d: raise max_payload in %s",
				name, cfg.NATS.MaxPayload, got, conf)
		}
		// What mlink run creates at start: the results stream with the
		// config's limits must fit the server's JetStream limits.
		if err := pipeline.EnsureResultsStream(ctx, nc, &cfg.NATS); err != nil {
			t.Errorf("service %s: %v", name, err)
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("no mlink service reads a config")
	}
	if _, err := stages.OpenLinkStore(ctx, nc, pipeline.DefaultSubjects, links.UnmarshalSet, testLogger(t)); err != nil {
		t.Error(err)
	}

	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/varz", monitor))
	if err != nil {
		t.Fatalf("monitoring port: %v", err)
	}
	defer resp.Body.Close()
	var varz struct {
		MaxPending int64 `json:"max_pending"`
		JetStream  struct {
			Config struct {
				StoreDir string `json:"store_dir"`
			} `json:"config"`
		} `json:"jetstream"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&varz); err != nil {
		t.Fatal(err)
	}
	// Bursts of frames to a slow worker must not get it cut off as a slow
	// consumer before mlink's own embedded server would (pipeline/bus.go).
	if varz.MaxPending < 256<<20 {
		t.Errorf("max_pending %d: want at least 256MB, as mlink's embedded server", varz.MaxPending)
	}
	if varz.JetStream.Config.StoreDir == "" {
		t.Error("JetStream is not enabled")
	}
	health, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", monitor))
	if err != nil {
		t.Fatal(err)
	}
	health.Body.Close()
	if health.StatusCode != http.StatusOK {
		t.Errorf("/healthz: %s", health.Status)
	}
	if v := natsConfValue(t, data, "port"); v != "" && v != "4222" {
		t.Errorf("%s listens on %s; the services connect to 4222", conf, v)
	}
}

// serviceConfigFlags parses a repo-built service's command with the mlink
// command's own flag set and returns its config flags, -c resolved in the
// checkout (nil: the command reads no config).
func serviceConfigFlags(t *testing.T, name string, s composeService) *configFlags {
	t.Helper()
	if !s.fromRepo() {
		return nil
	}
	_, _, cf := parseServiceCommand(t, name, s)
	return cf
}

// parseServiceCommand checks that a service's command is an mlink command
// whose flags parse, and returns it with its parsed flag set and config
// flags (-c resolved against the checkout, as the image's /mlink).
func parseServiceCommand(t *testing.T, name string, s composeService) (*command, *flag.FlagSet, *configFlags) {
	t.Helper()
	if len(s.Command) == 0 {
		t.Fatalf("service %s: no command (the image's entrypoint is mlink: give it one)", name)
	}
	for _, a := range s.Command {
		if strings.Contains(a, "${") {
			t.Fatalf("service %s: command argument %q is interpolated by Compose; this check cannot see its value", name, a)
		}
	}
	c, rest := findCommand(s.Command)
	if c == nil {
		t.Fatalf("service %s: %q is not an mlink command (see mlink help)", name, strings.Join(s.Command, " "))
	}
	fs, cf := c.flags()
	if err := parseFlags(fs, rest); err != nil {
		t.Fatalf("service %s: mlink %s: %v", name, c.name, err)
	}
	if cf != nil {
		if cf.path == "" {
			t.Fatalf("service %s: mlink %s without -c FILE", name, c.name)
		}
		if filepath.IsAbs(cf.path) || !strings.HasPrefix(filepath.Clean(cf.path), "configs/") {
			t.Fatalf("service %s: -c %s: the image has the repo's configs/ in its working directory, and nothing else to read", name, cf.path)
		}
		cf.path = filepath.Join(repoRoot, cf.path)
	}
	return c, fs, cf
}

func TestComposeServicesAreValidMlinkInvocations(t *testing.T) {
	p := loadCompose(t)
	natsName, natsConf := natsService(t, p)
	dockerfile, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	// The commands' relative paths (configs/..., and the configs' ../.deps)
	// resolve in the image's working directory as in the checkout.
	for _, line := range []string{"WORKDIR /mlink", "COPY configs ./configs", "COPY --from=build /src/.deps ./.deps", `ENTRYPOINT ["mlink"]`} {
		if !strings.Contains(string(dockerfile), line) {
			t.Errorf("Dockerfile lacks %q, which the services' commands rely on", line)
		}
	}
	conf, err := os.ReadFile(natsConf)
	if err != nil {
		t.Fatal(err)
	}
	natsPort := natsConfValue(t, conf, "port")
	if natsPort == "" {
		natsPort = "4222"
	}

	type runService struct {
		name  string
		cfg   *pipeline.Config
		roles map[string]bool
	}
	var runs []runService
	var gpu int
	for name, s := range p.Services {
		if !s.fromRepo() {
			if s.Image == "" {
				t.Errorf("service %s: neither built from this repo nor an image", name)
			}
			continue
		}
		c, fs, cf := parseServiceCommand(t, name, s)
		if !slices.Contains(s.DependsOn, natsName) {
			t.Errorf("service %s does not depend on %s", name, natsName)
		}
		// Every process must join the compose bus: without an URL mlink
		// run would start a server of its own inside its container.
		if f := fs.Lookup("nats"); f != nil {
			checkNATSURL(t, name, f.Value.String(), natsName, natsPort)
		} else if c.name != "version" && c.name != "help" {
			t.Errorf("service %s: mlink %s takes no --nats: it cannot reach the compose bus", name, c.name)
		}
		if cf != nil {
			cfg, err := cf.load()
			if err != nil {
				t.Errorf("service %s: %s: %v", name, cf.path, err)
				continue
			}
			if c.name == "run" {
				roles, err := checkRoles(cfg, fs.Lookup("role").Value.String())
				if err != nil {
					t.Errorf("service %s: %v", name, err)
					continue
				}
				runs = append(runs, runService{name, cfg, roles})
			}
		}
		// A GPU reservation outside a profile would make `docker compose
		// up` fail on every host without an NVIDIA GPU.
		devices := s.Deploy.Resources.Reservations.Devices
		switch {
		case slices.Contains(s.Profiles, "gpu"):
			gpu++
			ok := slices.ContainsFunc(devices, func(d composeDevice) bool {
				return d.Driver == "nvidia" && slices.Contains(d.Capabilities, "gpu")
			})
			if !ok {
				t.Errorf("service %s is in the gpu profile without an nvidia device reservation (deploy.resources.reservations.devices)", name)
			}
		case len(devices) > 0:
			t.Errorf("service %s reserves devices outside the gpu profile", name)
		}
	}
	if gpu == 0 {
		t.Error("no service in the gpu profile")
	}

	// The processes of one deployment must agree: workers serve the
	// models the scheduler plans (same names and backends; the provider
	// may differ), and a trainer needs the scheduler to leave training to
	// it.
	var sched *runService
	for i := range runs {
		if runs[i].roles["scheduler"] {
			if sched != nil {
				t.Fatalf("services %s and %s both run the scheduler", sched.name, runs[i].name)
			}
			sched = &runs[i]
		}
	}
	if sched == nil {
		t.Fatal("no service runs the scheduler")
	}
	for _, r := range runs {
		if r.roles["worker"] || r.roles["trainer"] || r.roles["predictor"] {
			if diff := modelDiff(r.cfg, sched.cfg); diff != "" {
				t.Errorf("service %s does not serve the models the scheduler (%s) plans: %s", r.name, sched.name, diff)
			}
		}
		if r.roles["trainer"] && (sched.cfg.Scheduler.Training != pipeline.TrainingRemote || r.cfg.Scheduler.Policy != sched.cfg.Scheduler.Policy) {
			t.Errorf("service %s trains links for policy %s, but the scheduler (%s) runs policy %s with training %s: both must be a links policy with training remote",
				r.name, r.cfg.Scheduler.Policy, sched.name, sched.cfg.Scheduler.Policy, sched.cfg.Scheduler.Training)
		}
	}
}

// checkNATSURL checks a service connects to the compose NATS service.
func checkNATSURL(t *testing.T, service, raw, natsName, natsPort string) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "nats" {
		t.Errorf("service %s: --nats %q is not a nats:// URL", service, raw)
		return
	}
	if u.Hostname() != natsName || u.Port() != natsPort {
		t.Errorf("service %s: --nats %s, want nats://%s:%s (the compose NATS service)", service, raw, natsName, natsPort)
	}
}

// modelDiff says how a process's models differ from the scheduler's in
// what the two must agree on (the execution provider may differ); "" when
// they agree.
func modelDiff(cfg, sched *pipeline.Config) string {
	sig := func(c *pipeline.Config, m pipeline.ModelSpec) string {
		return fmt.Sprintf("backend %s, decoder %q, output %s, file %q, classes %v", m.Backend, m.Decoder, m.Output, c.Path(m.File), m.Classes)
	}
	if got, want := cfg.ModelNames(), sched.ModelNames(); !slices.Equal(got, want) {
		return fmt.Sprintf("models %v, want %v", got, want)
	}
	for i, m := range cfg.Models {
		if got, want := sig(cfg, m), sig(sched, sched.Models[i]); got != want {
			return fmt.Sprintf("model %s: %s, want %s", m.Name, got, want)
		}
	}
	return ""
}
