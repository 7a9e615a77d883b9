package scheduler

import (
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/dialstream/dialstream/internal/envconfig"
	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/registry"
)

// Defaults of the scheduler's variables.
const (
	DefaultHTTPAddr      = "127.0.0.1:8086"
	DefaultGroup         = "dialstream-scheduler"
	DefaultOutcomesGroup = "dialstream-scheduler-outcomes"
	// DefaultMaxWake bounds how long a partition's release loop sleeps
	// without looking again: the workspace's calling hours come from the
	// registry, not from a command, so nothing else would wake it when
	// they change.
	DefaultMaxWake = time.Minute
)

// Config is everything the scheduler needs. LoadConfig fills it from the
// environment; tests and dev mode build it in code, and zero values take
// the defaults.
type Config struct {
	// HTTPAddr serves /healthz, /readyz and /metrics (SCHEDULER_HTTP_ADDR,
	// default 127.0.0.1:8086).
	HTTPAddr string
	// Listener, when set, is served instead of binding HTTPAddr (tests).
	Listener net.Listener
	// Group owns the campaigns: one member applies a partition's commands
	// and releases its contacts (SCHEDULER_GROUP, default
	// dialstream-scheduler). OutcomesGroup relays ended campaign calls
	// from the events topic back to the commands topic
	// (SCHEDULER_OUTCOMES_GROUP, default dialstream-scheduler-outcomes).
	Group         string
	OutcomesGroup string
	// MaxWake is the longest a partition's release loop sleeps
	// (SCHEDULER_MAX_WAKE, default 1m).
	MaxWake time.Duration

	// RegistryPath is the workspace registry file (DIALSTREAM_REGISTRY),
	// ignored when Registry is set: its calling hours bound every release.
	RegistryPath string
	Registry     *registry.Registry

	Kafka kafkax.Config

	Logger *slog.Logger
	// Metrics is the process registry; nil makes a new one.
	Metrics *prometheus.Registry
	// TracerProvider is accepted for the one shape of a service's Config;
	// the scheduler writes no spans of its own yet.
	TracerProvider trace.TracerProvider

	// clock replaces time.Now in tests (a fixed clock for windows).
	clock func() time.Time
}

// LoadConfig reads the scheduler's variables and the shared KAFKA_* ones.
// Problems are recorded on l; call l.Err() once everything is loaded.
func LoadConfig(l *envconfig.Loader) Config {
	c := Config{
		HTTPAddr:      l.String("SCHEDULER_HTTP_ADDR", DefaultHTTPAddr),
		Group:         l.String("SCHEDULER_GROUP", DefaultGroup),
		OutcomesGroup: l.String("SCHEDULER_OUTCOMES_GROUP", DefaultOutcomesGroup),
		MaxWake:       l.Duration("SCHEDULER_MAX_WAKE", DefaultMaxWake, 100*time.Millisecond, time.Hour),
		RegistryPath:  l.String("DIALSTREAM_REGISTRY", ""),
		Kafka:         kafkax.LoadConfig(l, "scheduler"),
	}
	if c.RegistryPath != "" {
		if _, err := os.Stat(c.RegistryPath); err != nil {
			l.Fail("DIALSTREAM_REGISTRY", "%v", err)
		}
	}
	return c
}

func (c Config) withDefaults() Config {
	if c.HTTPAddr == "" {
		c.HTTPAddr = DefaultHTTPAddr
	}
	if c.Group == "" {
		c.Group = DefaultGroup
	}
	if c.OutcomesGroup == "" {
		c.OutcomesGroup = DefaultOutcomesGroup
	}
	if c.MaxWake == 0 {
		c.MaxWake = DefaultMaxWake
	}
	c.Kafka = c.Kafka.WithDefaults("scheduler")
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.TracerProvider == nil {
		c.TracerProvider = otel.GetTracerProvider()
	}
	if c.clock == nil {
		c.clock = time.Now
	}
	return c
}

// Validate reports every problem of a Config (after defaults), in the
// environment's names.
func (c Config) Validate() error {
	c = c.withDefaults()
	var p envconfig.Problems
	if c.Registry == nil && c.RegistryPath == "" {
		p.Add("DIALSTREAM_REGISTRY", "required (path of the workspace/agent registry file)")
	}
	if len(c.Kafka.Brokers) == 0 {
		p.Add("KAFKA_BROKERS", "required (comma-separated host:port list)")
	}
	if c.Group == c.OutcomesGroup {
		p.Add("SCHEDULER_OUTCOMES_GROUP", "must differ from SCHEDULER_GROUP (%s): they read different topics", c.Group)
	}
	if c.MaxWake < 100*time.Millisecond {
		p.Add("SCHEDULER_MAX_WAKE", "must be >= 100ms, got %s", c.MaxWake)
	}
	return p.Err()
}
