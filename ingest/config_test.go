package ingest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dialstream/dialstream/internal/envconfig"
)

func TestLoadConfigDefaults(t *testing.T) {
	l := envconfig.FromMap(map[string]string{"KAFKA_BROKERS": "k:9092"})
	c := LoadConfig(l)
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != "127.0.0.1:8080" || c.MaxBodyBytes != 64<<10 || c.MaxVariables != 64 || c.MaxValueLength != 4096 ||
		c.IdempotencyTTL != 24*time.Hour || c.IdempotencyMaxKeys != 50000 || c.DefaultRegion != "US" || c.RejectTestNumbers ||
		c.ShutdownTimeout != 15*time.Second || c.Kafka.ClientID != "dialstream-ingest" || c.Kafka.Brokers[0] != "k:9092" ||
		c.CallsRetention != 400*24*time.Hour || c.DatabaseURL != "" || c.EventStreamsPerWorkspace != 4 || c.EventStreamsMax != 1000 {
		t.Fatalf("%+v", c)
	}
	if err := c.withDefaults().Validate(); err == nil || err.Error() != "DIALSTREAM_REGISTRY: required (path of the workspace/agent registry file)\n"+
		"DATABASE_URL: required (the call records database: postgres://user:pass@host/db or sqlite://path)" {
		t.Fatalf("validate: %v", err)
	}
}

func TestLoadConfigFromEnv(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.yaml")
	if err := os.WriteFile(path, []byte("workspaces: [{id: w}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l := envconfig.FromMap(map[string]string{
		"INGEST_HTTP_ADDR": ":9000", "DIALSTREAM_REGISTRY": path, "INGEST_MAX_BODY_BYTES": "2048",
		"INGEST_MAX_VARIABLES": "10", "INGEST_MAX_VALUE_LENGTH": "100", "INGEST_IDEMPOTENCY_TTL": "1h",
		"INGEST_IDEMPOTENCY_MAX_KEYS": "7", "INGEST_IDEMPOTENCY_SECRET": "s3cret", "INGEST_DEFAULT_REGION": "gb",
		"INGEST_ALLOW_TEST_NUMBERS": "false", "INGEST_SHUTDOWN_TIMEOUT": "3s", "INGEST_EVENT_STREAMS_MAX": "50",
		"CALL_RECORDS_RETENTION": "30d", "DATABASE_URL": "postgres://u:p@db:5432/dialstream?sslmode=disable",
	})
	c := LoadConfig(l)
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != ":9000" || c.RegistryPath != path || c.MaxBodyBytes != 2048 || c.MaxVariables != 10 ||
		c.MaxValueLength != 100 || c.IdempotencyTTL != time.Hour || c.IdempotencyMaxKeys != 7 ||
		c.IdempotencySecret != "s3cret" || c.DefaultRegion != "GB" || !c.RejectTestNumbers || c.ShutdownTimeout != 3*time.Second ||
		c.CallsRetention != 30*24*time.Hour || c.DatabaseURL != "postgres://u:p@db:5432/dialstream?sslmode=disable" || c.EventStreamsMax != 50 {
		t.Fatalf("%+v", c)
	}
}

// Every problem at once, and no cap above the schema's.
func TestLoadConfigErrors(t *testing.T) {
	l := envconfig.FromMap(map[string]string{
		"DIALSTREAM_REGISTRY": "/nonexistent/registry.yaml", "INGEST_MAX_VARIABLES": "65",
		"INGEST_MAX_VALUE_LENGTH": "5000", "INGEST_DEFAULT_REGION": "XX", "INGEST_MAX_BODY_BYTES": "10",
		"CALL_RECORDS_RETENTION": "10s", "DATABASE_URL": "mysql://db", "INGEST_EVENT_STREAMS_MAX": "0",
	})
	LoadConfig(l)
	err := l.Err()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"INGEST_MAX_BODY_BYTES: must be >= 1024, got 10",
		"INGEST_MAX_VARIABLES: must be <= 64, got 65",
		"INGEST_MAX_VALUE_LENGTH: must be <= 4096, got 5000",
		`INGEST_DEFAULT_REGION: must be a two-letter region code like US or GB, got "XX"`,
		"DIALSTREAM_REGISTRY: stat /nonexistent/registry.yaml: no such file or directory",
		"CALL_RECORDS_RETENTION: must be between 1h and 36500d, got 10s",
		"INGEST_EVENT_STREAMS_MAX: must be >= 1, got 0",
		`DATABASE_URL: callrecords: DATABASE_URL must start with postgres://, postgresql:// or sqlite://, got "mysql://db"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in\n%v", want, err)
		}
	}
}

// The dev registry the README's curl uses works with the seed's request.
func TestDevRegistrySeedRequest(t *testing.T) {
	// Dev mode exports the trunk id it created before loading the file.
	t.Setenv("DIALSTREAM_DEV_SIP_TRUNK_ID", "ST_test")
	env := newTestEnv(t, func(c *Config) { c.Registry = nil; c.RegistryPath = "../deploy/dev/registry.yaml" })
	w := env.do(t, req{body: `{"to":"+15550100001","call_agent_id":"a1b2c3d4e5f6a7b8c9d0e1f2",` +
		`"dynamic_variables":{"firstName":"John","lastName":"Doe","Zipcode":"12345","address":"123 Main St","email":"john@example.com"},` +
		`"metadata":{"customer_id":"cust_123"}}`})
	if w.Code != 202 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	// ws_other's key cannot use ws_demo's agent.
	w = env.do(t, req{key: otherKey, workspace: "ws_other", body: validBody})
	if w.Code != 404 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
}
