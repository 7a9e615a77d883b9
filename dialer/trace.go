package dialer

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/obs"
	"github.com/dialstream/dialstream/schemas"
)

// How a call's trace crosses the dialer's asynchronous steps:
//
//   - The consumer's kotel hook continues each command's traceparent header
//     in a receive span, left in the record's Context.
//   - Applying a command is a span (startProcess). For a call the partition
//     already knows, it is in the call's trace (the state's traceparent),
//     whatever trace the command came in: a LiveKit webhook or a client's
//     cancel arrives in a trace of its own, which becomes a link.
//   - The first command of a call (its request) stores its span's context in
//     the call's state, which is written to the compacted state topic, so
//     the trace survives restarts and partition moves.
//   - Every record the transition writes (lifecycle events, the state) is
//     produced with the span in its Context, so the producer's kotel hook
//     writes a traceparent in the call's trace.
//   - Work that runs later (the dial, a hang-up, a watchdog or admission
//     decision, a recovery check) starts from the stored traceparent, and
//     the command it writes carries it back to the partition.

// tracerName names the dialer's spans.
const tracerName = "github.com/dialstream/dialstream/dialer"

// maxTraceState is the longest tracestate the state schema takes; a longer
// one is dropped rather than make the call's state unwritable.
const maxTraceState = 512

// startProcess starts the span of applying rec (decoded as in, nil when it
// could not be). The returned context carries only the span, no deadline:
// it becomes the Context of the records the command writes.
func (o *partitionOwner) startProcess(rec *kgo.Record, in *input) (context.Context, trace.Span) {
	parent := rec.Context
	if parent == nil {
		parent = context.Background()
	}
	attrs := []attribute.KeyValue{
		attribute.String("messaging.system", "kafka"),
		attribute.String("messaging.operation", "process"),
		attribute.String("messaging.source.name", rec.Topic),
		attribute.Int("messaging.kafka.source.partition", int(rec.Partition)),
		attribute.Int64("messaging.kafka.message.offset", rec.Offset),
		attribute.String("cloudevents.event_type", kafkax.Header(rec, schemas.HeaderType)),
	}
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer)}
	if in != nil {
		ws := in.workspaceID()
		st := o.calls[in.callID]
		if st != nil {
			ws = st.WorkspaceID
			if call := trace.SpanContextFromContext(callContext(st)); call.IsValid() {
				if sc := trace.SpanContextFromContext(parent); sc.TraceID() != call.TraceID() {
					if sc.IsValid() {
						opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
					}
					parent = trace.ContextWithRemoteSpanContext(context.Background(), call)
				}
			}
		}
		attrs = append(attrs, attribute.String("dialstream.call_id", in.callID), attribute.String("dialstream.workspace_id", ws))
	}
	opts = append(opts, trace.WithAttributes(attrs...))
	ctx, span := o.d.tracer.Start(obs.SpanContextOnly(parent), rec.Topic+" process", opts...)
	return ctx, span
}

// callContext is a context (no deadline) in the call's stored trace, for
// records written about the call outside the processing of a command.
func callContext(st *callState) context.Context {
	return obs.ContextWithTraceParent(context.Background(), st.TraceParent, st.TraceState)
}

// rememberTrace stores ctx's trace context in a state that has none yet: a
// new call (and a call loaded from a state written before calls remembered
// their trace).
func rememberTrace(st *callState, ctx context.Context) {
	if st.TraceParent != "" {
		return
	}
	st.TraceParent, st.TraceState = obs.TraceParent(ctx)
	if len(st.TraceState) > maxTraceState {
		st.TraceState = ""
	}
}

// workspaceID is the workspace the command names (for logs and spans; the
// call's state says which one it really belongs to).
func (in *input) workspaceID() string {
	switch in.kind {
	case inRequested:
		return in.req.WorkspaceID
	case inRejected:
		return in.rej.workspaceID
	case inCancel:
		return in.cancel.WorkspaceID
	case inDialResult:
		return in.dial.WorkspaceID
	case inLiveKit:
		return in.lk.WorkspaceID
	case inDecision:
		return in.dec.WorkspaceID
	}
	return ""
}
