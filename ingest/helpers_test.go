package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/callrecords"
	"github.com/dialstream/dialstream/internal/callrecords/dbtest"
	"github.com/dialstream/dialstream/internal/compliance"
	"github.com/dialstream/dialstream/internal/registry"
)

const (
	demoKey   = "dsk_demo_local"
	otherKey  = "dsk_other_local"
	slowKey   = "dsk_slow_local"
	maskedKey = "dsk_masked_local"
	demoAgent = "a1b2c3d4e5f6a7b8c9d0e1f2"
	// otherAgent belongs to ws_other.
	otherAgent = "b2c3d4e5f6a7b8c9d0e1f2a3"
	// demoWebhookSecret signs ws_demo's webhooks (the dev registry's).
	demoWebhookSecret = "whsec_czI4cmdqQkFNTUxlRDlzOG5UZFcvOEl1"
)

var (
	callIDRE = regexp.MustCompile(`^[0-9a-f]{24}$`)
	roomRE   = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}-[a-z0-9]{10}$`)
)

// testRegistryYAML mirrors deploy/dev/registry.yaml, plus a workspace with a
// tiny request rate (429) and one that masks numbers. withOtherAgent=false
// leaves ws_other's agent out, to show that a foreign agent and a missing one
// get the same answer.
func testRegistry(t testing.TB, withOtherAgent bool) *registry.Registry {
	t.Helper()
	y := `
workspaces:
  - id: ws_demo
    api_key_sha256: ["` + registry.HashKey(demoKey) + `"]
    webhook_secrets: ["` + demoWebhookSecret + `"]
    limits: {requests_per_second: 1000000}
    compliance: {home_country: US, allowed_countries: [US, GB], calling_hours: {start: "00:00", end: "24:00"}, max_attempts_per_day: unlimited, max_attempts_per_week: unlimited}
  - id: ws_other
    api_key_sha256: ["` + registry.HashKey(otherKey) + `"]
    limits: {requests_per_second: 1000000}
    compliance: {home_country: US, allowed_countries: [US, GB], calling_hours: {start: "00:00", end: "24:00"}, max_attempts_per_day: unlimited, max_attempts_per_week: unlimited}
  - id: ws_slow
    api_key_sha256: ["` + registry.HashKey(slowKey) + `"]
    limits: {requests_per_second: 0.5}
    compliance: {home_country: US, allowed_countries: [US, GB], calling_hours: {start: "00:00", end: "24:00"}, max_attempts_per_day: unlimited, max_attempts_per_week: unlimited}
  - id: ws_masked
    api_key_sha256: ["` + registry.HashKey(maskedKey) + `"]
    limits: {requests_per_second: 1000000}
    compliance: {home_country: US, allowed_countries: [US, GB], calling_hours: {start: "00:00", end: "24:00"}, max_attempts_per_day: unlimited, max_attempts_per_week: unlimited}
    mask_phone_numbers: true
agents:
  - {id: ` + demoAgent + `, workspace: ws_demo, livekit_agent_name: demo, sip_trunk_id: ST_x}
  - {id: slow_agent, workspace: ws_slow, livekit_agent_name: demo, sip_trunk_id: ST_x}
  - {id: masked_agent, workspace: ws_masked, livekit_agent_name: demo, sip_trunk_id: ST_x}
`
	if withOtherAgent {
		y += "  - {id: " + otherAgent + ", workspace: ws_other, livekit_agent_name: other, sip_trunk_id: ST_x}\n"
	}
	r, err := registry.Parse([]byte(y), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// fakeProducer acknowledges records in memory. With block set, it holds each
// record until block is closed (or the produce context ends, as franz-go
// does for a record it may still fail).
type fakeProducer struct {
	mu      sync.Mutex
	recs    []*kgo.Record
	err     error
	block   chan struct{}
	pingErr error
	started chan struct{} // receives once per Produce call, if set
	n       int           // records acknowledged
	discard bool          // count records without keeping them (fuzzing)
}

func (f *fakeProducer) Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	if f.started != nil {
		f.started <- struct{}{}
	}
	f.mu.Lock()
	block, err := f.block, f.err
	f.mu.Unlock()
	ack := func() {
		if err != nil {
			promise(r, err)
			return
		}
		f.mu.Lock()
		r.Partition, r.Offset = 3, int64(f.n)
		f.n++
		if !f.discard {
			f.recs = append(f.recs, r)
		}
		f.mu.Unlock()
		promise(r, nil)
	}
	if block == nil {
		ack()
		return
	}
	go func() {
		select {
		case <-block:
			ack()
		case <-ctx.Done():
			promise(r, ctx.Err())
		}
	}()
}

func (f *fakeProducer) Ping(context.Context) error { return f.pingErr }

func (f *fakeProducer) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

func (f *fakeProducer) records() []*kgo.Record {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*kgo.Record(nil), f.recs...)
}

// TestMain stops the throwaway PostgreSQL cluster the tests started, if
// any (dbtest).
func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

type testEnv struct {
	h    http.Handler
	hd   *handler
	p    *fakeProducer
	reg  *prometheus.Registry
	cfg  Config
	logs *bytes.Buffer
	lw   *lockedWriter // guards logs
	st   *callrecords.Store
	// now is the call records' clock (retention of writes); clock sets it.
	now atomic.Pointer[time.Time]
	// attempts numbers fixture attempts on the deliveries topic.
	attempts atomic.Int64
}

// newTestEnv is a handler on a fresh SQLite call records database.
func newTestEnv(t testing.TB, mod ...func(*Config)) *testEnv {
	t.Helper()
	return newTestEnvOn(t, callrecords.SQLite, mod...)
}

// newTestEnvOn is a handler on a fresh call records database of engine.
func newTestEnvOn(t testing.TB, engine callrecords.Engine, mod ...func(*Config)) *testEnv {
	t.Helper()
	logs := &bytes.Buffer{}
	env := &testEnv{p: &fakeProducer{}, reg: prometheus.NewRegistry(), logs: logs}
	env.lw = &lockedWriter{w: logs}
	env.st = dbtest.Open(t, engine, callrecords.Options{Retention: callrecords.DefaultRetention, Now: func() time.Time {
		if n := env.now.Load(); n != nil {
			return *n
		}
		return time.Now()
	}})
	cfg := Config{
		Registry:     testRegistry(t, true),
		Suppressions: readyTable(),
		Metrics:      env.reg,
		Logger:       slog.New(slog.NewJSONHandler(env.lw, nil)),
		Store:        env.st,
	}
	// The fakeProducer stands in for the cluster: its address is never dialed.
	cfg.Kafka.Brokers = []string{"fake:9092"}
	cfg.Kafka.ProduceTimeout = 2 * time.Second
	for _, m := range mod {
		m(&cfg)
	}
	// What NewHandler does, keeping the *handler for the call-state tests.
	if err := cfg.withDefaults().Validate(); err != nil {
		t.Fatal(err)
	}
	hd, err := newHandler(cfg.withDefaults(), env.p)
	if err != nil {
		t.Fatal(err)
	}
	env.h, env.hd, env.cfg = hd.engine(), hd, cfg
	return env
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

// logText is what the handler logged so far.
func (e *testEnv) logText() string {
	e.lw.mu.Lock()
	defer e.lw.mu.Unlock()
	return e.logs.String()
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// req describes one request; zero fields take the happy defaults.
type req struct {
	method      string
	path        string
	key         string // "-" sends no Authorization
	auth        string // raw Authorization header, overrides key
	workspace   string // "-" sends no x-workspace-id
	contentType string // "-" sends no Content-Type
	idemKey     string
	body        string
	bodyReader  io.Reader
}

func (e *testEnv) do(t testing.TB, r req) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, newRequest(r))
	return w
}

// newRequest builds the HTTP request r describes.
func newRequest(r req) *http.Request {
	if r.method == "" {
		r.method = http.MethodPost
	}
	if r.path == "" {
		r.path = "/v1/api/call"
	}
	var body io.Reader = strings.NewReader(r.body)
	if r.bodyReader != nil {
		body = r.bodyReader
	}
	hr := httptest.NewRequest(r.method, r.path, body)
	if r.bodyReader != nil {
		hr.ContentLength = -1
	}
	switch {
	case r.auth != "":
		hr.Header.Set("Authorization", r.auth)
	case r.key == "":
		hr.Header.Set("Authorization", "Bearer "+demoKey)
	case r.key != "-":
		hr.Header.Set("Authorization", "Bearer "+r.key)
	}
	switch r.workspace {
	case "":
		hr.Header.Set("x-workspace-id", "ws_demo")
	case "-":
	default:
		hr.Header.Set("x-workspace-id", r.workspace)
	}
	switch r.contentType {
	case "":
		hr.Header.Set("Content-Type", "application/json")
	case "-":
	default:
		hr.Header.Set("Content-Type", r.contentType)
	}
	if r.idemKey != "" {
		hr.Header.Set("Idempotency-Key", r.idemKey)
	}
	return hr
}

// inFlight sends r to a fresh handler whose producer holds every record,
// and returns once r's first record is held: r is in flight. finish lets
// the records through and returns r's answer.
func inFlight(t *testing.T, r req) (env *testEnv, finish func() *httptest.ResponseRecorder) {
	t.Helper()
	env = newTestEnv(t)
	env.p.block = make(chan struct{})
	env.p.started = make(chan struct{}, 1)
	done := make(chan *httptest.ResponseRecorder, 1)
	go func() { done <- env.do(t, r) }()
	<-env.p.started
	env.p.started = nil
	return env, func() *httptest.ResponseRecorder {
		close(env.p.block)
		return <-done
	}
}

// assertJSON compares two JSON documents as values (the whole document).
func assertJSON(t testing.TB, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("response is not JSON: %v\n%s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want JSON: %v\n%s", err, want)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("body mismatch\n got: %s\nwant: %s", got, want)
	}
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// errBody builds an expected error envelope.
func errBody(t testing.TB, msg string, fields ...FieldError) string {
	return mustJSON(t, ErrorResponse{Status: "error", Message: msg, Errors: fields})
}

// successBody is the answer for a call made with Idempotency-Key key in
// ws_demo (ids derived from the key), with the fake producer's jobId.
func successBody(t testing.TB, workspace, key, agent, to, jobID string) string {
	id, suffix := deriveIDs([]byte(defaultIdemSecret), workspace, key)
	return mustJSON(t, CallResponse{Status: "success",
		Message: "Outbound call job scheduled for agent " + agent + " to number " + to,
		CallID:  id, RoomName: agent + "-" + suffix, JobID: jobID})
}

func discardLogger() *slog.Logger { return slog.New(slog.NewJSONHandler(io.Discard, nil)) }

// readyTable is an empty do-not-call table that has "loaded": for handlers
// that run no suppression follower.
func readyTable() *compliance.Table {
	t := compliance.NewTable()
	t.SetReady()
	return t
}

// forEngines runs fn as a subtest per call records engine (SQLite and a
// real PostgreSQL: dbtest), each on a handler of its own.
func forEngines(t *testing.T, fn func(t *testing.T, env *testEnv), mod ...func(*Config)) {
	for _, e := range dbtest.Engines {
		t.Run(string(e), func(t *testing.T) { fn(t, newTestEnvOn(t, e, mod...)) })
	}
}
