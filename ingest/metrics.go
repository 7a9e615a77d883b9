package ingest

import (
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
)

const (
	routeCall      = "/v1/api/call"
	routeHealthz   = "/healthz"
	routeReadyz    = "/readyz"
	routeMetrics   = "/metrics"
	routeUnmatched = "unmatched" // any path not served, so the label stays bounded
)

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
}

// newMetrics registers ingest's metrics on reg and initializes every label
// combination it can produce, so rates start from zero rather than absent.
func newMetrics(reg prometheus.Registerer, idemKeys func() float64) (*metrics, error) {
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
		}, idemKeys),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.accepted, m.replayed, m.rejected, m.produceDuration, m.idemKeys} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	codes := map[string][]int{
		routeCall:      {202, 400, 401, 403, 404, 405, 409, 413, 415, 422, 429, 500, 503},
		routeHealthz:   {200},
		routeReadyz:    {200, 503},
		routeMetrics:   {200},
		routeUnmatched: {404, 405},
	}
	for route, cs := range codes {
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
	switch route {
	case routeCall, routeHealthz, routeReadyz, routeMetrics:
	default:
		route = routeUnmatched
	}
	m.requests.WithLabelValues(route, strconv.Itoa(c.Writer.Status())).Inc()
	m.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
}
