package scheduler

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/schemas"
)

// lagInterval is how often the groups' lag is measured.
const lagInterval = 15 * time.Second

// releaseKind labels a release: a campaign contact's attempt or a scheduled
// single call.
type releaseKind string

const (
	kindCampaign  releaseKind = "campaign"
	kindScheduled releaseKind = "scheduled"
)

// commandResult labels a command: applied, or the ignoreReason that made it
// change nothing ("replay" for one at or below the campaign's applied
// offset, "other" for a type that is not the scheduler's).
type commandResult string

const (
	resultApplied commandResult = "applied"
	resultReplay  commandResult = "replay"
	resultInvalid commandResult = "dead_lettered"
	resultOther   commandResult = "not_a_command"
)

var commandKinds = []string{"created", "contacts", "control", "outcome", "scheduled", "cancel", "other"}

type metrics struct {
	contacts        *prometheus.GaugeVec   // by contact state, over the owned campaigns
	campaigns       *prometheus.GaugeVec   // by campaign status
	pacing          prometheus.Gauge       // the sum of calls_per_second of the running campaigns
	scheduledCalls  prometheus.Gauge       // scheduled single calls waiting
	releases        *prometheus.CounterVec // by kind
	retries         *prometheus.CounterVec // by outcome
	windowWaits     prometheus.Counter
	commands        *prometheus.CounterVec // by kind and result
	outcomesRelayed prometheus.Counter
	partitions      prometheus.Gauge
	stateLoad       prometheus.Histogram
	consumerLag     *prometheus.GaugeVec // by group and topic
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	m := &metrics{
		contacts: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "dialstream_scheduler_contacts",
			Help: "Contacts of the campaigns this scheduler owns, by state."}, []string{"state"}),
		campaigns: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "dialstream_scheduler_campaigns",
			Help: "Campaigns this scheduler owns, by status."}, []string{"status"}),
		pacing: prometheus.NewGauge(prometheus.GaugeOpts{Name: "dialstream_scheduler_pacing_calls_per_second",
			Help: "Sum of calls_per_second of the running campaigns this scheduler owns: the ceiling of its campaign release rate."}),
		scheduledCalls: prometheus.NewGauge(prometheus.GaugeOpts{Name: "dialstream_scheduler_scheduled_calls",
			Help: "Scheduled single calls waiting for their time."}),
		releases: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dialstream_scheduler_releases_total",
			Help: "Call requests written, by kind (a campaign contact's attempt, a scheduled single call)."}, []string{"kind"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dialstream_scheduler_retries_total",
			Help: "Campaign call outcomes that scheduled another attempt, by outcome."}, []string{"outcome"}),
		windowWaits: prometheus.NewCounter(prometheus.CounterOpts{Name: "dialstream_scheduler_window_waits_total",
			Help: "Times a due contact was held because its local time was outside its windows or the workspace's calling hours."}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dialstream_scheduler_commands_total",
			Help: "Commands read, by kind and result."}, []string{"kind", "result"}),
		outcomesRelayed: prometheus.NewCounter(prometheus.CounterOpts{Name: "dialstream_scheduler_outcomes_relayed_total",
			Help: "Ended campaign calls relayed from the events topic to the commands topic."}),
		partitions: prometheus.NewGauge(prometheus.GaugeOpts{Name: "dialstream_scheduler_partitions_owned",
			Help: "Partitions of the commands topic this scheduler owns."}),
		stateLoad: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "dialstream_scheduler_state_load_seconds",
			Help: "Time to load a partition's campaigns on assignment.", Buckets: prometheus.ExponentialBuckets(0.01, 3, 10)}),
		consumerLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "dialstream_scheduler_consumer_lag_records",
			Help: "Records between each group's committed offset and the end of its topic."}, []string{"group", "topic"}),
	}
	for _, c := range []prometheus.Collector{m.contacts, m.campaigns, m.pacing, m.scheduledCalls, m.releases, m.retries,
		m.windowWaits, m.commands, m.outcomesRelayed, m.partitions, m.stateLoad, m.consumerLag} {
		f(c)
	}
	for _, s := range schemas.ContactStatuses {
		m.contacts.WithLabelValues(string(s))
	}
	for _, s := range schemas.CampaignStatuses {
		m.campaigns.WithLabelValues(string(s))
	}
	for _, k := range []releaseKind{kindCampaign, kindScheduled} {
		m.releases.WithLabelValues(string(k))
	}
	for _, o := range []schemas.Outcome{schemas.OutcomeBusy, schemas.OutcomeNoAnswer, schemas.OutcomeVoicemail, schemas.OutcomeFailed} {
		m.retries.WithLabelValues(string(o))
	}
	for _, k := range commandKinds {
		for _, r := range []commandResult{resultApplied, resultReplay, resultInvalid, commandResult(ignoreDuplicate),
			commandResult(ignoreUnknown), commandResult(ignoreWorkspace), commandResult(ignoreFinished),
			commandResult(ignoreNotApplicable), commandResult(ignoreInvalid)} {
			m.commands.WithLabelValues(k, string(r))
		}
	}
	m.commands.WithLabelValues("other", string(resultOther))
	return m
}

// followLag measures both groups' lag until ctx ends; every replica
// measures the whole group (dashboards take the max), as the dialer does.
func (m *metrics) followLag(ctx context.Context, adm *kadm.Client, groups map[string]string, log *slog.Logger) {
	t := time.NewTicker(lagInterval)
	defer t.Stop()
	for {
		for group, topic := range groups {
			mctx, cancel := context.WithTimeout(ctx, lagInterval)
			lag, err := kafkax.GroupLag(mctx, adm, group, []string{topic})
			cancel()
			if err != nil && ctx.Err() == nil {
				log.Debug("scheduler: measure consumer lag", "group", group, "err", err)
			}
			for tp, n := range lag {
				m.consumerLag.WithLabelValues(group, tp).Set(float64(n))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
