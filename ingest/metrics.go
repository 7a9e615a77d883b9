package ingest

import (
	"github.com/dialstream/dialstream/schemas"

	"context"
	"errors"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
)

// Routes, as Gin patterns: they label the request metrics (the pattern, never
// the path, which carries a call id).
const (
	apiPrefix               = "/v1/api" // the authenticated group
	routeCall               = apiPrefix + "/call"
	routeCallState          = apiPrefix + "/call/:callId"
	routeCallCancel         = apiPrefix + "/call/:callId/cancel"
	routeCallDeliveries     = apiPrefix + "/call/:callId/deliveries"
	routeCallRedeliver      = apiPrefix + "/call/:callId/redeliver"
	routeCalls              = apiPrefix + "/calls"
	routeCallsExport        = apiPrefix + "/calls/export"
	routeSuppression        = apiPrefix + "/suppressions/:number"
	routeSuppressions       = apiPrefix + "/suppressions"
	routeSuppressionsImport = apiPrefix + "/suppressions/import"
	routeSuppressionsExport = apiPrefix + "/suppressions/export"
	routeCampaigns          = apiPrefix + "/campaigns"
	routeCampaign           = apiPrefix + "/campaigns/:campaignId"
	routeCampaignContacts   = apiPrefix + "/campaigns/:campaignId/contacts"
	routeCampaignExport     = apiPrefix + "/campaigns/:campaignId/export"
	routeCampaignStart      = apiPrefix + "/campaigns/:campaignId/start"
	routeCampaignPause      = apiPrefix + "/campaigns/:campaignId/pause"
	routeCampaignResume     = apiPrefix + "/campaigns/:campaignId/resume"
	routeCampaignCancel     = apiPrefix + "/campaigns/:campaignId/cancel"
	routeEventsStream       = apiPrefix + "/events/stream"
	routeOpenAPI            = "/openapi.json"
	routeHealthz            = "/healthz"
	routeReadyz             = "/readyz"
	routeMetrics            = "/metrics"
	routeUnmatched          = "unmatched" // any path not served, so the label stays bounded
)

// routeCodes are the status codes each route can answer, initialized at
// zero.
var routeCodes = map[string][]int{
	routeCall:               {202, 400, 401, 403, 404, 405, 409, 413, 415, 422, 429, 500, 503},
	routeCallState:          {200, 400, 401, 403, 404, 500, 503},
	routeCallCancel:         {202, 400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 503},
	routeCallDeliveries:     {200, 400, 401, 403, 404, 500, 503},
	routeCallRedeliver:      {202, 400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 503},
	routeCalls:              {200, 400, 401, 403, 500, 503},
	routeCallsExport:        {200, 400, 401, 403, 500, 503},
	routeSuppression:        {200, 204, 400, 401, 403, 404, 413, 415, 422, 500, 503},
	routeSuppressions:       {200, 400, 401, 403, 500, 503},
	routeSuppressionsImport: {200, 400, 401, 403, 413, 415, 422, 500, 503},
	routeSuppressionsExport: {200, 401, 403, 500, 503},
	routeCampaigns:          {200, 201, 400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 503},
	routeCampaign:           {200, 400, 401, 403, 404, 500, 503},
	routeCampaignExport:     {200, 401, 403, 404, 500, 503},
	routeCampaignContacts:   {200, 400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 503},
	routeCampaignStart:      {202, 400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 503},
	routeCampaignPause:      {202, 400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 503},
	routeCampaignResume:     {202, 400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 503},
	routeCampaignCancel:     {202, 400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 503},
	routeEventsStream:       {200, 400, 401, 403, 429, 500, 503},
	routeAgentReports:       {202, 400, 401, 404, 409, 413, 415, 422, 500, 503},
	routeOpenAPI:            {200},
	routeHealthz:            {200},
	routeReadyz:             {200, 503},
	routeMetrics:            {200},
	routeUnmatched:          {404, 405},
}

// produceResult labels dialstream_ingest_kafka_produce_duration_seconds.
type produceResult string

const (
	produceOK      produceResult = "ok"
	produceError   produceResult = "error"
	produceTimeout produceResult = "timeout"
)

type metrics struct {
	requests        *prometheus.CounterVec
	duration        *prometheus.HistogramVec
	accepted        prometheus.Counter
	replayed        prometheus.Counter
	rejected        *prometheus.CounterVec
	produceDuration *prometheus.HistogramVec
	idemKeys        prometheus.GaugeFunc
	agentReports    *prometheus.CounterVec
	streams         prometheus.GaugeFunc
	streamsDropped  prometheus.Counter
	ownSettled      *prometheus.CounterVec
}

// gauges are read when metrics are gathered.
type gauges struct {
	idemKeys func() float64
	streams  func() float64
}

// newMetrics registers ingest's metrics on reg and initializes every label
// combination it can produce, so rates start from zero rather than absent.
func newMetrics(reg prometheus.Registerer, g gauges) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dialstream_ingest_requests_total",
			Help: "HTTP requests answered, by route and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dialstream_ingest_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"}),
		accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dialstream_ingest_calls_accepted_total",
			Help: "Calls written to Kafka and answered 202 (replays not counted).",
		}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dialstream_ingest_idempotent_replays_total",
			Help: "Requests answered from the Idempotency-Key store without writing anything.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dialstream_ingest_calls_rejected_total",
			Help: "Requests refused, by reason.",
		}, []string{"reason"}),
		produceDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dialstream_ingest_kafka_produce_duration_seconds",
			Help:    "Time from handing a call's record to the Kafka client to its acknowledgement (acks=all), by result.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"result"}),
		idemKeys: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "dialstream_ingest_idempotency_keys",
			Help: "Idempotency keys remembered by this replica.",
		}, g.idemKeys),
	}
	m.agentReports = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dialstream_ingest_agent_reports_total",
		Help: "Agent reports accepted and written for the dialer, by report type.",
	}, []string{"type"})
	for _, t := range schemas.ReportTypes {
		m.agentReports.WithLabelValues(string(t))
	}
	m.streams = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "dialstream_ingest_event_streams",
		Help: "GET /v1/api/events/stream connections open on this replica.",
	}, g.streams)
	m.streamsDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "dialstream_ingest_event_streams_dropped_total",
		Help: "Event streams ended by the server because their client fell too far behind.",
	})
	m.ownSettled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dialstream_ingest_own_requests_settled_total",
		Help: "Requests this replica acknowledged that its reads waited for, by what put them in the call records: recorder (its stored offsets passed them), ingest (the fallback write: a read waited 100ms, or 2s passed), failed (the fallback write failed; the recorder still adds them).",
	}, []string{"by"})
	for _, by := range []string{"recorder", "ingest", "failed"} {
		m.ownSettled.WithLabelValues(by)
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.accepted, m.replayed, m.rejected, m.produceDuration, m.idemKeys, m.agentReports, m.streams, m.streamsDropped, m.ownSettled} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for route, cs := range routeCodes {
		m.duration.WithLabelValues(route)
		for _, code := range cs {
			m.requests.WithLabelValues(route, strconv.Itoa(code))
		}
	}
	for _, r := range reasons {
		m.rejected.WithLabelValues(string(r))
	}
	for _, r := range []produceResult{produceOK, produceError, produceTimeout} {
		m.produceDuration.WithLabelValues(string(r))
	}
	return m, nil
}

// instrument counts and times every request under its route pattern (never
// the raw path, which a client controls).
func (m *metrics) instrument(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if _, ok := routeCodes[route]; !ok || route == routeUnmatched {
		route = routeUnmatched
	}
	m.requests.WithLabelValues(route, strconv.Itoa(c.Writer.Status())).Inc()
	m.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
}

// observeProduce records how long a produce took, labelled by how it ended.
func (m *metrics) observeProduce(start time.Time, err error, timedOut bool) {
	result := produceOK
	switch {
	case err == nil:
	case timedOut || errors.Is(err, context.DeadlineExceeded):
		result = produceTimeout
	default:
		result = produceError
	}
	m.produceDuration.WithLabelValues(string(result)).Observe(time.Since(start).Seconds())
}
