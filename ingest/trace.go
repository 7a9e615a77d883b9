package ingest

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/obs"
	"github.com/dialstream/dialstream/schemas"
)

// tracerName names ingest's spans.
const tracerName = "github.com/dialstream/dialstream/ingest"

// traceRequest runs an API request in a server span that continues the
// request's W3C traceparent (a new trace when it has none). The span is in
// the request's context, so the records the request writes carry it: the
// producer's kotel hook makes each record's publish span a child of it and
// writes that span's context to the record's traceparent header. Probes and
// scrapes are not traced: they would be most of the spans and tell nothing.
func (h *handler) traceRequest(c *gin.Context) {
	route := c.FullPath()
	switch route {
	case routeHealthz, routeReadyz, routeMetrics:
		c.Next()
		return
	}
	r := c.Request
	name := r.Method
	if route != "" {
		name += " " + route
	}
	ctx := obs.Propagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span := h.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
		attribute.String("http.request.method", r.Method),
		attribute.String("http.route", route),
		attribute.String("url.path", r.URL.Path),
	))
	defer span.End()
	c.Request = r.WithContext(ctx)
	c.Next()
	code := c.Writer.Status()
	span.SetAttributes(attribute.Int("http.response.status_code", code))
	if code >= http.StatusInternalServerError {
		span.SetStatus(codes.Error, http.StatusText(code))
	}
}

// redeliveryTrace is the context a redelivery record is written in: a span
// in the trace of the event it resends (its traceparent header), linked to
// the request that asked for it, so the webhook sent again carries the
// call's trace id like the first one did. Nil (the request's context) for
// an event written without trace context.
func (h *handler) redeliveryTrace(ctx context.Context, r *kgo.Record) context.Context {
	evCtx := obs.Propagator().Extract(context.Background(), kotel.NewRecordCarrier(r))
	if !trace.SpanContextFromContext(evCtx).IsValid() {
		return nil
	}
	_, span := h.tracer.Start(evCtx, "redeliver "+kafkax.Header(r, schemas.HeaderType),
		trace.WithLinks(trace.LinkFromContext(ctx)), trace.WithAttributes(
			attribute.String("dialstream.call_id", string(r.Key)),
			attribute.String("cloudevents.event_id", kafkax.Header(r, schemas.HeaderID))))
	span.End()
	return trace.ContextWithSpan(context.Background(), span)
}
