package ingest

import (
	"github.com/dialstream/dialstream/schemas"

	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/dialstream/dialstream/internal/callrecords"
	"github.com/dialstream/dialstream/internal/compliance"
	"github.com/dialstream/dialstream/internal/envconfig"
	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/obs"
	"github.com/dialstream/dialstream/internal/registry"
)

// Caps the call.requested.v1 schema enforces. Ingest's own limits may be
// lower, never higher: a request ingest accepts must never fail the schema
// when the record is built.
const (
	schemaMaxVariables   = 64
	schemaMaxValueLength = 4096
	schemaMaxCallbackURL = 2048
	schemaMaxIdemKey     = 255
)

// Defaults of the INGEST_* variables (the KAFKA_* ones are kafkax's).
const (
	DefaultHTTPAddr           = "127.0.0.1:8080"
	DefaultMaxBodyBytes       = 64 << 10
	DefaultMaxVariables       = schemaMaxVariables
	DefaultMaxValueLength     = schemaMaxValueLength
	DefaultIdempotencyTTL     = 24 * time.Hour
	DefaultIdempotencyMaxKeys = 50_000
	DefaultRegion             = "US"
	DefaultShutdownTimeout    = 15 * time.Second
	DefaultMaxInFlight        = 512
	DefaultCallsRetention     = callrecords.DefaultRetention
	DefaultEventStreams       = 4    // per workspace and replica
	DefaultEventStreamsMax    = 1000 // per replica, all workspaces
)

// Config is everything ingest needs. LoadConfig fills it from the
// environment; tests build it in code, and zero values take the defaults
// (withDefaults). Each field names its variable and default.
type Config struct {
	// HTTPAddr is where the API listens, the ops endpoints (/healthz,
	// /readyz, /metrics) included (INGEST_HTTP_ADDR, default
	// 127.0.0.1:8080).
	HTTPAddr string
	// Listener, when set, is served instead of binding HTTPAddr (tests,
	// socket activation). Code only.
	Listener net.Listener

	// RegistryPath is the workspace/agent registry file (DIALSTREAM_REGISTRY,
	// required unless Registry is set).
	RegistryPath string
	// Registry, when set, is used instead of loading RegistryPath (set by
	// cmd/dialstream in dev mode, and by tests).
	Registry *registry.Registry
	// Suppressions is the do-not-call table POST /v1/api/call checks. Nil
	// means a new, empty table that Run fills from dialstream.suppressions;
	// until it has loaded, calls get 503 (fail closed). Code only: tests
	// pass a table that is already ready.
	Suppressions *compliance.Table
	// Now is the clock calling hours are judged by; time.Now when nil.
	// Code only (tests pin the hour).
	Now func() time.Time

	// MaxBodyBytes caps a request body; larger bodies get 413
	// (INGEST_MAX_BODY_BYTES, default 65536, 1024 to 524288).
	MaxBodyBytes int64
	// MaxVariables caps the keys of dynamic_variables (INGEST_MAX_VARIABLES,
	// default and at most the schema's 64).
	MaxVariables int
	// MaxValueLength caps one dynamic variable's value in characters
	// (INGEST_MAX_VALUE_LENGTH, default and at most the schema's 4096).
	MaxValueLength int

	// IdempotencyTTL is how long an Idempotency-Key is remembered
	// (INGEST_IDEMPOTENCY_TTL, default 24h).
	IdempotencyTTL time.Duration
	// IdempotencyMaxKeys bounds the keys remembered per replica; the oldest
	// finished keys are forgotten first (INGEST_IDEMPOTENCY_MAX_KEYS, default
	// 50000).
	IdempotencyMaxKeys int
	// IdempotencySecret keys the HMAC that derives a call's id from its
	// Idempotency-Key (INGEST_IDEMPOTENCY_SECRET, default empty). Every
	// replica must share it; empty uses a built-in constant, which keeps ids
	// deterministic across replicas but lets anyone who knows a workspace and
	// key compute the id.
	IdempotencySecret string

	// DefaultRegion parses numbers written without a leading + (ISO 3166
	// region, INGEST_DEFAULT_REGION, default US).
	DefaultRegion string
	// RejectTestNumbers refuses +1 555 01x xxxx, the dev/test range that is
	// accepted by default although the phone-number library calls it invalid
	// (INGEST_ALLOW_TEST_NUMBERS=false sets it; default false). See
	// isTestNumber for why such a number can never ring a real person.
	RejectTestNumbers bool

	// MaxInFlight caps the API requests this replica serves at once
	// (INGEST_MAX_IN_FLIGHT, default 512). Past it a request is answered
	// 503 with Retry-After at once, before any work (overload.go): under
	// more load than it can serve, ingest answers fast and its memory stays
	// bounded, instead of queueing requests until they time out.
	MaxInFlight int

	// EventStreamsPerWorkspace caps the GET /v1/api/events/stream
	// connections one workspace may hold open on this replica; past it a
	// new one is answered 429 with Retry-After
	// (INGEST_EVENT_STREAMS_PER_WORKSPACE, default 4, 1 to 1000).
	EventStreamsPerWorkspace int

	// EventStreamsMax caps the GET /v1/api/events/stream connections this
	// replica holds open, all workspaces together; past it a new one is
	// answered 503 with Retry-After (INGEST_EVENT_STREAMS_MAX, default
	// 1000, 1 to 1000000). The per-workspace cap alone lets many
	// workspaces together hold more connections (each a goroutine, a
	// 256-event queue and a socket) than a replica can carry.
	EventStreamsMax int

	// ShutdownTimeout bounds the graceful drain of in-flight requests
	// (INGEST_SHUTDOWN_TIMEOUT, default 15s).
	ShutdownTimeout time.Duration

	// DatabaseURL is the call records database every call-state route reads
	// (DATABASE_URL, required unless Store is set): postgres://... or
	// sqlite://path, the one the recorder writes.
	DatabaseURL string
	// Store, when set, is used instead of opening DatabaseURL (dev mode
	// shares one with the recorder; tests); Run does not close it. Code only.
	Store *callrecords.Store
	// CallsRetention is how long call records are kept
	// (CALL_RECORDS_RETENTION, default 400d): ingest's own writes never
	// create a call requested longer ago. The recorder deletes older ones.
	CallsRetention time.Duration
	// RecorderGroup is the recorder's consumer group (RECORDER_GROUP_ID,
	// default dialstream-recorder, the recorder's own variable): its
	// offsets, stored with its rows, tell ingest's reads when the recorder
	// has written the calls this replica accepted (ownwrites.go).
	RecorderGroup string

	// AgentReportSecrets verify the report tokens agents send to POST
	// /v1/agent/calls/:callId/reports (DIALSTREAM_AGENT_REPORT_SECRET,
	// comma-separated, each at least 32 bytes; the dialer mints with the
	// first of the same list). Empty: every report is refused (401).
	AgentReportSecrets [][]byte
	// AgentReportWindow is how long after its end a call takes its agent's
	// reports; later ones are 409 (DIALSTREAM_AGENT_REPORT_WINDOW, default
	// 15m; the dialer must use the same).
	AgentReportWindow time.Duration

	// Kafka is the shared KAFKA_* configuration (kafkax.LoadConfig; its
	// defaults are kafkax's, client id dialstream-ingest). KAFKA_BROKERS is
	// required.
	Kafka kafkax.Config

	// Logger, Metrics and TracerProvider are set in code by cmd/dialstream.
	// Nil Logger: discard. Nil Metrics: a registry of ingest's own; metrics
	// are registered on it, so one registry serves one ingest.
	Logger  *slog.Logger
	Metrics *prometheus.Registry
	// TracerProvider makes ingest's spans: one per API request, continuing
	// the request's traceparent, and one per record written, whose context
	// goes into the record's traceparent header. Nil: otel's global
	// provider, which cmd/dialstream sets from the OTEL_* variables.
	TracerProvider trace.TracerProvider
}

// LoadConfig reads ingest's variables and the shared KAFKA_* ones. Problems
// are recorded on l; call l.Err() once everything is loaded.
func LoadConfig(l *envconfig.Loader) Config {
	c := Config{
		HTTPAddr:           l.String("INGEST_HTTP_ADDR", DefaultHTTPAddr),
		RegistryPath:       l.String("DIALSTREAM_REGISTRY", ""),
		MaxBodyBytes:       int64(l.Int("INGEST_MAX_BODY_BYTES", DefaultMaxBodyBytes, minBodyBytes, maxBodyBytes)),
		MaxVariables:       l.Int("INGEST_MAX_VARIABLES", DefaultMaxVariables, 1, schemaMaxVariables),
		MaxValueLength:     l.Int("INGEST_MAX_VALUE_LENGTH", DefaultMaxValueLength, 1, schemaMaxValueLength),
		IdempotencyTTL:     l.Duration("INGEST_IDEMPOTENCY_TTL", DefaultIdempotencyTTL, time.Minute, 30*24*time.Hour),
		IdempotencyMaxKeys: l.Int("INGEST_IDEMPOTENCY_MAX_KEYS", DefaultIdempotencyMaxKeys, 1, 10_000_000),
		IdempotencySecret:  l.String("INGEST_IDEMPOTENCY_SECRET", ""),
		DefaultRegion:      strings.ToUpper(l.String("INGEST_DEFAULT_REGION", DefaultRegion)),
		RejectTestNumbers:  !l.Bool("INGEST_ALLOW_TEST_NUMBERS", true),
		ShutdownTimeout:    l.Duration("INGEST_SHUTDOWN_TIMEOUT", DefaultShutdownTimeout, time.Second, 10*time.Minute),
		MaxInFlight:        l.Int("INGEST_MAX_IN_FLIGHT", DefaultMaxInFlight, 1, 1_000_000),
		Kafka:              kafkax.LoadConfig(l, "ingest"),
		AgentReportSecrets: schemas.ReportSecrets(l.List("DIALSTREAM_AGENT_REPORT_SECRET", nil)),
		AgentReportWindow:  l.Duration("DIALSTREAM_AGENT_REPORT_WINDOW", schemas.DefaultReportWindow, time.Second, 7*24*time.Hour),
	}
	c.EventStreamsPerWorkspace = l.Int("INGEST_EVENT_STREAMS_PER_WORKSPACE", DefaultEventStreams, 1, maxStreamsPerWorkspace)
	c.EventStreamsMax = l.Int("INGEST_EVENT_STREAMS_MAX", DefaultEventStreamsMax, 1, maxStreams)
	records := callrecords.LoadConfig(l)
	c.DatabaseURL, c.CallsRetention = records.URL, records.Retention
	c.RecorderGroup = l.String("RECORDER_GROUP_ID", callrecords.DefaultRecorderGroup)
	if phonenumbers.GetCountryCodeForRegion(c.DefaultRegion) == 0 {
		l.Fail("INGEST_DEFAULT_REGION", "must be a two-letter region code like US or GB, got %q", c.DefaultRegion)
	}
	if c.RegistryPath != "" {
		if _, err := os.Stat(c.RegistryPath); err != nil {
			l.Fail("DIALSTREAM_REGISTRY", "%v", err)
		}
	}
	return c
}

// Bounds of INGEST_MAX_BODY_BYTES.
const (
	minBodyBytes = 1 << 10
	maxBodyBytes = 512 << 10
)

// Bounds of INGEST_EVENT_STREAMS_PER_WORKSPACE and INGEST_EVENT_STREAMS_MAX.
const (
	maxStreamsPerWorkspace = 1000
	maxStreams             = 1_000_000
)

// withDefaults fills the zero values of a Config built in code.
func (c Config) withDefaults() Config {
	if c.HTTPAddr == "" {
		c.HTTPAddr = DefaultHTTPAddr
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxVariables == 0 {
		c.MaxVariables = DefaultMaxVariables
	}
	if c.MaxValueLength == 0 {
		c.MaxValueLength = DefaultMaxValueLength
	}
	if c.IdempotencyTTL == 0 {
		c.IdempotencyTTL = DefaultIdempotencyTTL
	}
	if c.IdempotencyMaxKeys == 0 {
		c.IdempotencyMaxKeys = DefaultIdempotencyMaxKeys
	}
	if c.DefaultRegion == "" {
		c.DefaultRegion = DefaultRegion
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.EventStreamsPerWorkspace == 0 {
		c.EventStreamsPerWorkspace = DefaultEventStreams
	}
	if c.EventStreamsMax == 0 {
		c.EventStreamsMax = DefaultEventStreamsMax
	}
	if c.CallsRetention == 0 {
		c.CallsRetention = DefaultCallsRetention
	}
	if c.AgentReportWindow == 0 {
		c.AgentReportWindow = schemas.DefaultReportWindow
	}
	if c.RecorderGroup == "" {
		c.RecorderGroup = callrecords.DefaultRecorderGroup
	}
	c.Kafka = c.Kafka.WithDefaults("ingest")
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

// Validate reports every problem of a Config built in code, all at once;
// Run and NewHandler call it after withDefaults.
func (c Config) Validate() error {
	// kafkax.Config.Validate records on a Loader; its problems join ours.
	kafka := envconfig.FromMap(nil)
	c.Kafka.Validate(kafka)
	var p envconfig.Problems
	if c.Registry == nil && c.RegistryPath == "" {
		p.Add("DIALSTREAM_REGISTRY", "required (path of the workspace/agent registry file)")
	}
	if c.MaxInFlight < 1 {
		p.Add("INGEST_MAX_IN_FLIGHT", "must be >= 1, got %d", c.MaxInFlight)
	}
	if c.EventStreamsPerWorkspace < 1 || c.EventStreamsPerWorkspace > maxStreamsPerWorkspace {
		p.Add("INGEST_EVENT_STREAMS_PER_WORKSPACE", "must be between 1 and %d, got %d", maxStreamsPerWorkspace, c.EventStreamsPerWorkspace)
	}
	if c.EventStreamsMax < 1 || c.EventStreamsMax > maxStreams {
		p.Add("INGEST_EVENT_STREAMS_MAX", "must be between 1 and %d, got %d", maxStreams, c.EventStreamsMax)
	}
	if c.MaxVariables < 1 || c.MaxVariables > schemaMaxVariables {
		p.Add("INGEST_MAX_VARIABLES", "must be between 1 and %d (the call.requested.v1 schema cap), got %d", schemaMaxVariables, c.MaxVariables)
	}
	if c.MaxValueLength < 1 || c.MaxValueLength > schemaMaxValueLength {
		p.Add("INGEST_MAX_VALUE_LENGTH", "must be between 1 and %d (the call.requested.v1 schema cap), got %d", schemaMaxValueLength, c.MaxValueLength)
	}
	if c.MaxBodyBytes < minBodyBytes {
		p.Add("INGEST_MAX_BODY_BYTES", "must be >= %d, got %d", minBodyBytes, c.MaxBodyBytes)
	}
	if c.IdempotencyMaxKeys < 1 {
		p.Add("INGEST_IDEMPOTENCY_MAX_KEYS", "must be >= 1, got %d", c.IdempotencyMaxKeys)
	}
	if c.Store == nil && c.DatabaseURL == "" {
		p.Add("DATABASE_URL", "required (the call records database: postgres://user:pass@host/db or sqlite://path)")
	}
	if c.CallsRetention < time.Hour || c.CallsRetention > callrecords.MaxRetention {
		p.Add("CALL_RECORDS_RETENTION", "must be between 1h and %dd, got %s", callrecords.MaxRetention/(24*time.Hour), c.CallsRetention)
	}
	for i, s := range c.AgentReportSecrets {
		if len(s) < schemas.MinReportSecretLen {
			p.Add("DIALSTREAM_AGENT_REPORT_SECRET", "secret %d must be at least %d bytes, got %d", i+1, schemas.MinReportSecretLen, len(s))
		}
	}
	if c.AgentReportWindow <= 0 {
		p.Add("DIALSTREAM_AGENT_REPORT_WINDOW", "must be > 0, got %s", c.AgentReportWindow)
	}
	if phonenumbers.GetCountryCodeForRegion(c.DefaultRegion) == 0 {
		p.Add("INGEST_DEFAULT_REGION", "must be a two-letter region code like US or GB, got %q", c.DefaultRegion)
	}
	return errors.Join(p.Err(), kafka.Err())
}
