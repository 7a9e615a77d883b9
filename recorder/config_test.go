package recorder

import (
	"strings"
	"testing"
	"time"

	"github.com/dialstream/dialstream/internal/envconfig"
)

func TestLoadConfig(t *testing.T) {
	l := envconfig.FromMap(map[string]string{
		"DATABASE_URL":                "sqlite://.data/records.db",
		"CALL_RECORDS_RETENTION":      "30d",
		"RECORDER_RETENTION_INTERVAL": "1m",
		"RECORDER_MAX_BATCH_RECORDS":  "500",
		"KAFKA_BROKERS":               "k1:9092,k2:9092",
	})
	c := LoadConfig(l)
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	if c.DatabaseURL != "sqlite://.data/records.db" || c.Retention != 30*24*time.Hour || c.RetentionInterval != time.Minute ||
		c.MaxBatchRecords != 500 || len(c.Kafka.Brokers) != 2 || c.HTTPAddr != DefaultHTTPAddr || c.GroupID != DefaultGroupID {
		t.Fatalf("config = %+v", c)
	}
	if c := LoadConfig(envconfig.FromMap(nil)); c.Retention != DefaultRetention || c.DeleteBatch != DefaultDeleteBatch {
		t.Fatalf("defaults = %+v", c)
	}
}

// Every problem at once, in the environment's names.
func TestConfigProblems(t *testing.T) {
	l := envconfig.FromMap(map[string]string{
		"DATABASE_URL":               "mysql://x",
		"CALL_RECORDS_RETENTION":     "forever",
		"RECORDER_MAX_BATCH_RECORDS": "0",
	})
	LoadConfig(l)
	err := l.Err()
	for _, want := range []string{"DATABASE_URL: ", "CALL_RECORDS_RETENTION: must be whole days", "RECORDER_MAX_BATCH_RECORDS: must be >= 1"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("load error %v lacks %q", err, want)
		}
	}
	err = Config{Retention: 30 * time.Minute, DeleteBatch: -1}.Validate()
	for _, want := range []string{"DATABASE_URL: required", "DIALSTREAM_REGISTRY: required", "KAFKA_BROKERS: required",
		"CALL_RECORDS_RETENTION: must be between 1h", "RECORDER_DELETE_BATCH: must be >= 1"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error %v lacks %q", err, want)
		}
	}
	for _, v := range []string{"0d", "59m", "-1d", "1.5d", "36501d"} {
		l := envconfig.FromMap(map[string]string{"CALL_RECORDS_RETENTION": v})
		LoadConfig(l)
		if l.Err() == nil {
			t.Errorf("CALL_RECORDS_RETENTION=%s accepted", v)
		}
	}
}
