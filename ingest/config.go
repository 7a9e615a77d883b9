package ingest

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/dialstream/dialstream/internal/envconfig"
	"github.com/dialstream/dialstream/internal/kafkax"
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

// Defaults of the INGEST_* variables.
const (
	DefaultHTTPAddr           = "127.0.0.1:8080"
	DefaultMaxBodyBytes       = 64 << 10
	DefaultMaxVariables       = schemaMaxVariables
	DefaultMaxValueLength     = schemaMaxValueLength
	DefaultIdempotencyTTL     = 24 * time.Hour
	DefaultIdempotencyMaxKeys = 50_000
	DefaultRegion             = "US"
	DefaultShutdownTimeout    = 15 * time.Second
	DefaultCallsRetention     = 24 * time.Hour
	DefaultCallsMax           = 20_000
)

// Config is everything ingest needs. LoadConfig fills it from the
// environment; tests build it in code, and zero values take the defaults.
type Config struct {
	// HTTPAddr is where the API listens (INGEST_HTTP_ADDR).
	HTTPAddr string
	// Listener, when set, is served instead of binding HTTPAddr (tests, socket
	// activation).
	Listener net.Listener

	// RegistryPath is the workspace/agent registry file (DIALSTREAM_REGISTRY).
	// Ignored when Registry is set.
	RegistryPath string
	Registry     *registry.Registry

	// MaxBodyBytes caps a request body; larger bodies get 413
	// (INGEST_MAX_BODY_BYTES).
	MaxBodyBytes int64
	// MaxVariables caps the keys of dynamic_variables (INGEST_MAX_VARIABLES,
	// at most the schema's 64).
	MaxVariables int
	// MaxValueLength caps one dynamic variable's value in characters
	// (INGEST_MAX_VALUE_LENGTH, at most the schema's 4096).
	MaxValueLength int

	// IdempotencyTTL is how long an Idempotency-Key is remembered
	// (INGEST_IDEMPOTENCY_TTL).
	IdempotencyTTL time.Duration
	// IdempotencyMaxKeys bounds the keys remembered per replica; the oldest
	// finished keys are forgotten first (INGEST_IDEMPOTENCY_MAX_KEYS).
	IdempotencyMaxKeys int
	// IdempotencySecret keys the HMAC that derives a call's id from its
	// Idempotency-Key (INGEST_IDEMPOTENCY_SECRET). Every replica must share
	// it; empty uses a built-in constant, which keeps ids deterministic across
	// replicas but lets anyone who knows a workspace and key compute the id.
	IdempotencySecret string

	// DefaultRegion parses numbers written without a leading + (ISO 3166
	// region, INGEST_DEFAULT_REGION).
	DefaultRegion string
	// RejectTestNumbers refuses +1 555 010 xxxx, the dev/test range that is
	// accepted by default although the phone-number library calls it invalid
	// (INGEST_ALLOW_TEST_NUMBERS=false sets it). See isTestNumber for why such
	// a number can never ring a real person.
	RejectTestNumbers bool

	// ShutdownTimeout bounds the graceful drain of in-flight requests
	// (INGEST_SHUTDOWN_TIMEOUT).
	ShutdownTimeout time.Duration

	// CallsRetention is how far back the call state reaches: on start each
	// replica reads its topics from this long ago, and calls requested
	// longer ago are dropped (INGEST_CALLS_RETENTION). Keep it within the
	// topics' retention (KAFKA_TOPIC_RETENTION).
	CallsRetention time.Duration
	// CallsMax bounds the calls held; past it the oldest (by requested_at)
	// are dropped first (INGEST_CALLS_MAX). See store.go for the memory it
	// takes.
	CallsMax int

	Kafka kafkax.Config

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
		MaxBodyBytes:       int64(l.Int("INGEST_MAX_BODY_BYTES", DefaultMaxBodyBytes, 1<<10, 512<<10)),
		MaxVariables:       l.Int("INGEST_MAX_VARIABLES", DefaultMaxVariables, 1, schemaMaxVariables),
		MaxValueLength:     l.Int("INGEST_MAX_VALUE_LENGTH", DefaultMaxValueLength, 1, schemaMaxValueLength),
		IdempotencyTTL:     l.Duration("INGEST_IDEMPOTENCY_TTL", DefaultIdempotencyTTL, time.Minute, 30*24*time.Hour),
		IdempotencyMaxKeys: l.Int("INGEST_IDEMPOTENCY_MAX_KEYS", DefaultIdempotencyMaxKeys, 1, 10_000_000),
		IdempotencySecret:  l.String("INGEST_IDEMPOTENCY_SECRET", ""),
		DefaultRegion:      strings.ToUpper(l.String("INGEST_DEFAULT_REGION", DefaultRegion)),
		RejectTestNumbers:  !l.Bool("INGEST_ALLOW_TEST_NUMBERS", true),
		ShutdownTimeout:    l.Duration("INGEST_SHUTDOWN_TIMEOUT", DefaultShutdownTimeout, time.Second, 10*time.Minute),
		CallsRetention:     l.Duration("INGEST_CALLS_RETENTION", DefaultCallsRetention, time.Minute, 90*24*time.Hour),
		CallsMax:           l.Int("INGEST_CALLS_MAX", DefaultCallsMax, 1, 100_000_000),
		Kafka:              kafkax.LoadConfig(l, "ingest"),
	}
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
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.CallsRetention == 0 {
		c.CallsRetention = DefaultCallsRetention
	}
	if c.CallsMax == 0 {
		c.CallsMax = DefaultCallsMax
	}
	if c.TracerProvider == nil {
		c.TracerProvider = otel.GetTracerProvider()
	}
	if c.Kafka.ProduceTimeout == 0 {
		c.Kafka.ProduceTimeout = 5 * time.Second
	}
	if c.Kafka.Partitions == 0 {
		c.Kafka.Partitions = 6
	}
	if c.Kafka.ReplicationFactor == 0 {
		c.Kafka.ReplicationFactor = -1
	}
	if c.Kafka.ClientID == "" {
		c.Kafka.ClientID = "dialstream-ingest"
	}
	return c
}

// validate reports every problem of a Config built in code; needKafka adds
// the checks only Run needs.
func (c Config) validate(needKafka bool) error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Registry == nil && c.RegistryPath == "" {
		fail("DIALSTREAM_REGISTRY: required (path of the workspace/agent registry file)")
	}
	if c.MaxVariables < 1 || c.MaxVariables > schemaMaxVariables {
		fail("INGEST_MAX_VARIABLES: must be between 1 and %d (the call.requested.v1 schema cap), got %d", schemaMaxVariables, c.MaxVariables)
	}
	if c.MaxValueLength < 1 || c.MaxValueLength > schemaMaxValueLength {
		fail("INGEST_MAX_VALUE_LENGTH: must be between 1 and %d (the call.requested.v1 schema cap), got %d", schemaMaxValueLength, c.MaxValueLength)
	}
	if c.MaxBodyBytes < 1<<10 {
		fail("INGEST_MAX_BODY_BYTES: must be >= 1024, got %d", c.MaxBodyBytes)
	}
	if c.IdempotencyMaxKeys < 1 {
		fail("INGEST_IDEMPOTENCY_MAX_KEYS: must be >= 1, got %d", c.IdempotencyMaxKeys)
	}
	if c.CallsRetention < time.Second {
		fail("INGEST_CALLS_RETENTION: must be >= 1s, got %s", c.CallsRetention)
	}
	if c.CallsMax < 1 {
		fail("INGEST_CALLS_MAX: must be >= 1, got %d", c.CallsMax)
	}
	if phonenumbers.GetCountryCodeForRegion(c.DefaultRegion) == 0 {
		fail("INGEST_DEFAULT_REGION: must be a two-letter region code like US or GB, got %q", c.DefaultRegion)
	}
	if needKafka && len(c.Kafka.Brokers) == 0 {
		fail("KAFKA_BROKERS: required (comma-separated host:port list)")
	}
	return errors.Join(errs...)
}
