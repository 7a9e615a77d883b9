package deploy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"
)

// The compose stack is checked offline: compose.yaml is loaded with
// compose-go (the library `docker compose` itself uses: schema validation,
// interpolation from .env.example, merge keys), then every Dialstream
// service's resolved environment goes through its LoadConfig like the
// Kubernetes containers do. `docker compose config` (or docker-compose) runs
// too where it is installed; it pulls and builds nothing.

const (
	composeDir  = "compose"
	composeFile = "compose/compose.yaml"
	envExample  = "compose/.env.example"
)

// composeSecrets are the settings .env.example leaves empty for the user to
// fill in; the tests give them placeholders.
var composeSecrets = []string{"LIVEKIT_API_SECRET", "INGEST_IDEMPOTENCY_SECRET", "DIALSTREAM_AGENT_REPORT_SECRET", "DIALSTREAM_DEMO_WEBHOOK_SECRETS",
	"GRAFANA_ADMIN_PASSWORD", "DIALSTREAM_SIP_TRUNK_ID", "POSTGRES_PASSWORD"}

func composePlaceholders() []string {
	var env []string
	for _, k := range composeSecrets {
		v := placeholderSecret
		if k == "DIALSTREAM_SIP_TRUNK_ID" {
			v = "ST_placeholder"
		}
		env = append(env, k+"="+v)
	}
	return env
}

func loadCompose(t *testing.T, extraEnv []string) (*types.Project, error) {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{composeFile},
		cli.WithWorkingDirectory(composeDir),
		cli.WithEnvFiles(envExample),
		cli.WithDotEnv,
		cli.WithEnv(extraEnv),
	)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return opts.LoadProject(ctx)
}

// envExampleKeys returns every key .env.example names, set or commented out,
// and the set ones' values.
func envExampleKeys(t *testing.T) (named map[string]bool, set map[string]string) {
	t.Helper()
	f, err := os.Open(envExample)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	named, set = map[string]bool{}, map[string]string{}
	keyRE := regexp.MustCompile(`^#?\s*([A-Z][A-Z0-9_]*)=(.*)$`)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		m := keyRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		named[m[1]] = true
		if !strings.HasPrefix(line, "#") {
			set[m[1]] = m[2]
		}
	}
	return named, set
}

func TestComposeStack(t *testing.T) {
	p, err := loadCompose(t, composePlaceholders())
	if err != nil {
		t.Fatalf("compose.yaml with .env.example: %v", err)
	}
	raw, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	registryRefs := map[string]bool{}
	if b, err := os.ReadFile(filepath.Join(composeDir, "registry.yaml")); err == nil {
		registryRefs = registryKeys(b)
	}

	dependedOnToComplete := map[string]bool{}
	for _, s := range p.Services {
		for name, d := range s.DependsOn {
			if d.Condition == types.ServiceConditionCompletedSuccessfully {
				dependedOnToComplete[name] = true
			}
		}
	}
	roles := map[role]int{}
	var allFacts []roleFacts
	for _, name := range slices.Sorted(mapsKeys(p.Services)) {
		s := p.Services[name]
		where := "service " + name
		// Pinned images: a version tag, never latest. Dialstream's own image
		// is built here (build:), so its tag names the local build.
		if s.Build == nil {
			if err := checkImage(s.Image); err != nil {
				t.Errorf("%s: %v", where, err)
			}
		} else if strings.HasSuffix(s.Image, ":latest") || !strings.Contains(s.Image[strings.LastIndex(s.Image, "/")+1:], ":") {
			t.Errorf("%s: image %q needs a tag", where, s.Image)
		}
		oneShot := s.Restart == types.RestartPolicyNo && dependedOnToComplete[name]
		if !oneShot && (s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) == 0) {
			t.Errorf("%s: no healthcheck", where)
		}
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				// deploy/prometheus and deploy/grafana hold the alert rules and
				// dashboards; the stack runs without them.
				if rel, _ := filepath.Rel(composeDir, v.Source); !strings.HasPrefix(rel, "../prometheus") && !strings.HasPrefix(rel, "../grafana") {
					t.Errorf("%s: bind mount %s: %v", where, v.Source, err)
				}
			}
		}
		if s.Build == nil {
			continue
		}

		// A Dialstream service: its environment through its LoadConfig.
		r, err := roleOf(s.Command)
		if err != nil {
			t.Errorf("%s: command: %v", where, err)
			continue
		}
		roles[r]++
		env := containerEnv{vars: map[string]string{}, files: map[string][]byte{}}
		for k, v := range s.Environment {
			if v != nil {
				env.vars[k] = *v
			}
		}
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind {
				if b, err := os.ReadFile(v.Source); err == nil {
					env.files[v.Target] = b
				}
			}
		}
		facts, errs := loadRole(t, r, env)
		allFacts = append(allFacts, facts)
		for _, err := range errs {
			t.Errorf("%s (%s): %v", where, r, err)
		}
		if u := unknownKeys(env.vars, registryRefs); len(u) > 0 {
			t.Errorf("%s: %v set but read by no Dialstream service", where, u)
		}
		// Every setting of .env reaches the service: each variable the
		// service reads is passed on.
		for k := range roleKeys()[r] {
			if _, ok := s.Environment[k]; !ok {
				t.Errorf("%s: %s is not passed to the service, so setting it in .env does nothing", where, k)
			}
		}
		if r == roleTopics {
			continue
		}
		if hc := s.HealthCheck; hc != nil && len(hc.Test) > 0 {
			u, err := url.Parse(hc.Test[len(hc.Test)-1])
			if err != nil || u.Port() != strconv.Itoa(facts.httpPort) || u.Path != "/readyz" {
				t.Errorf("%s: healthcheck %v does not probe /readyz on the service's port %d", where, hc.Test, facts.httpPort)
			}
		}
		grace := 10 * time.Second
		if s.StopGracePeriod != nil {
			grace = time.Duration(*s.StopGracePeriod)
		}
		if need := facts.stopBound + 5*time.Second; grace < need {
			t.Errorf("%s: stop_grace_period %s, the service's shutdown needs %s", where, grace, need)
		}
		if b, err := os.ReadFile(filepath.Join(composeDir, "prometheus.yml")); err != nil || !strings.Contains(string(b), "job_name: dialstream-"+string(r)) {
			t.Errorf("%s: compose/prometheus.yml has no job dialstream-%s (the job the alert rules and dashboards select on)", where, r)
		}
		if r == roleDialer && s.GetScale() < 2 {
			t.Errorf("%s: %d replicas, want 2", where, s.GetScale())
		}
	}
	for _, r := range allRoles {
		if roles[r] == 0 {
			t.Errorf("no compose service runs %s", r)
		}
	}
	if err := checkRecords(allFacts); err != nil {
		t.Error(err)
	}

	// .env.example names every setting (but those compose.yaml fixes), and
	// each one it names is used.
	named, set := envExampleKeys(t)
	fixed := composeFixedKeys(t, raw)
	for k := range knownKeys() {
		if !named[k] && !fixed[k] {
			t.Errorf("%s: the services read %s; document it (commented out, with its default)", envExample, k)
		}
		if named[k] && fixed[k] {
			t.Errorf("%s names %s, but compose.yaml fixes it: setting it in .env does nothing", envExample, k)
		}
	}
	for k := range named {
		if k != "COMPOSE_PROJECT_NAME" && !strings.Contains(string(raw), "${"+k) {
			t.Errorf("%s names %s, but compose.yaml never uses it", envExample, k)
		}
	}
	// Secrets live only in .env: compose.yaml holds references, never values.
	for _, k := range composeSecrets {
		if v, ok := set[k]; !ok || v != "" {
			t.Errorf("%s: %s must be present and empty (a secret is the user's to fill in)", envExample, k)
		}
	}
	checkComposeSecretsAreReferences(t, raw)

	// Without the secrets filled in, compose refuses to start and says which.
	_, err = loadCompose(t, nil)
	if err == nil || !strings.Contains(err.Error(), "LIVEKIT_API_SECRET") && !strings.Contains(err.Error(), "set it in .env") {
		t.Errorf("compose.yaml without secrets: %v, want an error naming the missing secret", err)
	}
}

type rawCompose struct {
	Services map[string]struct {
		Build       any            `yaml:"build"`
		Environment map[string]any `yaml:"environment"`
	} `yaml:"services"`
}

func parseRawCompose(t *testing.T, raw []byte) rawCompose {
	t.Helper()
	var doc rawCompose
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// composeFixedKeys are the variables compose.yaml sets to a value of its own
// rather than from .env, for a Dialstream service.
func composeFixedKeys(t *testing.T, raw []byte) map[string]bool {
	fixed := map[string]bool{}
	for _, s := range parseRawCompose(t, raw).Services {
		if s.Build == nil {
			continue
		}
		for k, v := range s.Environment {
			if !strings.Contains(fmt.Sprint(v), "${") {
				fixed[k] = true
			}
		}
	}
	return fixed
}

// checkComposeSecretsAreReferences requires every secret-like variable in
// compose.yaml to be a ${VAR} reference.
func checkComposeSecretsAreReferences(t *testing.T, raw []byte) {
	refRE := regexp.MustCompile(`^\$\{[A-Z0-9_]+(:?[-?][^}]*)?\}$`)
	for name, s := range parseRawCompose(t, raw).Services {
		for k, v := range s.Environment {
			str := fmt.Sprint(v)
			if secretLike.MatchString(k) && !refRE.MatchString(str) {
				t.Errorf("service %s: %s = %q: secrets must be ${VAR} references to .env", name, k, str)
			}
		}
	}
}

// `docker compose config` (or Debian's docker-compose) validates the file as
// the real tool reads it. It resolves and prints the configuration only.
func TestComposeConfigWithDockerCompose(t *testing.T) {
	var cmd []string
	if path, err := exec.LookPath("docker"); err == nil && exec.Command(path, "compose", "version").Run() == nil {
		cmd = []string{path, "compose"}
	} else if path, err := exec.LookPath("docker-compose"); err == nil {
		cmd = []string{path}
	} else {
		unavailable(t, "neither docker compose nor docker-compose is installed (Debian: apt-get install docker-compose)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append(cmd[1:], "--env-file", ".env.example", "-f", "compose.yaml", "config", "-q")
	c := exec.CommandContext(ctx, cmd[0], args...)
	c.Dir = composeDir
	c.Env = append(os.Environ(), composePlaceholders()...)
	if out, err := c.CombinedOutput(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) || ctx.Err() != nil {
			t.Fatalf("%s config: %v\n%s", strings.Join(cmd, " "), err, out)
		}
		unavailable(t, fmt.Sprintf("%s could not run: %v", strings.Join(cmd, " "), err))
	}
}

// unavailable skips a test whose tool is missing on a developer machine, and
// fails it under CI=true, so CI cannot go green by silently not running it.
func unavailable(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and %s", why)
	}
	t.Skipf("skipping: %s", why)
}
