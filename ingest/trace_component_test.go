package ingest

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/obs"
	"github.com/dialstream/dialstream/schemas"
)

// traceOf parses a W3C traceparent value.
func traceOf(t *testing.T, traceparent string) trace.SpanContext {
	t.Helper()
	ctx := obs.Propagator().Extract(context.Background(), propagation.MapCarrier{obs.HeaderTraceparent: traceparent})
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		t.Fatalf("traceparent %q does not parse", traceparent)
	}
	return sc
}

// A POST with a traceparent writes a call.requested record whose
// traceparent header continues that trace: same trace id, a span of ingest's
// own, the client's sampling decision. A POST without one starts a trace,
// with real ids although nothing is exported. The context travels in the
// plain W3C headers, not in a CloudEvents ce_traceparent attribute.
func TestComponentTraceparentReachesRecord(t *testing.T) {
	e := startBroker(t, 5*time.Second)
	tp, err := obs.NewTracerProvider(context.Background(), obs.TracingConfig{}, "ingest-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = obs.ShutdownTracing(tp, time.Second) })
	e.tp = tp
	srv := e.serve(t)

	const incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	send := func(traceparent string) string {
		t.Helper()
		body := `{"to":"+12025550123","call_agent_id":"` + demoAgent + `"}`
		r, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/api/call", strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+demoKey)
		r.Header.Set("x-workspace-id", "ws_demo")
		r.Header.Set("Content-Type", "application/json")
		if traceparent != "" {
			r.Header.Set("traceparent", traceparent)
			r.Header.Set("tracestate", "vendor=opaque")
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var cr CallResponse
		if err := json.NewDecoder(resp.Body).Decode(&cr); err != nil || resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST: %d %v", resp.StatusCode, err)
		}
		return cr.CallID
	}
	traced, untraced := send(incoming), send("")

	byKey := map[string]string{}
	states := map[string]string{}
	for _, r := range readAll(t, e.broker.Addr()) {
		if kafkax.Header(r, schemas.HeaderType) != schemas.TypeCallRequested {
			t.Fatalf("unexpected record type %q", kafkax.Header(r, schemas.HeaderType))
		}
		if kafkax.Header(r, "ce_traceparent") != "" {
			t.Errorf("record carries ce_traceparent; trace context belongs in the W3C traceparent header")
		}
		byKey[string(r.Key)] = kafkax.Header(r, obs.HeaderTraceparent)
		states[string(r.Key)] = kafkax.Header(r, obs.HeaderTracestate)
	}
	want := traceOf(t, incoming)
	got := traceOf(t, byKey[traced])
	if got.TraceID() != want.TraceID() {
		t.Fatalf("record of the traced request: trace id %s, want the request's %s", got.TraceID(), want.TraceID())
	}
	if got.SpanID() == want.SpanID() || !got.IsSampled() {
		t.Fatalf("record of the traced request: span %s sampled=%v; want a span of ingest's own, sampled like the request", got.SpanID(), got.IsSampled())
	}
	if states[traced] != "vendor=opaque" {
		t.Errorf("tracestate %q, want the request's", states[traced])
	}
	if fresh := traceOf(t, byKey[untraced]); fresh.TraceID() == want.TraceID() {
		t.Fatalf("the untraced request reused trace %s", fresh.TraceID())
	}
}
