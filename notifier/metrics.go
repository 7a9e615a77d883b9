package notifier

import (
	"context"
	"log/slog"
	"regexp"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/dialstream/dialstream/internal/kafkax"
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
	consumerLag     *prometheus.GaugeVec

	// The children of attempts and latency by result, looked up once:
	// WithLabelValues hashes and checks its labels under a lock on every
	// call, and these two are counted on every webhook.
	attemptsBy map[Result]prometheus.Counter
	latencyBy  map[Result]prometheus.Observer
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
			Help: "Failed produces of follow-up records and delivery log entries (each retried until it succeeds; the event stays uncommitted meanwhile), by kind.",
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
		consumerLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "dialstream_notifier_consumer_lag_records",
			Help: "Records of the topic not yet committed by the consumer group (high watermark - committed offset, summed over partitions). " +
				"On a retry topic this is the retry-topic depth: deliveries waiting for their next attempt. " +
				"Every member reports the whole group: aggregate with max by (group, topic), not sum.",
		}, []string{"group", "topic"}),
	}
	m.attemptsBy = make(map[Result]prometheus.Counter, len(allResults))
	m.latencyBy = make(map[Result]prometheus.Observer, len(allResults))
	for _, r := range allResults {
		m.attemptsBy[r] = m.attempts.WithLabelValues(string(r))
		m.latencyBy[r] = m.latency.WithLabelValues(string(r))
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
	reg.MustRegister(m.attempts, m.latency, m.eventToDelivery, m.retries, m.dlq, m.ssrf, m.produceFailures, m.inFlight, m.buffered, m.goneEndpoints, m.consumerLag)
	return m
}

// attempt counts one attempt (or skipped event) with result r.
func (m *metrics) attempt(r Result) { m.attemptsBy[r].Inc() }

// observe records how long an attempt with result r took.
func (m *metrics) observe(r Result, d time.Duration) { m.latencyBy[r].Observe(d.Seconds()) }

// lagInterval is how often consumer lag is measured: four small admin
// requests per interval (topic list, end and start offsets, the group's
// commits).
const lagInterval = 5 * time.Second

// followLag measures the group's lag on every topic it consumes (the events
// topic, redelivery, every retry topic, those of an older schedule included)
// until ctx ends. Every member measures the whole group rather than its own
// partitions, so the lag of partitions between owners (or of a group with no
// member left) is still reported; the price is one identical series per
// replica, which dashboards aggregate with max. A topic that disappears
// (an old retry topic deleted) loses its series.
func (m *metrics) followLag(ctx context.Context, adm *kadm.Client, group string, log *slog.Logger) {
	res := make([]*regexp.Regexp, len(consumeRegexes))
	for i, r := range consumeRegexes {
		res[i] = regexp.MustCompile(r)
	}
	t := time.NewTicker(lagInterval)
	defer t.Stop()
	seen := map[string]bool{}
	for {
		mctx, cancel := context.WithTimeout(ctx, lagInterval)
		lag, listed, err := consumedLag(mctx, adm, group, res)
		cancel()
		if err != nil && ctx.Err() == nil {
			log.Debug("notifier: measure consumer lag", "err", err)
		}
		if err == nil {
			for topic := range seen {
				if !listed[topic] {
					m.consumerLag.DeleteLabelValues(group, topic)
					delete(seen, topic)
				}
			}
		}
		for topic, n := range lag {
			m.consumerLag.WithLabelValues(group, topic).Set(float64(n))
			seen[topic] = true
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// consumedLag lists the topics the group consumes and measures its lag on
// them; listed holds every consumed topic that exists.
func consumedLag(ctx context.Context, adm *kadm.Client, group string, res []*regexp.Regexp) (lag map[string]int64, listed map[string]bool, err error) {
	all, err := adm.ListTopics(ctx)
	if err != nil {
		return nil, nil, err
	}
	listed = map[string]bool{}
	var topics []string
	for _, t := range all.Names() {
		for _, re := range res {
			if re.MatchString(t) {
				topics = append(topics, t)
				listed[t] = true
				break
			}
		}
	}
	if len(topics) == 0 {
		return nil, listed, nil
	}
	lag, err = kafkax.GroupLag(ctx, adm, group, topics)
	return lag, listed, err
}
