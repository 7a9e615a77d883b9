package notifier

import (
	"testing"

	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/prometheus/client_golang/prometheus"
)

// Every series exists from the start (dashboards show zeros, not gaps), names
// follow the conventions, and label values are bounded.
func TestMetricsInitialized(t *testing.T) {
	reg := prometheus.NewRegistry()
	newMetrics(reg, 8)
	series := testutil.MetricSeries(t, reg, "dialstream_notifier_")
	want := map[string]int{
		"dialstream_notifier_webhook_attempts_total":    len(allResults),
		"dialstream_notifier_webhook_duration_seconds":  len(allResults),
		"dialstream_notifier_event_to_delivery_seconds": 1,
		"dialstream_notifier_retries_scheduled_total":   7,
		"dialstream_notifier_dlq_total":                 len(allDLQReasons),
		"dialstream_notifier_ssrf_refusals_total":       len(refusedRanges),
		"dialstream_notifier_produce_failures_total":    4,
		"dialstream_notifier_in_flight":                 1,
		"dialstream_notifier_buffered_records":          1,
		"dialstream_notifier_gone_endpoints":            1,
	}
	for name, n := range want {
		if series[name] != n {
			t.Errorf("%s: %d series, want %d", name, series[name], n)
		}
	}
}
