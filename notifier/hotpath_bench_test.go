package notifier

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dialstream/dialstream/schemas"
)

// Benchmarks of the notifier's per-delivery work besides the HTTP round
// trip, so a regression shows in a diff: go test -run '^$' -bench 'Body|Sign|Process|BarePost' ./notifier

func benchEvent() *schemas.CallEvent {
	ring, talk := 3.5, 42.25
	return &schemas.CallEvent{
		CallID: "f9e8d7c6b5a4f3e2d1c0b9a8", WorkspaceID: "ws_b", Sequence: 5, Status: schemas.StatusEnded,
		OccurredAt: time.Date(2026, 11, 26, 10, 4, 31, 500e6, time.UTC), To: "+15550100001",
		CallbackURL: "https://example.com/hook", Metadata: json.RawMessage(`{"crm_id":"42","tags":["<vip>"]}`),
		Outcome: schemas.OutcomeCompleted, EndedBy: schemas.EndedByCallee, RingDurationSeconds: &ring, TalkDurationSeconds: &talk,
	}
}

// BenchmarkBuildBody renders one webhook body.
func BenchmarkBuildBody(b *testing.B) {
	ev := benchEvent()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := buildBody("f9e8d7c6b5a4f3e2d1c0b9a8-5", schemas.TypeCallEnded, ev, false); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSign signs one body with two secrets (a rotation in progress).
func BenchmarkSign(b *testing.B) {
	body, err := buildBody("f9e8d7c6b5a4f3e2d1c0b9a8-5", schemas.TypeCallEnded, benchEvent(), false)
	if err != nil {
		b.Fatal(err)
	}
	keys := [][]byte{[]byte("0123456789abcdef0123456789abcdef"), []byte("fedcba9876543210fedcba9876543210")}
	at := time.Unix(1_764_000_000, 0)
	b.ReportAllocs()
	for b.Loop() {
		h := http.Header{}
		Sign(h, keys, "f9e8d7c6b5a4f3e2d1c0b9a8-5", at, body)
	}
}

// BenchmarkSignPooled is BenchmarkSign on the delivery path's pooled MACs.
func BenchmarkSignPooled(b *testing.B) {
	body, err := buildBody("f9e8d7c6b5a4f3e2d1c0b9a8-5", schemas.TypeCallEnded, benchEvent(), false)
	if err != nil {
		b.Fatal(err)
	}
	keys := newMACKeys([][]byte{[]byte("0123456789abcdef0123456789abcdef"), []byte("fedcba9876543210fedcba9876543210")})
	at := time.Unix(1_764_000_000, 0)
	b.ReportAllocs()
	for b.Loop() {
		h := http.Header{}
		sign(h, keys, "f9e8d7c6b5a4f3e2d1c0b9a8-5", at, body)
	}
}

// benchNotifier is the notifier Run builds, without Kafka: discarded log,
// the global tracer provider, its own metrics registry, loopback allowed.
func benchNotifier(b *testing.B) *notifier {
	cfg := Config{Registry: testRegistry(b), AllowCIDRs: loopback, Metrics: prometheus.NewRegistry()}.withDefaults()
	keys, masked, err := workspaceKeys(cfg.Registry)
	if err != nil {
		b.Fatal(err)
	}
	sched := newSchedule(cfg.RetrySchedule, cfg.RetryJitter)
	m := newMetrics(cfg.Metrics, sched.attempts())
	n := &notifier{log: cfg.Logger, tracer: cfg.TracerProvider.Tracer(tracerName), keys: keys, masked: masked,
		sched: sched, maxBody: cfg.MaxResponseBytes, m: m, gone: newEndpoints(m.goneEndpoints), rnd: defaultRand}
	n.http = newHTTPClient(newGuard(cfg.AllowCIDRs, nil, nil, cfg.ConnectTimeout, nil), cfg)
	b.Cleanup(n.http.CloseIdleConnections)
	return n
}

// benchReceiver answers 204, as BenchmarkThroughput's does.
func benchReceiver(b *testing.B) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(s.Close)
	return s
}

// BenchmarkProcess is one webhook's attempt as the consumer makes it, minus
// Kafka: parse the consumed record, render, sign, POST to a local receiver
// (its CPU included), build the delivery log record. Compare with
// BenchmarkBarePost, the same POST from a plain http.Client.
func BenchmarkProcess(b *testing.B) {
	s := benchReceiver(b)
	n := benchNotifier(b)
	ev := event(callID(), "ws_a", 1, schemas.StatusQueued, s.URL)
	rec, err := schemas.NewRecord(schemas.TopicEvents, ev.CallID, schemas.Meta{ID: schemas.EventID(ev.CallID, 1),
		Type: ev.Status.Type(), Source: "/test", Subject: ev.CallID}, ev)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		w, ok := n.process(ctx, parseJob(rec))
		if !ok || len(w.fs) != 1 || w.fs[0].kind != produceLog {
			b.Fatalf("process: ok %v, writes %+v", ok, w.fs)
		}
	}
}

// BenchmarkBarePost is BenchmarkThroughput's bare client, one request.
func BenchmarkBarePost(b *testing.B) {
	s := benchReceiver(b)
	ev := event(callID(), "ws_a", 1, schemas.StatusQueued, s.URL)
	body, err := buildBody(schemas.EventID(ev.CallID, 1), ev.Status.Type(), &ev, false)
	if err != nil {
		b.Fatal(err)
	}
	cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	b.Cleanup(cl.CloseIdleConnections)
	b.ReportAllocs()
	for b.Loop() {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, s.URL, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := cl.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
