package dialer

import (
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/dialstream/dialstream/internal/envconfig"
	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/obs"
	"github.com/dialstream/dialstream/internal/registry"
	"github.com/dialstream/dialstream/schemas"
)

// Config configures the dialer. LoadConfig fills it from the environment;
// tests build it in code, where zero values take the defaults (withDefaults)
// except for WatchdogGrace and DrainTimeout, whose zero is a setting.
// Logger, Metrics, Registry and TracerProvider are the caller's to set.
type Config struct {
	// Kafka is the KAFKA_* settings (kafkax.LoadConfig); its zero values
	// take kafkax's defaults.
	Kafka kafkax.Config

	// HTTPAddr serves POST /livekit/webhook, GET /healthz, /readyz and
	// /metrics (DIALER_HTTP_ADDR, default :8081).
	HTTPAddr string
	// RegistryPath is the workspace/agent registry file (DIALSTREAM_REGISTRY,
	// required unless Registry is set).
	RegistryPath string

	// LiveKitURL, LiveKitAPIKey and LiveKitAPISecret reach the LiveKit
	// server API and check the signature of its webhooks (LIVEKIT_URL,
	// LIVEKIT_API_KEY, LIVEKIT_API_SECRET; all required).
	LiveKitURL       string
	LiveKitAPIKey    string
	LiveKitAPISecret string

	// Group is the consumer group id (DIALER_GROUP, default
	// dialstream-dialer). Every replica of one deployment shares it.
	Group string
	// MaxQueuedPerPartition bounds the calls of one partition waiting in
	// memory for admission (DIALER_MAX_QUEUED_PER_PARTITION, default 10000).
	// Past it, the partition's later requests (of every workspace) are
	// deferred until the queue drains to half: this is the head-of-line
	// bound between workspaces that share a partition.
	MaxQueuedPerPartition int
	// WatchdogInterval is how often each partition looks for calls that
	// outlived their limits (DIALER_WATCHDOG_INTERVAL, default 5s).
	WatchdogInterval time.Duration
	// WatchdogGrace is added to a call's ringing timeout before a dial
	// nobody waits on is checked in LiveKit, and to max_call_duration before
	// the dialer hangs up a call LiveKit did not end (DIALER_WATCHDOG_GRACE,
	// default 30s; 0 is allowed).
	WatchdogGrace time.Duration
	// RoomCheckInterval is how often answered calls are checked in LiveKit,
	// to end those whose end webhook was lost (DIALER_ROOM_CHECK_INTERVAL,
	// default 30s).
	RoomCheckInterval time.Duration
	// MaxQueueWait ends a call that waited longer for admission (expired)
	// (DIALER_MAX_QUEUE_WAIT, default 1h).
	MaxQueueWait time.Duration
	// TrunkCallsPerSecond paces the dials of each outbound SIP trunk, as
	// carriers limit calls per second (DIALER_TRUNK_CALLS_PER_SECOND,
	// default 0: no limit). Per process: with several dialers the trunk
	// sees up to their sum. A dial whose turn would leave its claim too
	// little time to ring waits for a new claim instead (trunkrate.go).
	TrunkCallsPerSecond float64
	// EndedRetention is how long an ended call is remembered (duplicate
	// requests for its id are ignored) before its state is deleted
	// (DIALER_ENDED_RETENTION, default 24h).
	EndedRetention time.Duration
	// DrainTimeout is how long shutdown waits for dials in progress
	// (DIALER_DRAIN_TIMEOUT, default 30s; 0 cancels them at once and leaves
	// them to the next owner's recovery).
	DrainTimeout time.Duration

	// AgentReportURL is the base URL of the report endpoint an agent
	// reaches (ingest's, e.g. http://ingest:8080): each dispatch names
	// <AgentReportURL>/v1/agent/calls/<call id>/reports and a token for it
	// (DIALER_AGENT_REPORT_URL; empty: dispatches carry no report channel).
	AgentReportURL string
	// AgentReportSecrets key the per-call report tokens: the first mints,
	// every one verifies, so a secret can rotate (DIALSTREAM_AGENT_REPORT_SECRET,
	// comma-separated, each at least 32 bytes; required with
	// AgentReportURL; ingest must hold the same).
	AgentReportSecrets [][]byte
	// AgentReportWindow is how long after its end a call takes its agent's
	// reports (DIALSTREAM_AGENT_REPORT_WINDOW, default 15m; ingest must use
	// the same).
	AgentReportWindow time.Duration

	// Logger is the dialer's log; nil discards.
	Logger *slog.Logger
	// Metrics is the process registry; nil makes a new one.
	Metrics *prometheus.Registry
	// Registry is the workspace/agent registry; nil loads RegistryPath.
	Registry *registry.Registry
	// TracerProvider makes the dialer's spans (applying a command, a dial,
	// a hang-up, Kafka publish and receive) in each call's trace; see
	// trace.go. Nil: otel's global provider, which cmd/dialstream sets from
	// the OTEL_* variables.
	TracerProvider trace.TracerProvider

	// liveKit replaces the LiveKit API in component tests.
	liveKit liveKit
	// dialOverhead is added to the ringing timeout to bound a whole dial
	// (room, dispatch, then CreateSIPParticipant) and so the claim's window
	// (recovery.go); clockMargin is recovery.go's. Zero: the defaults;
	// component tests shorten them.
	dialOverhead time.Duration
	clockMargin  time.Duration
	// complianceClock replaces the clock of the compliance check in
	// component tests (calling hours at a chosen instant); nil: time.Now.
	complianceClock func() time.Time
	// complianceHold, when set, keeps the compliance followers from
	// starting until it is closed: a dialer whose do-not-call list is not
	// loaded yet, for the fail-closed test.
	complianceHold <-chan struct{}
}

// Defaults of the DIALER_* variables.
const (
	DefaultHTTPAddr              = ":8081"
	DefaultGroup                 = "dialstream-dialer"
	DefaultMaxQueuedPerPartition = 10000
	DefaultWatchdogInterval      = 5 * time.Second
	DefaultWatchdogGrace         = 30 * time.Second
	DefaultRoomCheckInterval     = 30 * time.Second
	DefaultMaxQueueWait          = time.Hour
	DefaultEndedRetention        = 24 * time.Hour
	DefaultDrainTimeout          = 30 * time.Second
)

// LoadConfig reads the dialer's variables (and KAFKA_*); problems are
// recorded in l, see l.Err.
func LoadConfig(l *envconfig.Loader) Config {
	return Config{
		Kafka:                 kafkax.LoadConfig(l, "dialer"),
		HTTPAddr:              l.String("DIALER_HTTP_ADDR", DefaultHTTPAddr),
		RegistryPath:          l.String("DIALSTREAM_REGISTRY", ""),
		LiveKitURL:            l.String("LIVEKIT_URL", ""),
		LiveKitAPIKey:         l.String("LIVEKIT_API_KEY", ""),
		LiveKitAPISecret:      l.String("LIVEKIT_API_SECRET", ""),
		Group:                 l.String("DIALER_GROUP", DefaultGroup),
		MaxQueuedPerPartition: l.Int("DIALER_MAX_QUEUED_PER_PARTITION", DefaultMaxQueuedPerPartition, 1, 10_000_000),
		WatchdogInterval:      l.Duration("DIALER_WATCHDOG_INTERVAL", DefaultWatchdogInterval, 10*time.Millisecond, time.Hour),
		WatchdogGrace:         l.Duration("DIALER_WATCHDOG_GRACE", DefaultWatchdogGrace, 0, time.Hour),
		RoomCheckInterval:     l.Duration("DIALER_ROOM_CHECK_INTERVAL", DefaultRoomCheckInterval, 10*time.Millisecond, 24*time.Hour),
		MaxQueueWait:          l.Duration("DIALER_MAX_QUEUE_WAIT", DefaultMaxQueueWait, time.Second, 30*24*time.Hour),
		EndedRetention:        l.Duration("DIALER_ENDED_RETENTION", DefaultEndedRetention, time.Second, 30*24*time.Hour),
		DrainTimeout:          l.Duration("DIALER_DRAIN_TIMEOUT", DefaultDrainTimeout, 0, time.Hour),
		TrunkCallsPerSecond:   l.Float("DIALER_TRUNK_CALLS_PER_SECOND", 0, 0, 10_000),
		AgentReportURL:        strings.TrimSuffix(l.String("DIALER_AGENT_REPORT_URL", ""), "/"),
		AgentReportSecrets:    schemas.ReportSecrets(l.List("DIALSTREAM_AGENT_REPORT_SECRET", nil)),
		AgentReportWindow:     l.Duration("DIALSTREAM_AGENT_REPORT_WINDOW", schemas.DefaultReportWindow, time.Second, 7*24*time.Hour),
	}
}

// withDefaults fills the zero values of a Config built in code.
// WatchdogGrace and DrainTimeout keep their zero: it is a valid setting.
func (c Config) withDefaults() Config {
	c.Kafka = c.Kafka.WithDefaults("dialer")
	if c.HTTPAddr == "" {
		c.HTTPAddr = DefaultHTTPAddr
	}
	if c.Group == "" {
		c.Group = DefaultGroup
	}
	if c.MaxQueuedPerPartition == 0 {
		c.MaxQueuedPerPartition = DefaultMaxQueuedPerPartition
	}
	if c.WatchdogInterval == 0 {
		c.WatchdogInterval = DefaultWatchdogInterval
	}
	if c.RoomCheckInterval == 0 {
		c.RoomCheckInterval = DefaultRoomCheckInterval
	}
	if c.MaxQueueWait == 0 {
		c.MaxQueueWait = DefaultMaxQueueWait
	}
	if c.EndedRetention == 0 {
		c.EndedRetention = DefaultEndedRetention
	}
	if c.AgentReportWindow == 0 {
		c.AgentReportWindow = schemas.DefaultReportWindow
	}
	if c.dialOverhead == 0 {
		c.dialOverhead = dialOverhead
	}
	if c.clockMargin == 0 {
		c.clockMargin = clockMargin
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Metrics == nil {
		c.Metrics = obs.NewRegistry()
	}
	if c.TracerProvider == nil {
		c.TracerProvider = otel.GetTracerProvider()
	}
	return c
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	// kafkax.Config.Validate records on a Loader; its problems join ours.
	kafka := envconfig.FromMap(nil)
	c.Kafka.Validate(kafka)
	var p envconfig.Problems
	if c.Registry == nil && c.RegistryPath == "" {
		p.Add("DIALSTREAM_REGISTRY", "required (path of the workspace/agent registry file)")
	}
	if c.liveKit == nil {
		if c.LiveKitURL == "" {
			p.Add("LIVEKIT_URL", "required")
		}
		if c.LiveKitAPIKey == "" {
			p.Add("LIVEKIT_API_KEY", "required")
		}
		if c.LiveKitAPISecret == "" {
			p.Add("LIVEKIT_API_SECRET", "required")
		}
	}
	if c.HTTPAddr == "" {
		p.Add("DIALER_HTTP_ADDR", "required")
	}
	if c.Group == "" {
		p.Add("DIALER_GROUP", "required")
	}
	if c.MaxQueuedPerPartition < 1 {
		p.Add("DIALER_MAX_QUEUED_PER_PARTITION", "must be >= 1, got %d", c.MaxQueuedPerPartition)
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"DIALER_WATCHDOG_INTERVAL", c.WatchdogInterval}, {"DIALER_ROOM_CHECK_INTERVAL", c.RoomCheckInterval},
		{"DIALER_MAX_QUEUE_WAIT", c.MaxQueueWait}, {"DIALER_ENDED_RETENTION", c.EndedRetention}} {
		if d.v <= 0 {
			p.Add(d.key, "must be > 0, got %s", d.v)
		}
	}
	if c.WatchdogGrace < 0 {
		p.Add("DIALER_WATCHDOG_GRACE", "must be >= 0, got %s", c.WatchdogGrace)
	}
	if c.AgentReportURL != "" {
		if u, err := url.Parse(c.AgentReportURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p.Add("DIALER_AGENT_REPORT_URL", "must be an absolute http(s) URL, got %q", c.AgentReportURL)
		}
		if len(c.AgentReportSecrets) == 0 {
			p.Add("DIALSTREAM_AGENT_REPORT_SECRET", "required with DIALER_AGENT_REPORT_URL (the same secret as ingest's)")
		}
	}
	for i, s := range c.AgentReportSecrets {
		if len(s) < schemas.MinReportSecretLen {
			p.Add("DIALSTREAM_AGENT_REPORT_SECRET", "secret %d must be at least %d bytes, got %d", i+1, schemas.MinReportSecretLen, len(s))
		}
	}
	if c.AgentReportWindow <= 0 {
		p.Add("DIALSTREAM_AGENT_REPORT_WINDOW", "must be > 0, got %s", c.AgentReportWindow)
	}
	if c.DrainTimeout < 0 {
		p.Add("DIALER_DRAIN_TIMEOUT", "must be >= 0, got %s", c.DrainTimeout)
	}
	return errors.Join(kafka.Err(), p.Err())
}
