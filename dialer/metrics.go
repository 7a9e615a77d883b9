package dialer

import (
	"time"

	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dialstream/dialstream/schemas"
)

// Reject classes: why a record on the requested topic could not be a call.
// They label metrics and the DLQ's dlq_error_class header.
const (
	classHeaders          = "headers"
	classUnknownType      = "unknown_type"
	classSchema           = "schema"
	classKey              = "key"
	classUnknownWorkspace = "unknown_workspace"
	classUnknownAgent     = "unknown_agent"
	classUnexpectedType   = "unexpected_type"
	classBadCommand       = "bad_command"
)

var rejectClasses = []string{classHeaders, classUnknownType, classSchema, classKey, classUnknownWorkspace,
	classUnknownAgent, classUnexpectedType, classBadCommand}

// Webhook results.
const (
	whAccepted     = "accepted"
	whUnauthorized = "unauthorized"
	whBadRequest   = "bad_request"
	whIgnored      = "ignored"
	whError        = "error"
)

var webhookResults = []string{whAccepted, whUnauthorized, whBadRequest, whIgnored, whError}

type metrics struct {
	admitted        prometheus.Counter
	rejected        *prometheus.CounterVec
	queued          prometheus.Gauge
	live            prometheus.Gauge
	ended           *prometheus.CounterVec
	sipResponses    *prometheus.CounterVec
	requestToDial   prometheus.Histogram
	dialToAnswer    prometheus.Histogram
	talk            prometheus.Histogram
	lkCalls         *prometheus.CounterVec
	lkLatency       *prometheus.HistogramVec
	duplicates      prometheus.Counter
	ignored         *prometheus.CounterVec
	dlq             *prometheus.CounterVec
	webhooks        *prometheus.CounterVec
	inDoubt         *prometheus.CounterVec
	overflows       prometheus.Counter
	flushRetries    prometheus.Counter
	fenceFailures   prometheus.Counter
	stateLoad       prometheus.Histogram
	partitionsOwned prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "dialstream", "dialer"
	durations := []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	talk := []float64{1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600}
	m := &metrics{
		admitted: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "calls_admitted_total",
			Help: "Calls admitted to dial (queued -> dialing transitions applied)."}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "calls_rejected_total",
			Help: "Records on the requested topic that could not become a call, by reject class."}, []string{"class"}),
		queued: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "admission_queued_calls",
			Help: "Calls waiting for admission in this process (workspace concurrency or rate limit)."}),
		live: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "live_calls",
			Help: "Calls between dialing and ended in the partitions this process owns."}),
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "calls_ended_total",
			Help: "Calls ended, by outcome."}, []string{"outcome"}),
		sipResponses: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "sip_responses_total",
			Help: "Final results of CreateSIPParticipant by SIP status class (none: failed before any SIP response)."}, []string{"class"}),
		requestToDial: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "request_to_dialing_seconds",
			Help: "Time from the call request entering Kafka to its durable dialing claim.", Buckets: durations}),
		dialToAnswer: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "dial_to_answer_seconds",
			Help: "Time from the dialing claim to the callee answering.", Buckets: durations}),
		talk: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "talk_duration_seconds",
			Help: "Talk time of answered calls.", Buckets: talk}),
		lkCalls: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "livekit_requests_total",
			Help: "LiveKit API calls by method and result (ok, sip_error: a SIP status came back, error)."}, []string{"method", "result"}),
		lkLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "livekit_request_duration_seconds",
			Help: "LiveKit API call latency by method (CreateSIPParticipant includes ringing).", Buckets: durations}, []string{"method"}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "duplicate_requests_total",
			Help: "call.requested records for a call id already known, ignored (never dialed again)."}),
		ignored: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "commands_ignored_total",
			Help: "Commands that changed nothing, by reason."}, []string{"reason"}),
		dlq: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "dlq_records_total",
			Help: "Records written to the requests DLQ, by reject class."}, []string{"class"}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "livekit_webhooks_total",
			Help: "LiveKit webhooks received, by result."}, []string{"result"}),
		inDoubt: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "in_doubt_dials_total",
			Help: "Dials found with no dialer waiting on them, by how the recovery check resolved them."}, []string{"resolution"}),
		overflows: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "admission_overflows_total",
			Help: "Times a partition's admission queue reached DIALER_MAX_QUEUED_PER_PARTITION and later requests were deferred."}),
		flushRetries: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "flush_retries_total",
			Help: "Retries of writing a batch's events and state to Kafka."}),
		fenceFailures: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "fence_failures_total",
			Help: "Dials not placed because the group no longer confirmed this process as the partition's owner."}),
		stateLoad: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "state_load_seconds",
			Help: "Time to load a partition's call states on assignment.", Buckets: durations}),
		partitionsOwned: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "partitions_owned",
			Help: "Partitions of the requested topic this process owns."}),
	}
	for _, c := range []prometheus.Collector{m.admitted, m.rejected, m.queued, m.live, m.ended, m.sipResponses,
		m.requestToDial, m.dialToAnswer, m.talk, m.lkCalls, m.lkLatency, m.duplicates, m.ignored, m.dlq,
		m.webhooks, m.inDoubt, m.overflows, m.flushRetries, m.fenceFailures, m.stateLoad, m.partitionsOwned} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, c := range rejectClasses {
		m.rejected.WithLabelValues(c)
		m.dlq.WithLabelValues(c)
	}
	for _, o := range schemas.Outcomes {
		m.ended.WithLabelValues(string(o))
	}
	for _, c := range sipClasses {
		m.sipResponses.WithLabelValues(c)
	}
	for _, meth := range liveKitMethods {
		m.lkLatency.WithLabelValues(meth)
		for _, r := range []string{"ok", "sip_error", "error"} {
			m.lkCalls.WithLabelValues(meth, r)
		}
	}
	for _, r := range ignoreReasons {
		m.ignored.WithLabelValues(string(r))
	}
	for _, r := range webhookResults {
		m.webhooks.WithLabelValues(r)
	}
	for _, r := range []string{"adopted", "failed"} {
		m.inDoubt.WithLabelValues(r)
	}
	return m, nil
}

func (m *metrics) liveKitCall(method string, d time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
		if lksdk.SIPStatusFrom(err) != nil {
			result = "sip_error"
		}
	}
	m.lkCalls.WithLabelValues(method, result).Inc()
	m.lkLatency.WithLabelValues(method).Observe(d.Seconds())
}

// transitionApplied records what a durable transition says about the call.
func (m *metrics) transitionApplied(prev, next *callState, events []schemas.CallEvent) {
	for _, ev := range events {
		switch ev.Status {
		case schemas.StatusDialing:
			m.admitted.Inc()
			if !next.QueuedAt.IsZero() {
				m.requestToDial.Observe(max(0, ev.OccurredAt.Sub(next.QueuedAt).Seconds()))
			}
		case schemas.StatusAnswered:
			if !next.DialingAt.IsZero() {
				m.dialToAnswer.Observe(max(0, ev.OccurredAt.Sub(next.DialingAt).Seconds()))
			}
		case schemas.StatusEnded:
			m.ended.WithLabelValues(string(ev.Outcome)).Inc()
			if ev.TalkDurationSeconds != nil {
				m.talk.Observe(*ev.TalkDurationSeconds)
			}
		}
	}
}
