package recorder

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dialstream/dialstream/schemas"
)

// failure labels dialstream_recorder_batch_failures_total.
type failure string

const (
	// failureOffsetMoved: another member wrote the partition's position
	// (this one lost it in a rebalance); the batch is dropped.
	failureOffsetMoved failure = "offset_moved"
	// failureDatabase: the database refused or did not answer; the batch
	// is read again after a pause.
	failureDatabase failure = "database"
)

type metrics struct {
	records            *prometheus.CounterVec // topic, result
	batchSeconds       prometheus.Histogram
	batchFailures      *prometheus.CounterVec // reason
	lag                *prometheus.GaugeVec
	retentionCalls     prometheus.Counter
	retentionCampaigns prometheus.Counter
	retentionRuns      *prometheus.CounterVec // result
	retentionLast      prometheus.Gauge
}

// topicLabel bounds the topic label to the recorded topics.
func topicLabel(t string) string {
	switch t {
	case schemas.TopicRequested:
		return "requested"
	case schemas.TopicEvents:
		return "events"
	case schemas.TopicWebhookDeliveries:
		return "deliveries"
	case schemas.TopicCampaignState:
		return "campaign_state"
	case schemas.TopicCampaignCommands:
		return "campaign_commands"
	}
	return "other"
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dialstream_recorder_records_total",
			Help: "Records read from the call and campaign topics, by topic and what became of them (written, skipped: not for the records or a replay, invalid: unreadable).",
		}, []string{"topic", "result"}),
		batchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "dialstream_recorder_batch_seconds",
			Help:    "Time to write one batch of records and its offsets in one database transaction, commit included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}),
		batchFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dialstream_recorder_batch_failures_total",
			Help: "Batches rolled back: offset_moved (another member owns the partition now), database (read again after a pause).",
		}, []string{"reason"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "dialstream_recorder_lag_records",
			Help: "Records on each topic not yet in the database: end offsets minus the positions stored in it, over all partitions.",
		}, []string{"topic"}),
		retentionCalls: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dialstream_recorder_retention_deleted_calls_total",
			Help: "Calls deleted (with their events and delivery attempts) for being older than CALL_RECORDS_RETENTION.",
		}),
		retentionCampaigns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dialstream_recorder_retention_deleted_campaigns_total",
			Help: "Campaigns deleted (with their contacts) for having finished longer ago than CALL_RECORDS_RETENTION.",
		}),
		retentionRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dialstream_recorder_retention_runs_total",
			Help: "Runs of the retention delete, by result (ok, error).",
		}, []string{"result"}),
		retentionLast: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dialstream_recorder_retention_last_success_timestamp_seconds",
			Help: "When the retention delete last finished without error (Unix seconds; 0: not yet).",
		}),
	}
	reg.MustRegister(m.records, m.batchSeconds, m.batchFailures, m.lag, m.retentionCalls, m.retentionCampaigns, m.retentionRuns, m.retentionLast)
	for _, t := range consumedTopics {
		for _, r := range results {
			m.records.WithLabelValues(topicLabel(t), string(r))
		}
		m.lag.WithLabelValues(topicLabel(t))
	}
	for _, f := range []failure{failureOffsetMoved, failureDatabase} {
		m.batchFailures.WithLabelValues(string(f))
	}
	m.retentionRuns.WithLabelValues("ok")
	m.retentionRuns.WithLabelValues("error")
	return m
}
