package notifier

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dialstream/dialstream/schemas"
)

// Result labels dialstream_notifier_webhook_attempts_total and the latency
// histogram: the webhook results of the delivery log plus "skipped" (the
// event had no callback_url; no request was made).
type Result string

const (
	ResultSuccess            = Result(schemas.WebhookSuccess)
	ResultRetry              = Result(schemas.WebhookRetry)
	ResultExhausted          = Result(schemas.WebhookExhausted)
	ResultFailed             = Result(schemas.WebhookFailed)
	ResultGone               = Result(schemas.WebhookGone)
	ResultSSRFRefused        = Result(schemas.WebhookSSRFRefused)
	ResultSkipped     Result = "skipped"
)

var allResults = []Result{ResultSuccess, ResultRetry, ResultExhausted, ResultFailed, ResultGone, ResultSSRFRefused, ResultSkipped}

// DLQReason is the dlq_error_class header of a notifier DLQ record and the
// label of dialstream_notifier_dlq_total.
type DLQReason string

const (
	// DLQInvalidEvent: the record on the events topic is not a valid
	// lifecycle CloudEvent.
	DLQInvalidEvent DLQReason = "invalid_event"
	// DLQExhausted: every attempt of the schedule failed with a retryable error.
	DLQExhausted DLQReason = "exhausted"
	// DLQFinalStatus: the receiver answered 3xx or a final 4xx.
	DLQFinalStatus DLQReason = "final_status"
	// DLQGone: the URL answered 410 Gone, now or before.
	DLQGone DLQReason = "gone"
	// DLQSSRFRefused: the URL resolved to a refused address.
	DLQSSRFRefused DLQReason = "ssrf_refused"
	// DLQUndeliverable: the URL is malformed or not http(s), or the workspace
	// is unknown or has no webhook secret (deliveries are never unsigned).
	DLQUndeliverable DLQReason = "undeliverable"
)

var allDLQReasons = []DLQReason{DLQInvalidEvent, DLQExhausted, DLQFinalStatus, DLQGone, DLQSSRFRefused, DLQUndeliverable}

// Follow-up record kinds, labelling produce failures.
const (
	produceRetry    = "retry"
	produceDLQ      = "dlq"
	produceLog      = "delivery_log"
	produceEndpoint = "endpoint"
)

type metrics struct {
	attempts        *prometheus.CounterVec
	latency         *prometheus.HistogramVec
	eventToDelivery prometheus.Histogram
	retries         *prometheus.CounterVec
	dlq             *prometheus.CounterVec
	ssrf            *prometheus.CounterVec
	produceFailures *prometheus.CounterVec
	inFlight        prometheus.Gauge
	buffered        prometheus.Gauge
	goneEndpoints   prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, attempts int) *metrics {
	m := &metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dialstream_notifier_webhook_attempts_total",
			Help: "Webhook delivery attempts by result (skipped: the event had no callback_url).",
		}, []string{"result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dialstream_notifier_webhook_duration_seconds",
			Help:    "Duration of one webhook attempt, from dial to the last response byte read, by result.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"result"}),
		eventToDelivery: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "dialstream_notifier_event_to_delivery_seconds",
			Help:    "Time from a lifecycle event (its ce_time) to its successful delivery, retries included.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200, 36000, 86400},
		}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dialstream_notifier_retries_scheduled_total",
			Help: "Deliveries moved to a retry topic, by schedule step (1 = the first retry).",
		}, []string{"step"}),
		dlq: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dialstream_notifier_dlq_total",
			Help: "Events written to the webhook DLQ, by reason.",
		}, []string{"reason"}),
		ssrf: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dialstream_notifier_ssrf_refusals_total",
			Help: "Connections the SSRF guard refused, by address range.",
		}, []string{"range"}),
		produceFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dialstream_notifier_produce_failures_total",
			Help: "Failed produces of follow-up records (retried until they succeed, except the delivery log), by kind.",
		}, []string{"kind"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dialstream_notifier_in_flight",
			Help: "Deliveries in progress.",
		}),
		buffered: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dialstream_notifier_buffered_records",
			Help: "Records held by the notifier: waiting for their due time, in flight, or done but not yet committable.",
		}),
		goneEndpoints: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dialstream_notifier_gone_endpoints",
			Help: "Callback URLs known to have answered 410 Gone.",
		}),
	}
	for _, r := range allResults {
		m.attempts.WithLabelValues(string(r))
		m.latency.WithLabelValues(string(r))
	}
	for step := 1; step < attempts; step++ {
		m.retries.WithLabelValues(strconv.Itoa(step))
	}
	for _, r := range allDLQReasons {
		m.dlq.WithLabelValues(string(r))
	}
	for _, r := range refusedRanges {
		m.ssrf.WithLabelValues(r)
	}
	for _, k := range []string{produceRetry, produceDLQ, produceLog, produceEndpoint} {
		m.produceFailures.WithLabelValues(k)
	}
	reg.MustRegister(m.attempts, m.latency, m.eventToDelivery, m.retries, m.dlq, m.ssrf, m.produceFailures, m.inFlight, m.buffered, m.goneEndpoints)
	return m
}
