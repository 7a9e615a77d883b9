package ingest

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dialstream/dialstream/internal/ops"
)

// The ops endpoints (/healthz, /readyz, /metrics) are internal/ops's, in its
// one format, but served on the API's own listener rather than on a second
// port as the dialer and notifier do. Ingest is the one service whose port is
// already exposed and probed: the Compose healthcheck, the Kubernetes probes,
// the NetworkPolicy and the Prometheus scrape all name INGEST_HTTP_ADDR, and
// a second listener would change every one of them for no gain. Mounted as
// Gin routes, they are also counted in dialstream_ingest_requests_total like
// any other route. The Ingress keeps them inside the cluster.
func (h *handler) mountOps(e *gin.Engine) {
	srv := &ops.Server{Metrics: h.cfg.Metrics, Ready: []ops.Check{h.ready.check, h.recordsReachable, h.suppressionsLoaded}}
	oh := gin.WrapH(srv.Handler())
	for _, route := range []string{routeHealthz, routeReadyz, routeMetrics} {
		e.GET(route, oh)
	}
}

var (
	errKafkaUnreachable   = errors.New("kafka: not reachable")
	errRecordsUnreachable = errors.New("call records database: not reachable")
	errSuppressLoading    = errors.New("do-not-call list: still loading from Kafka")
)

// suppressionsLoaded keeps /readyz at 503 until the do-not-call list has
// loaded: until then every call is answered 503 (fail closed), so a load
// balancer should not route to this replica yet.
func (h *handler) suppressionsLoaded(context.Context) error {
	if !h.cfg.Suppressions.Ready() {
		return errSuppressLoading
	}
	return nil
}

// recordsReachable keeps /readyz at 503 while the call records database
// does not answer: every call-state route would answer 503.
func (h *handler) recordsReachable(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := h.st.Ping(ctx); err != nil {
		h.log.WarnContext(ctx, "readiness: call records database not reachable", "error", err.Error())
		return errRecordsUnreachable
	}
	return nil
}

// readiness caches the Kafka check for a second, so a probe storm does not
// become a metadata-request storm.
type readiness struct {
	p       Pinger
	mu      sync.Mutex
	checked time.Time
	err     error
}

func (r *readiness) check(ctx context.Context) error {
	if r.p == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.checked.IsZero() || time.Since(r.checked) >= time.Second {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		r.err = r.p.Ping(ctx)
		r.checked = time.Now()
	}
	if r.err != nil {
		return errKafkaUnreachable
	}
	return nil
}
