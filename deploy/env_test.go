package deploy

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dialstream/dialstream/dialer"
	"github.com/dialstream/dialstream/ingest"
	"github.com/dialstream/dialstream/internal/envconfig"
	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/registry"
	"github.com/dialstream/dialstream/notifier"
	"github.com/dialstream/dialstream/recorder"
	"github.com/dialstream/dialstream/scheduler"
	"github.com/dialstream/dialstream/schemas"
)

// The manifests are tied to the code here: a container's environment, as the
// manifest gives it, is run through the LoadConfig (and Validate) of the
// service the container runs, so a missing required variable, a bad value,
// an unmounted registry or a ${VAR} the registry needs and the container
// lacks fails the test, as it would fail the service at start.

// role is what a Dialstream container runs, from its arguments.
type role string

const (
	roleIngest    role = "ingest"
	roleDialer    role = "dialer"
	roleNotifier  role = "notifier"
	roleRecorder  role = "recorder"
	roleScheduler role = "scheduler"
	roleTopics    role = "topics"
)

var allRoles = []role{roleIngest, roleDialer, roleNotifier, roleRecorder, roleScheduler, roleTopics}

func roleOf(args []string) (role, error) {
	if len(args) == 0 {
		return "", errors.New("no arguments: the image's default is help, not a service")
	}
	switch r := role(args[0]); r {
	case roleIngest, roleDialer, roleNotifier, roleRecorder, roleScheduler:
		if len(args) != 1 {
			return "", fmt.Errorf("%s takes no arguments, got %q", r, args[1:])
		}
		return r, nil
	case roleTopics:
		if len(args) < 2 || (args[1] != "apply" && args[1] != "wait") {
			return "", fmt.Errorf("topics: want apply or wait, got %q", args[1:])
		}
		return r, nil
	}
	return "", fmt.Errorf("unknown command %q", args)
}

// containerEnv is a container's environment as its manifest defines it, and
// the files mounted into it (path inside the container -> content).
type containerEnv struct {
	vars  map[string]string
	files map[string][]byte
}

// roleFacts are what the other checks compare the manifests with.
type roleFacts struct {
	httpPort   int           // port of *_HTTP_ADDR
	group      string        // consumer group
	topic      string        // the topic whose lag measures the group's work
	partitions int           // KAFKA_TOPIC_PARTITIONS
	stopBound  time.Duration // longest clean shutdown
	// retention is how long the topics keep records (topics job).
	retention time.Duration
	// databaseURL and recordsRetention are DATABASE_URL and
	// CALL_RECORDS_RETENTION of the services that use the call records
	// (ingest reads them, the recorder writes them).
	databaseURL      string
	recordsRetention time.Duration
}

// placeholderSecret stands for a value that comes from a Secret: the manifest
// provides it, its value is not known here. It is a valid webhook secret, so
// the registry's checks pass on it.
const placeholderSecret = "whsec_cGxhY2Vob2xkZXItc2VjcmV0LXZhbHVlIQ=="

// placeholderDatabaseURL stands for DATABASE_URL from a Secret: a URL of
// the form the services accept, its real value not known here.
const placeholderDatabaseURL = "postgres://dialstream:placeholder@postgres.postgres.svc:5432/dialstream?sslmode=verify-full"

// secretPlaceholder is what a Secret's key stands for in the checks.
func secretPlaceholder(key string) string {
	if key == "DATABASE_URL" {
		return placeholderDatabaseURL
	}
	return placeholderSecret
}

// serviceLogKeys mirrors serviceLogger in cmd/dialstream: the variables every
// service reads besides its Config.
func serviceLogKeys(l *envconfig.Loader) {
	l.OneOf("LOG_FORMAT", "json", "json", "text")
	l.String("LOG_LEVEL", "info")
}

// loadRole runs r's configuration loading over env and returns every
// problem, with the facts derived from the loaded Config.
func loadRole(t *testing.T, r role, env containerEnv) (roleFacts, []error) {
	t.Helper()
	vars := map[string]string{}
	for k, v := range env.vars {
		vars[k] = v
	}
	var errs []error
	// Files the config names are checked by LoadConfig with os.Stat: give it
	// the mounted content at a local path.
	for _, k := range []string{"DIALSTREAM_REGISTRY", "KAFKA_TLS_CA_FILE"} {
		p := strings.TrimSpace(vars[k])
		if p == "" || !roleKeys()[r][k] {
			continue
		}
		b, ok := env.files[p]
		if !ok {
			errs = append(errs, fmt.Errorf("%s=%s: no such file is mounted into the container", k, p))
			continue
		}
		local := filepath.Join(t.TempDir(), filepath.Base(p))
		if err := os.WriteFile(local, b, 0o600); err != nil {
			t.Fatal(err)
		}
		vars[k] = local
	}
	l := envconfig.FromMap(vars)
	serviceLogKeys(l)
	var f roleFacts
	var registryPath string
	switch r {
	case roleIngest:
		c := ingest.LoadConfig(l)
		c.Kafka.Validate(l)
		registryPath = requireRegistry(l, c.RegistryPath)
		if c.DatabaseURL == "" {
			l.Fail("DATABASE_URL", "required (the call records database)")
		}
		f = roleFacts{httpPort: port(l, "INGEST_HTTP_ADDR", c.HTTPAddr), partitions: c.Kafka.Partitions, stopBound: c.ShutdownTimeout,
			databaseURL: c.DatabaseURL, recordsRetention: c.CallsRetention}
	case roleDialer:
		c := dialer.LoadConfig(l)
		if err := c.Validate(); err != nil {
			errs = append(errs, err)
		}
		registryPath = c.RegistryPath
		// Run: drain (DrainTimeout), then the final commit (10s) and leave.
		f = roleFacts{httpPort: port(l, "DIALER_HTTP_ADDR", c.HTTPAddr), group: c.Group, topic: schemas.TopicRequested,
			partitions: c.Kafka.Partitions, stopBound: c.DrainTimeout + 10*time.Second}
	case roleNotifier:
		c := notifier.LoadConfig(l)
		c.Kafka.Validate(l)
		registryPath = requireRegistry(l, c.RegistryPath)
		// Run: running deliveries finish (Timeout + ProduceTimeout + 1s),
		// then commit, flush and leave (10s).
		f = roleFacts{httpPort: port(l, "NOTIFIER_HTTP_ADDR", c.HTTPAddr), group: c.GroupID, topic: schemas.TopicEvents,
			partitions: c.Kafka.Partitions, stopBound: c.Timeout + c.Kafka.ProduceTimeout + 11*time.Second}
	case roleRecorder:
		c := recorder.LoadConfig(l)
		if err := c.Validate(); err != nil {
			errs = append(errs, err)
		}
		registryPath = c.RegistryPath
		// Run: the batch being written commits or rolls back, then the
		// group leave and the ops server (10s).
		f = roleFacts{httpPort: port(l, "RECORDER_HTTP_ADDR", c.HTTPAddr), group: c.GroupID, topic: schemas.TopicEvents,
			partitions: c.Kafka.Partitions, stopBound: 10 * time.Second, databaseURL: c.DatabaseURL, recordsRetention: c.Retention}
	case roleScheduler:
		c := scheduler.LoadConfig(l)
		if err := c.Validate(); err != nil {
			errs = append(errs, err)
		}
		registryPath = c.RegistryPath
		// Run: the partitions' owners finish their rounds (stopGrace, 10s,
		// in parallel), the outcome relay's final commit (10s) and the ops
		// server (5s). KEDA scales it on the commands topic: the outcome
		// relay's group only forwards.
		f = roleFacts{httpPort: port(l, "SCHEDULER_HTTP_ADDR", c.HTTPAddr), group: c.Group, topic: schemas.TopicCampaignCommands,
			partitions: c.Kafka.Partitions, stopBound: 25 * time.Second}
	case roleTopics:
		k := kafkax.LoadConfig(l, "topics")
		k.Validate(l)
		tc := kafkax.LoadTopicsConfig(l, k)
		sched := envconfig.FromMap(map[string]string{"NOTIFIER_RETRY_SCHEDULE": vars["NOTIFIER_RETRY_SCHEDULE"]})
		schedule := notifier.LoadConfig(sched).RetrySchedule
		if err := sched.Err(); err != nil {
			errs = append(errs, err)
		}
		tc.WebhookRetryTopics = map[string]time.Duration{}
		for _, d := range schedule[1:] {
			tc.WebhookRetryTopics[notifier.RetryTopic(d)] = d
		}
		if _, err := kafkax.Topics(tc); err != nil {
			errs = append(errs, err)
		}
		f = roleFacts{partitions: k.Partitions, retention: tc.Retention}
	default:
		t.Fatalf("role %q", r)
	}
	if err := l.Err(); err != nil {
		errs = append(errs, err)
	}
	if registryPath != "" {
		if err := checkRegistry(registryPath, vars, r == roleNotifier); err != nil {
			errs = append(errs, err)
		}
	}
	return f, errs
}

// checkRecords: ingest answers from the database the recorder writes, so
// both must name the same DATABASE_URL (else every call past its own
// request is a 404 on ingest) and the same CALL_RECORDS_RETENTION (else
// ingest writes calls the recorder deletes at its next run, or refuses
// calls the recorder keeps). The call records outlive the topics: they
// need not fit in KAFKA_TOPIC_RETENTION.
func checkRecords(facts []roleFacts) error {
	var first *roleFacts
	for i := range facts {
		f := &facts[i]
		if f.databaseURL == "" {
			continue
		}
		if first == nil {
			first = f
			continue
		}
		if f.databaseURL != first.databaseURL {
			return fmt.Errorf("DATABASE_URL differs between the services that share the call records (%s and %s): ingest would read a database the recorder does not write",
				redactedURL(first.databaseURL), redactedURL(f.databaseURL))
		}
		if f.recordsRetention != first.recordsRetention {
			return fmt.Errorf("CALL_RECORDS_RETENTION differs between ingest and the recorder (%s and %s): ingest would write calls the recorder deletes, or refuse calls it keeps",
				first.recordsRetention, f.recordsRetention)
		}
	}
	return nil
}

func redactedURL(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return "(unparsable URL)"
}

func requireRegistry(l *envconfig.Loader, path string) string {
	if path == "" {
		l.Fail("DIALSTREAM_REGISTRY", "required (path of the workspace/agent registry file)")
	}
	return path
}

// port returns the port of a listen address and records a problem when the
// address is not reachable from outside the container (a loopback default).
func port(l *envconfig.Loader, key, addr string) int {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		l.Fail(key, "%v", err)
		return 0
	}
	if host != "" && host != "0.0.0.0" && host != "::" {
		l.Fail(key, "%s listens on %s only: probes, Prometheus and peers cannot reach it; use :%s", addr, host, p)
	}
	n, _ := strconv.Atoi(p)
	return n
}

// checkRegistry parses the registry file the way the services do, with the
// container's environment for its ${VAR} references. For the notifier,
// every workspace must end up with a signing secret: without one its
// webhooks would go out unsigned.
func checkRegistry(path string, vars map[string]string, needSecrets bool) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	reg, err := registry.Parse(b, func(k string) string { return vars[k] })
	if err != nil {
		return fmt.Errorf("registry %s with the container's environment: %w", filepath.Base(path), err)
	}
	if needSecrets {
		for _, w := range reg.Workspaces() {
			if len(w.WebhookSecrets) == 0 {
				return fmt.Errorf("registry: workspace %s has no webhook secret in the notifier (webhook_secrets_env %q is not set)", w.ID, w.WebhookSecretsEnv)
			}
		}
	}
	return nil
}

// roleKeys returns the variables each role reads, found by running its
// loaders over an empty environment that records every lookup.
var roleKeys = sync.OnceValue(func() map[role]map[string]bool {
	out := map[role]map[string]bool{}
	for _, r := range allRoles {
		read := map[string]bool{}
		l := &envconfig.Loader{Getenv: func(k string) string { read[k] = true; return "" }}
		serviceLogKeys(l)
		switch r {
		case roleIngest:
			ingest.LoadConfig(l)
		case roleDialer:
			dialer.LoadConfig(l)
		case roleNotifier:
			notifier.LoadConfig(l)
		case roleRecorder:
			recorder.LoadConfig(l)
		case roleScheduler:
			scheduler.LoadConfig(l)
		case roleTopics:
			kafkax.LoadTopicsConfig(l, kafkax.LoadConfig(l, "topics"))
			read["NOTIFIER_RETRY_SCHEDULE"] = true
		}
		out[r] = read
	}
	return out
})

// knownKeys is every variable some Dialstream service reads.
func knownKeys() map[string]bool {
	all := map[string]bool{}
	for _, keys := range roleKeys() {
		for k := range keys {
			all[k] = true
		}
	}
	return all
}

var envRefRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// registryKeys returns the variables a registry file refers to: its ${VAR}
// references and the webhook_secrets_env names.
func registryKeys(b []byte) map[string]bool {
	out := map[string]bool{}
	for _, m := range envRefRE.FindAllSubmatch(b, -1) {
		out[string(m[1])] = true
	}
	for _, m := range regexp.MustCompile(`(?m)webhook_secrets_env:\s*"?([A-Za-z_][A-Za-z0-9_]*)`).FindAllSubmatch(b, -1) {
		out[string(m[1])] = true
	}
	return out
}

// unknownKeys returns the variables in vars that nothing reads: a typo
// (DIALER_DRAIN_TIMOUT) or a setting the code no longer has would otherwise
// be ignored without a word.
func unknownKeys(vars map[string]string, alsoKnown map[string]bool) []string {
	known := knownKeys()
	var out []string
	for k := range vars {
		if !known[k] && !alsoKnown[k] {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// secretLike names variables whose values must come from a secret store.
var secretLike = regexp.MustCompile(`SECRET|PASSWORD|TOKEN`)

// The role loaders themselves: an empty environment fails where a service
// would (so the checks above can fail), and the example environment passes.
func TestRoleChecksCatchMissingConfig(t *testing.T) {
	reg := []byte("workspaces:\n  - id: ws\n    api_key_sha256: [\"${KEY_DIGEST}\"]\n    webhook_secrets_env: WS_SECRETS\nagents: []\n")
	files := map[string][]byte{"/etc/reg.yaml": reg}
	good := map[string]string{
		"KAFKA_BROKERS": "kafka:9092", "DIALSTREAM_REGISTRY": "/etc/reg.yaml", "KEY_DIGEST": strings.Repeat("a", 64),
		"WS_SECRETS": placeholderSecret, "LIVEKIT_URL": "http://lk", "LIVEKIT_API_KEY": "k", "LIVEKIT_API_SECRET": "s",
		"INGEST_HTTP_ADDR": ":8080", "NOTIFIER_HTTP_ADDR": ":8082", "RECORDER_HTTP_ADDR": ":8084", "SCHEDULER_HTTP_ADDR": ":8086",
		"DATABASE_URL": placeholderDatabaseURL,
	}
	for _, r := range allRoles {
		if _, errs := loadRole(t, r, containerEnv{vars: good, files: files}); len(errs) > 0 {
			t.Errorf("%s with a complete environment: %v", r, errs)
		}
		_, errs := loadRole(t, r, containerEnv{vars: map[string]string{}, files: files})
		if err := errors.Join(errs...); err == nil || !strings.Contains(err.Error(), "KAFKA_BROKERS: required") {
			t.Errorf("%s with an empty environment: %v, want KAFKA_BROKERS: required", r, err)
		}
	}
	bad := map[string]string{}
	for k, v := range good {
		bad[k] = v
	}
	delete(bad, "WS_SECRETS")
	delete(bad, "KEY_DIGEST")
	bad["NOTIFIER_HTTP_ADDR"] = "127.0.0.1:8082"
	_, errs := loadRole(t, roleNotifier, containerEnv{vars: bad, files: files})
	if err := errors.Join(errs...); err == nil || !strings.Contains(err.Error(), "KEY_DIGEST") || !strings.Contains(err.Error(), "listens on 127.0.0.1 only") {
		t.Errorf("notifier without registry variables, on loopback: %v", err)
	}
	if got := unknownKeys(map[string]string{"DIALER_DRAIN_TIMOUT": "1s", "KAFKA_BROKERS": "x"}, nil); !slices.Equal(got, []string{"DIALER_DRAIN_TIMOUT"}) {
		t.Errorf("unknown keys: %v", got)
	}
}
