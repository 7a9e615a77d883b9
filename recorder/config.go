package recorder

import (
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/dialstream/dialstream/internal/callrecords"
	"github.com/dialstream/dialstream/internal/envconfig"
	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/registry"
)

// Defaults of the recorder's variables.
const (
	DefaultHTTPAddr          = "127.0.0.1:8084"
	DefaultGroupID           = callrecords.DefaultRecorderGroup
	DefaultRetention         = callrecords.DefaultRetention
	DefaultRetentionInterval = 10 * time.Minute
	DefaultDeleteBatch       = callrecords.DefaultDeleteBatch
	DefaultMaxBatchRecords   = 2000
)

// Config is everything the recorder needs. LoadConfig fills it from the
// environment; tests and dev mode build it in code, and zero values take
// the defaults.
type Config struct {
	// HTTPAddr serves /healthz, /readyz and /metrics (RECORDER_HTTP_ADDR,
	// default 127.0.0.1:8084).
	HTTPAddr string
	// Listener, when set, is served instead of binding HTTPAddr (tests).
	Listener net.Listener
	// GroupID is the consumer group (RECORDER_GROUP_ID, default
	// dialstream-recorder). Its positions live in the database, under this
	// name: a new group id records every call Kafka still holds again
	// (harmlessly: each row is written once).
	GroupID string

	// DatabaseURL is the call records database (DATABASE_URL, required):
	// postgres://... or sqlite://path. Ignored when Store is set.
	DatabaseURL string
	// Store, when set, is used instead of opening DatabaseURL (dev mode
	// shares one with ingest); Run does not close it.
	Store *callrecords.Store

	// Retention is how long a call's records are kept, counted from its
	// requested_at (CALL_RECORDS_RETENTION, default 400d; "d" days or a Go
	// duration like 720h). RetentionInterval is how often the delete runs
	// (RECORDER_RETENTION_INTERVAL, default 10m), DeleteBatch how many
	// calls one of its transactions removes (RECORDER_DELETE_BATCH,
	// default 1000).
	Retention         time.Duration
	RetentionInterval time.Duration
	DeleteBatch       int

	// MaxBatchRecords caps the records written per database transaction
	// (RECORDER_MAX_BATCH_RECORDS, default 2000): larger batches write
	// faster, and a failed one is read again whole.
	MaxBatchRecords int

	// RegistryPath is the workspace registry file (DIALSTREAM_REGISTRY),
	// ignored when Registry is set: records of workspaces it does not name
	// are not kept, as ingest does not take them.
	RegistryPath string
	Registry     *registry.Registry

	Kafka kafkax.Config

	Logger *slog.Logger
	// Metrics is the process registry; nil makes a new one. Register one
	// Run per registry.
	Metrics *prometheus.Registry
	// TracerProvider makes one span per written batch. Nil: otel's global
	// provider, which cmd/dialstream sets from the OTEL_* variables.
	TracerProvider trace.TracerProvider
}

// LoadConfig reads the recorder's variables and the shared KAFKA_* ones.
// Problems are recorded on l; call l.Err() once everything is loaded.
func LoadConfig(l *envconfig.Loader) Config {
	records := callrecords.LoadConfig(l)
	c := Config{
		HTTPAddr:          l.String("RECORDER_HTTP_ADDR", DefaultHTTPAddr),
		GroupID:           l.String("RECORDER_GROUP_ID", DefaultGroupID),
		DatabaseURL:       records.URL,
		Retention:         records.Retention,
		RetentionInterval: l.Duration("RECORDER_RETENTION_INTERVAL", DefaultRetentionInterval, time.Second, 24*time.Hour),
		DeleteBatch:       l.Int("RECORDER_DELETE_BATCH", DefaultDeleteBatch, 1, 100_000),
		MaxBatchRecords:   l.Int("RECORDER_MAX_BATCH_RECORDS", DefaultMaxBatchRecords, 1, 100_000),
		RegistryPath:      l.String("DIALSTREAM_REGISTRY", ""),
		Kafka:             kafkax.LoadConfig(l, "recorder"),
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
	if c.GroupID == "" {
		c.GroupID = DefaultGroupID
	}
	if c.Retention == 0 {
		c.Retention = DefaultRetention
	}
	if c.RetentionInterval == 0 {
		c.RetentionInterval = DefaultRetentionInterval
	}
	if c.DeleteBatch == 0 {
		c.DeleteBatch = DefaultDeleteBatch
	}
	if c.MaxBatchRecords == 0 {
		c.MaxBatchRecords = DefaultMaxBatchRecords
	}
	c.Kafka = c.Kafka.WithDefaults("recorder")
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.TracerProvider == nil {
		c.TracerProvider = otel.GetTracerProvider()
	}
	return c
}

// Validate reports every problem of a Config (after defaults), in the
// environment's names.
func (c Config) Validate() error {
	c = c.withDefaults()
	var p envconfig.Problems
	if c.Store == nil && c.DatabaseURL == "" {
		p.Add("DATABASE_URL", "required (postgres://user:pass@host/db or sqlite://path)")
	}
	if c.Registry == nil && c.RegistryPath == "" {
		p.Add("DIALSTREAM_REGISTRY", "required (path of the workspace/agent registry file)")
	}
	if len(c.Kafka.Brokers) == 0 {
		p.Add("KAFKA_BROKERS", "required (comma-separated host:port list)")
	}
	if c.Retention < time.Hour || c.Retention > callrecords.MaxRetention {
		p.Add("CALL_RECORDS_RETENTION", "must be between 1h and %dd, got %s", callrecords.MaxRetention/(24*time.Hour), c.Retention)
	}
	if c.RetentionInterval < 0 {
		p.Add("RECORDER_RETENTION_INTERVAL", "must be positive, got %s", c.RetentionInterval)
	}
	if c.DeleteBatch < 1 {
		p.Add("RECORDER_DELETE_BATCH", "must be >= 1, got %d", c.DeleteBatch)
	}
	if c.MaxBatchRecords < 1 {
		p.Add("RECORDER_MAX_BATCH_RECORDS", "must be >= 1, got %d", c.MaxBatchRecords)
	}
	return p.Err()
}
