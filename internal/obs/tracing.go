package obs

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/dialstream/dialstream/internal/envconfig"
)

// Tracing follows one call across the services with W3C Trace Context:
//
//	HTTP request (traceparent) -> ingest span -> call.requested record
//	-> dialer (the call's state remembers the trace) -> every lifecycle event
//	and follow-up command of the call -> notifier -> webhook POST (traceparent)
//
// On Kafka the context travels in the plain W3C headers `traceparent` and
// `tracestate`, written and read by franz-go's kotel plugin, not in the
// CloudEvents distributed-tracing extension (`ce_traceparent`): the
// extension carries the context in which an event was created, which is
// not always the context of the hop that carries it, and Kafka tooling
// (kotel, the Java and Python instrumentations, Kafka UIs) reads the plain
// headers. One call keeps one trace id from the client's request to its
// webhooks; the span ids change at every hop.

// Header names of W3C Trace Context, on HTTP requests and Kafka records alike.
const (
	HeaderTraceparent = "traceparent"
	HeaderTracestate  = "tracestate"
)

// Propagator is the propagator of every Dialstream hop: W3C Trace Context
// only. Baggage is not propagated: it would carry whatever a client puts in
// it into every event and webhook of the call.
func Propagator() propagation.TextMapPropagator { return propagation.TraceContext{} }

// TracingConfig is what a process reads to set up tracing, from the
// standard OpenTelemetry variables. The exporter reads the rest of them
// itself (OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT, _CERTIFICATE, ...), and the
// SDK reads OTEL_TRACES_SAMPLER(_ARG), OTEL_BSP_* and the resource variables
// (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES).
type TracingConfig struct {
	// Endpoint is OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else
	// OTEL_EXPORTER_OTLP_ENDPOINT. Empty: spans are created (so trace
	// context is propagated with real ids) but not exported.
	Endpoint string
	// Protocol is OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else
	// OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf" (the default) or "grpc".
	Protocol string
	// Exporter is OTEL_TRACES_EXPORTER: "otlp" (the default) or "none",
	// which turns exporting off even with an endpoint set.
	Exporter string
}

// LoadTracingConfig reads the OTEL_* variables that decide whether and how
// spans are exported; problems are recorded in l.
func LoadTracingConfig(l *envconfig.Loader) TracingConfig {
	c := TracingConfig{
		Endpoint: l.String("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", l.String("OTEL_EXPORTER_OTLP_ENDPOINT", "")),
		Exporter: l.OneOf("OTEL_TRACES_EXPORTER", "otlp", "otlp", "none"),
	}
	proto := l.OneOf("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf", "http/protobuf", "grpc")
	c.Protocol = l.OneOf("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", proto, "http/protobuf", "grpc")
	return c
}

// Exporting reports whether spans leave the process.
func (c TracingConfig) Exporting() bool { return c.Endpoint != "" && c.Exporter != "none" }

// NewTracerProvider returns the tracer provider of one service (resource
// service.name = service unless OTEL_SERVICE_NAME says otherwise). It always
// creates real trace and span ids, so trace context is propagated whether or
// not anything is exported; spans go to the OTLP exporter only when
// c.Exporting(). The caller shuts it down to flush the last spans.
func NewTracerProvider(ctx context.Context, c TracingConfig, service string) (*sdktrace.TracerProvider, error) {
	res, err := serviceResource(service)
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if c.Exporting() {
		var exp sdktrace.SpanExporter
		switch c.Protocol {
		case "grpc":
			exp, err = otlptracegrpc.New(ctx)
		default:
			exp, err = otlptracehttp.New(ctx)
		}
		if err != nil {
			return nil, fmt.Errorf("tracing: otlp exporter (%s): %w", c.Protocol, err)
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	return sdktrace.NewTracerProvider(opts...), nil
}

// serviceResource is resource.Default() with service.name set to service,
// under the OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES of the
// environment, which win.
func serviceResource(service string) (*resource.Resource, error) {
	r, err := resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.name", service)))
	if err != nil {
		return nil, err
	}
	return resource.Merge(r, resource.Environment())
}

// ShutdownTracing flushes and stops tp within timeout; a collector that
// is down must not hold a process's exit.
func ShutdownTracing(tp *sdktrace.TracerProvider, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return tp.Shutdown(ctx)
}

// TraceParent returns the traceparent and tracestate of the span in ctx, or
// empty strings when ctx has no valid span context. It is how trace context
// is stored where no Kafka header survives (the dialer's call state).
func TraceParent(ctx context.Context) (traceparent, tracestate string) {
	c := propagation.MapCarrier{}
	Propagator().Inject(ctx, c)
	return c[HeaderTraceparent], c[HeaderTracestate]
}

// ContextWithTraceParent returns ctx carrying the remote span context that
// traceparent and tracestate name; ctx itself when traceparent does not
// parse.
func ContextWithTraceParent(ctx context.Context, traceparent, tracestate string) context.Context {
	if traceparent == "" {
		return ctx
	}
	c := propagation.MapCarrier{HeaderTraceparent: traceparent}
	if tracestate != "" {
		c[HeaderTracestate] = tracestate
	}
	return Propagator().Extract(ctx, c)
}

// SpanContextOnly returns a context without deadline or cancellation that
// carries only ctx's span context: for a kgo.Record's Context, which franz-go
// also watches for cancellation, when the span must outlive ctx.
func SpanContextOnly(ctx context.Context) context.Context {
	return trace.ContextWithSpanContext(context.Background(), trace.SpanContextFromContext(ctx))
}

// KafkaTracer returns franz-go's kotel tracer on tp with the W3C propagator:
// as a client hook it starts a "publish" span for every produced record and
// writes its context to the record's traceparent/tracestate headers (the
// parent is the record's Context, or the Produce ctx), and for every
// fetched record starts a "receive" span that continues the record's
// headers and leaves it in the record's Context.
func KafkaTracer(tp trace.TracerProvider, clientID, group string) *kotel.Tracer {
	opts := []kotel.TracerOpt{kotel.TracerProvider(tp), kotel.TracerPropagator(Propagator()), kotel.ClientID(clientID)}
	if group != "" {
		opts = append(opts, kotel.ConsumerGroup(group))
	}
	return kotel.NewTracer(opts...)
}

// KafkaProduceTracing is the producing half of t, for a client that also
// reads records it does not process (ingest follows the event topics to
// serve call state): the whole tracer would start a receive span for each.
func KafkaProduceTracing(t *kotel.Tracer) kgo.Hook { return produceTracing{t} }

type produceTracing struct{ t *kotel.Tracer }

func (p produceTracing) OnProduceRecordBuffered(r *kgo.Record) { p.t.OnProduceRecordBuffered(r) }
func (p produceTracing) OnProduceRecordUnbuffered(r *kgo.Record, err error) {
	p.t.OnProduceRecordUnbuffered(r, err)
}

var (
	_ kgo.HookProduceRecordBuffered   = produceTracing{}
	_ kgo.HookProduceRecordUnbuffered = produceTracing{}
)

// traceHandler adds trace_id and span_id to every log line written with a
// context that carries a span (log.InfoContext(ctx, ...)), so a line can be
// joined to its trace, and the lines of one call to each other across the
// services.
type traceHandler struct{ slog.Handler }

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r = r.Clone()
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return traceHandler{h.Handler.WithAttrs(as)}
}

func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{h.Handler.WithGroup(name)}
}
