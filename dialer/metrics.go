package dialer

import (
	"context"
	"log/slog"
	"sync"
	"time"

	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/dialstream/dialstream/internal/compliance"
	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/registry"
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
	accepted        prometheus.Counter
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
	trunkWaits      *prometheus.CounterVec
	lateSending     prometheus.Counter
	refusals        *prometheus.CounterVec
	notReady        prometheus.Counter
	overflows       prometheus.Counter
	flushRetries    prometheus.Counter
	fenceFailures   prometheus.Counter
	stateLoad       prometheus.Histogram
	partitionsOwned prometheus.Gauge
	reports         *prometheus.CounterVec
	transfers       *prometheus.CounterVec
	optOuts         prometheus.Counter
	consumerLag     *prometheus.GaugeVec
	ages            *callAges
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "dialstream", "dialer"
	durations := []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	talk := []float64{1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600}
	m := &metrics{
		accepted: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "calls_accepted_total",
			Help: "Call requests accepted as new calls (queued), from ingest or from direct Kafka producers."}),
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
			Help: "Dials found with no dialer waiting on them, by how the recovery check resolved them (redialed: the claim never sent its SIP request)."}, []string{"resolution"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "compliance_refusals_total",
			Help: "Calls refused right before their dial by a compliance rule (never rung), by outcome."}, []string{"outcome"}),
		notReady: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "compliance_not_ready_total",
			Help: "Dial decisions put off because the suppression list or attempt history had not caught up, or an attempt to the same number was in flight (the call waits)."}),
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
		consumerLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "consumer_lag_records",
			Help: "Records of the topic not yet committed by the consumer group (high watermark - committed offset, summed over partitions). " +
				"Every member reports the whole group: aggregate with max by (group, topic), not sum."}, []string{"group", "topic"}),
		ages: newCallAges(ns + "_" + sub),
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "agent_reports_total",
			Help: "Agent reports applied to their call (each one event), by report type."}, []string{"type"}),
		transfers: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "transfers_total",
			Help: "Transfers asked for by agents, by how LiveKit answered (transferred, transfer_failed)."}, []string{"result"}),
		lateSending: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "late_sending_records_total",
			Help: "Dials not sent because Kafka acknowledged their sending record too late (dialed again under a new claim)."}),
		trunkWaits: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "trunk_rate_waits_total",
			Help: "Dials held back by DIALER_TRUNK_CALLS_PER_SECOND: waited for their turn, or no_turn within the claim's window (dialed again under a new claim)."}, []string{"result"}),
		optOuts: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "agent_opt_outs_total",
			Help: "Numbers put on the do-not-call list because the agent reported the callee opted out."}),
	}
	for _, c := range []prometheus.Collector{m.accepted, m.admitted, m.rejected, m.queued, m.live, m.ended, m.sipResponses,
		m.requestToDial, m.dialToAnswer, m.talk, m.lkCalls, m.lkLatency, m.duplicates, m.ignored, m.dlq,
		m.webhooks, m.inDoubt, m.trunkWaits, m.lateSending, m.refusals, m.notReady, m.overflows, m.flushRetries, m.fenceFailures, m.stateLoad, m.partitionsOwned,
		m.consumerLag, m.ages, m.reports, m.transfers, m.optOuts} {
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
	for _, o := range compliance.Outcomes {
		m.refusals.WithLabelValues(string(o))
	}
	for _, t := range schemas.ReportTypes {
		m.reports.WithLabelValues(string(t))
	}
	for _, r := range []decisionKind{decideTransferred, decideTransferFailed} {
		m.transfers.WithLabelValues(string(r))
	}
	for _, r := range []string{"adopted", "failed", "redialed"} {
		m.inDoubt.WithLabelValues(r)
	}
	for _, r := range []string{"waited", "no_turn"} {
		m.trunkWaits.WithLabelValues(r)
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
		case schemas.StatusQueued:
			m.accepted.Inc()
		case schemas.StatusDialing:
			m.admitted.Inc()
			if !next.QueuedAt.IsZero() {
				m.requestToDial.Observe(max(0, ev.OccurredAt.Sub(next.QueuedAt).Seconds()))
			}
		case schemas.StatusAnswered:
			if !next.DialingAt.IsZero() {
				m.dialToAnswer.Observe(max(0, ev.OccurredAt.Sub(next.DialingAt).Seconds()))
			}
		case schemas.StatusAgentReport:
			m.reports.WithLabelValues(string(ev.Report.Type)).Inc()
		case schemas.StatusEnded:
			m.ended.WithLabelValues(string(ev.Outcome)).Inc()
			if ev.TalkDurationSeconds != nil {
				m.talk.Observe(*ev.TalkDurationSeconds)
			}
		}
	}
}

// registerWorkspaces adds the per-workspace admission gauges, read from the
// admission controller at scrape time. The workspace label is bounded by the
// registry, which operators write (a handful to a few hundred tenants); a
// call of a workspace not in it is rejected before admission, so no other
// value can appear, and every workspace of the registry is reported from the
// start (zeros, not gaps).
func registerWorkspaces(r prometheus.Registerer, reg *registry.Registry, adm *admission) error {
	const prefix = "dialstream_dialer_workspace_"
	return r.Register(&workspaceCollector{reg: reg, adm: adm,
		live: prometheus.NewDesc(prefix+"live_calls",
			"Calls of the workspace between admission and ended in this process.", []string{"workspace"}, nil),
		queued: prometheus.NewDesc(prefix+"queued_calls",
			"Calls of the workspace waiting for admission in this process.", []string{"workspace"}, nil),
		limit: prometheus.NewDesc(prefix+"max_concurrent_calls",
			"The workspace's max_concurrent_calls from the registry. Every dialer reports the whole limit (each enforces "+
				"its share of it): compare sum by (workspace) of live_calls with max by (workspace) of this.", []string{"workspace"}, nil),
	})
}

type workspaceCollector struct {
	reg                 *registry.Registry
	adm                 *admission
	live, queued, limit *prometheus.Desc
}

var _ prometheus.Collector = (*workspaceCollector)(nil)

func (c *workspaceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.live
	ch <- c.queued
	ch <- c.limit
}

func (c *workspaceCollector) Collect(ch chan<- prometheus.Metric) {
	c.adm.mu.Lock()
	defer c.adm.mu.Unlock()
	for _, w := range c.reg.Workspaces() {
		var live, queued int
		if a := c.adm.workspaces[w.ID]; a != nil {
			live, queued = a.live, a.queue.Len()
		}
		ch <- prometheus.MustNewConstMetric(c.live, prometheus.GaugeValue, float64(live), w.ID)
		ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, float64(queued), w.ID)
		ch <- prometheus.MustNewConstMetric(c.limit, prometheus.GaugeValue, float64(w.Limits.MaxConcurrentCalls), w.ID)
	}
}

// agePhases are the open phases whose call ages are reported.
var agePhases = [...]schemas.Status{schemas.StatusQueued, schemas.StatusDialing, schemas.StatusRinging, schemas.StatusAnswered}

// callAges holds, per owned partition, the age of the oldest call in each
// open phase and how many calls are overdue: past the point where the
// watchdog should already have ended them (queued past DIALER_MAX_QUEUE_WAIT,
// dialing or ringing past the ringing timeout + DIALER_WATCHDOG_GRACE,
// answered past max_call_duration + grace). The watchdog acts on an overdue
// call within one interval, so overdue calls that stay are stuck calls: the
// signal behind the "calls stuck non-terminal" alert. Updated by each
// partition's watchdog tick, so values are up to DIALER_WATCHDOG_INTERVAL old.
type callAges struct {
	mu      sync.Mutex
	parts   map[int32]phaseAges
	oldest  *prometheus.Desc
	overdue *prometheus.Desc
}

type phaseAges struct {
	oldest  [len(agePhases)]float64
	overdue [len(agePhases)]int
}

func newCallAges(prefix string) *callAges {
	return &callAges{parts: map[int32]phaseAges{},
		oldest: prometheus.NewDesc(prefix+"_oldest_call_age_seconds",
			"Age of the oldest call in each open phase (since it entered the phase), in the partitions this process owns.", []string{"phase"}, nil),
		overdue: prometheus.NewDesc(prefix+"_overdue_calls",
			"Open calls past the point where the watchdog should have ended them, by phase. Non-zero for minutes means calls are stuck.", []string{"phase"}, nil),
	}
}

func (a *callAges) Describe(ch chan<- *prometheus.Desc) {
	ch <- a.oldest
	ch <- a.overdue
}

func (a *callAges) Collect(ch chan<- prometheus.Metric) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, ph := range agePhases {
		var oldest float64
		var overdue int
		for _, p := range a.parts {
			oldest = max(oldest, p.oldest[i])
			overdue += p.overdue[i]
		}
		ch <- prometheus.MustNewConstMetric(a.oldest, prometheus.GaugeValue, oldest, string(ph))
		ch <- prometheus.MustNewConstMetric(a.overdue, prometheus.GaugeValue, float64(overdue), string(ph))
	}
}

func (a *callAges) set(p int32, v phaseAges) {
	a.mu.Lock()
	a.parts[p] = v
	a.mu.Unlock()
}

// drop forgets a partition this process no longer owns.
func (a *callAges) drop(p int32) {
	a.mu.Lock()
	delete(a.parts, p)
	a.mu.Unlock()
}

// reportAges publishes the ages of the partition's open calls (run
// goroutine only: it reads o.calls).
func (o *partitionOwner) reportAges(now time.Time) {
	cfg := o.d.cfg
	var v phaseAges
	for _, st := range o.calls {
		var since, limit time.Time
		i := -1
		switch st.Phase {
		case schemas.StatusQueued:
			i, since = 0, st.QueuedAt
			limit = st.QueuedAt.Add(cfg.MaxQueueWait)
		case schemas.StatusDialing, schemas.StatusRinging:
			i, since = 1, st.DialingAt
			if st.Phase == schemas.StatusRinging {
				i = 2
				if !st.RingingAt.IsZero() {
					since = st.RingingAt
				}
			}
			if st.Agent != nil {
				limit = st.DialingAt.Add(st.Agent.ringingTimeout() + cfg.WatchdogGrace)
			}
		case schemas.StatusAnswered:
			i, since = 3, st.AnsweredAt
			if st.Agent != nil {
				limit = st.AnsweredAt.Add(st.Agent.maxCallDuration() + cfg.WatchdogGrace)
			}
		}
		if i < 0 || since.IsZero() {
			continue
		}
		v.oldest[i] = max(v.oldest[i], now.Sub(since).Seconds())
		if !limit.IsZero() && now.After(limit) {
			v.overdue[i]++
		}
	}
	o.d.m.ages.set(o.p, v)
}

// lagInterval is how often consumer lag is measured: three small admin
// requests per interval (end offsets, start offsets, the group's commits).
const lagInterval = 5 * time.Second

// followLag measures the group's lag on its topics until ctx ends. Every
// member measures the whole group rather than its own partitions, so the
// lag of partitions that are between owners (or of a group with no member
// left) is still reported; the price is one identical series per replica,
// which dashboards aggregate with max.
func (m *metrics) followLag(ctx context.Context, adm *kadm.Client, group string, topics []string, log *slog.Logger) {
	t := time.NewTicker(lagInterval)
	defer t.Stop()
	for {
		mctx, cancel := context.WithTimeout(ctx, lagInterval)
		lag, err := kafkax.GroupLag(mctx, adm, group, topics)
		cancel()
		if err != nil && ctx.Err() == nil {
			log.Debug("dialer: measure consumer lag", "err", err)
		}
		for topic, n := range lag {
			m.consumerLag.WithLabelValues(group, topic).Set(float64(n))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
