package obs

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/dialstream/dialstream/internal/envconfig"
)

func TestLoadTracingConfig(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		want    TracingConfig
		export  bool
		wantErr string
	}{
		{name: "nothing set: no export", env: nil,
			want: TracingConfig{Protocol: "http/protobuf", Exporter: "otlp"}},
		{name: "endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"},
			want: TracingConfig{Endpoint: "http://collector:4318", Protocol: "http/protobuf", Exporter: "otlp"}, export: true},
		{name: "traces endpoint wins, traces protocol wins",
			env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://b:4317",
				"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"},
			want: TracingConfig{Endpoint: "http://b:4317", Protocol: "grpc", Exporter: "otlp"}, export: true},
		{name: "exporter none", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_TRACES_EXPORTER": "none"},
			want: TracingConfig{Endpoint: "http://a:4318", Protocol: "http/protobuf", Exporter: "none"}},
		{name: "unsupported values", env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json", "OTEL_TRACES_EXPORTER": "zipkin"},
			wantErr: "OTEL_TRACES_EXPORTER"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := envconfig.FromMap(tc.env)
			got := LoadTracingConfig(l)
			if tc.wantErr != "" {
				if err := l.Err(); err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "OTEL_EXPORTER_OTLP_PROTOCOL") {
					t.Fatalf("err %v, want both variables named", err)
				}
				return
			}
			if err := l.Err(); err != nil {
				t.Fatal(err)
			}
			if got != tc.want || got.Exporting() != tc.export {
				t.Fatalf("got %+v exporting=%v, want %+v exporting=%v", got, got.Exporting(), tc.want, tc.export)
			}
		})
	}
}

// Without an endpoint nothing is exported, but spans still get real ids,
// so trace context propagates; a remote parent's trace id is continued.
func TestTracerProviderWithoutExport(t *testing.T) {
	tp, err := NewTracerProvider(context.Background(), TracingConfig{}, "dialstream-test")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ShutdownTracing(tp, time.Second) }()
	ctx, span := tp.Tracer("t").Start(context.Background(), "root")
	span.End()
	tpHeader, _ := TraceParent(ctx)
	if !strings.HasPrefix(tpHeader, "00-") || len(tpHeader) != 55 {
		t.Fatalf("traceparent %q", tpHeader)
	}

	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	remote := ContextWithTraceParent(context.Background(), parent, "k=v")
	ctx, span = tp.Tracer("t").Start(remote, "child")
	span.End()
	got, state := TraceParent(ctx)
	if got[3:35] != parent[3:35] || got[36:52] == parent[36:52] || state != "k=v" {
		t.Fatalf("child traceparent %q tracestate %q of parent %q", got, state, parent)
	}
	if ContextWithTraceParent(context.Background(), "garbage", "") != context.Background() {
		t.Fatal("an unparsable traceparent must leave ctx alone")
	}
}

// With OTEL_EXPORTER_OTLP_ENDPOINT, spans are exported over OTLP/HTTP; the
// flush at shutdown sends what is buffered.
func TestTracerProviderExportsOverOTLP(t *testing.T) {
	var posts atomic.Int32
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/traces" && r.Header.Get("Content-Type") == "application/x-protobuf" {
			posts.Add(1)
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer collector.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	c := LoadTracingConfig(envconfig.New())
	tp, err := NewTracerProvider(context.Background(), c, "dialstream-test")
	if err != nil {
		t.Fatal(err)
	}
	_, span := tp.Tracer("t").Start(context.Background(), "exported")
	span.End()
	if err := ShutdownTracing(tp, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if posts.Load() == 0 {
		t.Fatal("no OTLP export reached the collector")
	}
}

// A line logged with a span in its context carries trace_id and span_id.
func TestLoggerAddsTraceIDs(t *testing.T) {
	var buf bytes.Buffer
	log := NewLogger(&buf, "json", "info").With("call_id", "c1")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled})
	log.InfoContext(trace.ContextWithSpanContext(context.Background(), sc), "with span")
	log.Info("without")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	var first, second map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &second); err != nil {
		t.Fatal(err)
	}
	if first["trace_id"] != sc.TraceID().String() || first["span_id"] != sc.SpanID().String() || first["call_id"] != "c1" {
		t.Fatalf("line %s", lines[0])
	}
	if _, ok := second["trace_id"]; ok {
		t.Fatalf("line without a span has trace_id: %s", lines[1])
	}
}
