package notifier

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dialstream/dialstream/internal/envconfig"
)

func TestLoadConfigDefaults(t *testing.T) {
	l := envconfig.FromMap(map[string]string{"KAFKA_BROKERS": "127.0.0.1:9092", "NOTIFIER_ALLOW_CIDRS": "127.0.0.0/8, ::1"})
	c := LoadConfig(l)
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.RetrySchedule, DefaultRetrySchedule()) || c.RetryJitter != DefaultRetryJitter ||
		c.Timeout != DefaultTimeout || c.ConnectTimeout != DefaultConnectTimeout || c.MaxInFlight != DefaultMaxInFlight ||
		c.MaxResponseBytes != DefaultMaxResponseBytes || c.GroupID != "dialstream-notifier" || c.HTTPAddr != DefaultHTTPAddr {
		t.Fatalf("defaults: %+v", c)
	}
	want := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	if !slices.Equal(c.AllowCIDRs, want) {
		t.Fatalf("allow %v", c.AllowCIDRs)
	}
	if c.Kafka.ClientID != "dialstream-notifier" {
		t.Fatalf("client id %s", c.Kafka.ClientID)
	}
}

func TestLoadConfigReportsEveryProblem(t *testing.T) {
	l := envconfig.FromMap(map[string]string{
		"NOTIFIER_RETRY_SCHEDULE": "5s,1m",
		"NOTIFIER_ALLOW_CIDRS":    "10.0.0.0/33",
		"NOTIFIER_RETRY_JITTER":   "2",
		"NOTIFIER_MAX_IN_FLIGHT":  "0",
		"DIALSTREAM_REGISTRY":     "/nonexistent/registry.yaml",
	})
	LoadConfig(l)
	err := l.Err()
	if err == nil {
		t.Fatal("no error")
	}
	for _, k := range []string{"NOTIFIER_RETRY_SCHEDULE: the first step must be 0s", "NOTIFIER_ALLOW_CIDRS", "NOTIFIER_RETRY_JITTER", "NOTIFIER_MAX_IN_FLIGHT", "DIALSTREAM_REGISTRY"} {
		if !strings.Contains(err.Error(), k) {
			t.Errorf("error does not mention %s: %v", k, err)
		}
	}
	if err := (Config{}).withDefaults().Validate(); err == nil || !strings.Contains(err.Error(), "KAFKA_BROKERS") || !strings.Contains(err.Error(), "DIALSTREAM_REGISTRY") {
		t.Fatalf("validate: %v", err)
	}
	if err := validateSchedule([]time.Duration{0, 1500 * time.Microsecond}); err == nil {
		t.Fatal("sub-millisecond step accepted")
	}
}
