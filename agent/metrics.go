package agent

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dialstream/dialstream/schemas"
)

// jobDecision is how the worker answered LiveKit's offer of a job.
type jobDecision string

const (
	jobAccepted        jobDecision = "accepted"
	jobFull            jobDecision = "full"
	jobInvalidDispatch jobDecision = "invalid_dispatch"
)

// reportResult is what became of one report.
type reportResult string

const (
	reportDelivered reportResult = "delivered"
	reportFailed    reportResult = "failed"
	// reportNoChannel: the dispatch named no report channel.
	reportNoChannel reportResult = "no_channel"
)

type metrics struct {
	jobRequests   *prometheus.CounterVec
	callsActive   prometheus.Gauge
	answeredBy    *prometheus.CounterVec
	reports       *prometheus.CounterVec
	answerToVoice prometheus.Histogram
	registered    prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		jobRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dialstream_agent_job_requests_total",
			Help: "Jobs LiveKit offered the worker, by decision: accepted, full (at AGENT_MAX_JOBS), invalid_dispatch (metadata not agent.dispatch.v1).",
		}, []string{"decision"}),
		callsActive: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dialstream_agent_calls_active",
			Help: "Calls the agent is in now, accepted ones waiting for their assignment included.",
		}),
		answeredBy: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dialstream_agent_answered_by_total",
			Help: "Answered calls by who the agent decided answered.",
		}, []string{"answered_by"}),
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dialstream_agent_reports_total",
			Help: "Reports the agent sent, by type and result (delivered, failed, no_channel).",
		}, []string{"type", "result"}),
		answerToVoice: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "dialstream_agent_answer_to_voice_seconds",
			Help:    "From the agent seeing the callee answer to its first audio frame written.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
		registered: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dialstream_agent_workers_registered",
			Help: "Agent names whose worker connection is registered with LiveKit now.",
		}),
	}
	for _, c := range []prometheus.Collector{m.jobRequests, m.callsActive, m.answeredBy, m.reports, m.answerToVoice, m.registered} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, d := range []jobDecision{jobAccepted, jobFull, jobInvalidDispatch} {
		m.jobRequests.WithLabelValues(string(d))
	}
	for _, a := range schemas.AnsweredByValues {
		m.answeredBy.WithLabelValues(string(a))
	}
	for _, t := range schemas.ReportTypes {
		for _, r := range []reportResult{reportDelivered, reportFailed, reportNoChannel} {
			m.reports.WithLabelValues(string(t), string(r))
		}
	}
	return m, nil
}
