package testutil

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// MetricSeries gathers g, checks every family against the project's metric
// conventions (the name starts with prefix, counters end in _total,
// histograms in _seconds) and returns the number of series of each family.
func MetricSeries(t testing.TB, g prometheus.Gatherer, prefix string) map[string]int {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := map[string]int{}
	for _, mf := range mfs {
		name := mf.GetName()
		if !strings.HasPrefix(name, prefix) {
			t.Errorf("%s: not %s*", name, prefix)
		}
		if mf.GetType().String() == "COUNTER" && !strings.HasSuffix(name, "_total") {
			t.Errorf("counter %s without _total", name)
		}
		if mf.GetType().String() == "HISTOGRAM" && !strings.HasSuffix(name, "_seconds") {
			t.Errorf("histogram %s not in seconds", name)
		}
		series[name] = len(mf.GetMetric())
	}
	return series
}
