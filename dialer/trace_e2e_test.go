package dialer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/dialstream/dialstream/ingest"
	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/obs"
	"github.com/dialstream/dialstream/internal/registry"
	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/dialstream/dialstream/notifier"
	"github.com/dialstream/dialstream/recorder"
	"github.com/dialstream/dialstream/schemas"
)

// The pipeline across services, in one process: ingest.Run, Run (this
// package, against the fake LiveKit) and notifier.Run on the embedded
// broker, delivering to an httptest receiver. These tests live here because
// this package can import the other two (they do not import it) and holds
// the fake LiveKit. They check what a client and an operator see: the
// traceparent of the webhooks, and the JSON logs.

const (
	pipeKey    = "dsk_trace_local"
	pipeWS     = "ws_trace"
	pipeAgent  = "agent_trace"
	pipeSecret = "whsec_czI4cmdqQkFNTUxlRDlzOG5UZFcvOEl1"
)

var pipeRegistryYAML = `
workspaces:
  - id: ` + pipeWS + `
    api_key_sha256: ["` + registry.HashKey(pipeKey) + `"]
    webhook_secrets: ["` + pipeSecret + `"]
    limits: {requests_per_second: 1000, max_concurrent_calls: 10, calls_per_second: 100, burst: 10}
    compliance: {home_country: US, calling_hours: {start: "00:00", end: "24:00"}, max_attempts_per_day: unlimited, max_attempts_per_week: unlimited}
agents:
  - {id: ` + pipeAgent + `, workspace: ` + pipeWS + `, livekit_agent_name: agent-trace, sip_trunk_id: ST_t, caller_id: "+15550109999", ringing_timeout: 5s, max_call_duration: 1m}
`

// syncBuffer is a log sink shared by the three services.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Split(strings.TrimSpace(s.b.String()), "\n")
}

// receivedHook is one request the receiver got.
type receivedHook struct {
	refused bool // answered 503
	header  http.Header
	body    struct {
		Type string `json:"type"`
		Data struct {
			CallID   string         `json:"call_id"`
			Status   schemas.Status `json:"status"`
			Sequence int            `json:"sequence"`
		} `json:"data"`
	}
}

type pipeline struct {
	t         *testing.T
	ingestURL string
	dialer    *runningDialer
	lk        *fakeLiveKit
	logs      *syncBuffer
	callback  string

	mu    sync.Mutex
	hooks []receivedHook
	// refuse, when set, says whether to answer a webhook 503 (so it goes
	// through a retry topic); called with mu held.
	refuse func(h receivedHook) bool
}

func startPipeline(t *testing.T) *pipeline {
	t.Helper()
	b := startBroker(t, 3)
	reg := testRegistry(t, pipeRegistryYAML)
	p := &pipeline{t: t, lk: newFakeLiveKit(), logs: &syncBuffer{}}
	logger := func(service string) *slog.Logger {
		return obs.NewLogger(p.logs, "json", "debug").With("service", service)
	}
	provider := func(service string) trace.TracerProvider {
		tp, err := obs.NewTracerProvider(context.Background(), obs.TracingConfig{}, service)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = obs.ShutdownTracing(tp, time.Second) })
		return tp
	}

	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var h receivedHook
		h.header = r.Header.Clone()
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &h.body); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		p.mu.Lock()
		h.refused = p.refuse != nil && p.refuse(h)
		p.hooks = append(p.hooks, h)
		p.mu.Unlock()
		if h.refused {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(recv.Close)
	p.callback = recv.URL + "/hooks"

	dcfg := testConfig(t, b.Addr(), reg)
	dcfg.liveKit, dcfg.Logger, dcfg.TracerProvider = p.lk, logger("dialer"), provider("dialstream-dialer")
	p.dialer = startDialer(t, dcfg)

	kcfg := kafkax.Config{Brokers: []string{b.Addr()}, Partitions: 3, ReplicationFactor: -1, CreateTopics: true,
		ProduceTimeout: 5 * time.Second, SessionTimeout: time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	run := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil {
				t.Errorf("%s.Run: %v", name, err)
			}
		}()
	}
	ncfg := notifier.Config{Kafka: kcfg, Registry: reg, HTTPAddr: freeAddr(t), RetrySchedule: []time.Duration{0, time.Second},
		AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Timeout: 5 * time.Second,
		Logger: logger("notifier"), TracerProvider: provider("dialstream-notifier")}
	ncfg.Kafka.ClientID = "notifier-trace-test"
	run("notifier", func(ctx context.Context) error { return notifier.Run(ctx, ncfg) })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The call records ingest reads, written by a recorder.
	records := "sqlite://" + t.TempDir() + "/records.db"
	rcfg := recorder.Config{Kafka: kcfg, Registry: reg, HTTPAddr: freeAddr(t), DatabaseURL: records, Logger: logger("recorder"),
		TracerProvider: provider("dialstream-recorder")}
	rcfg.Kafka.ClientID = "recorder-trace-test"
	run("recorder", func(ctx context.Context) error { return recorder.Run(ctx, rcfg) })
	icfg := ingest.Config{Listener: ln, Registry: reg, Kafka: kcfg, Logger: logger("ingest"), TracerProvider: provider("dialstream-ingest"),
		DatabaseURL: records}
	icfg.Kafka.ClientID = "ingest-trace-test"
	run("ingest", func(ctx context.Context) error { return ingest.Run(ctx, icfg) })
	p.ingestURL = "http://" + ln.Addr().String()
	testutil.Eventually(t, 20*time.Second, "ingest ready", func() bool {
		resp, err := http.Get(p.ingestURL + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// call asks ingest for a call to `to`, with traceparent when it is not
// empty, and returns ingest's answer.
func (p *pipeline) call(to, traceparent string) ingest.CallResponse {
	p.t.Helper()
	body := fmt.Sprintf(`{"to":%q,"call_agent_id":%q,"callback_url":%q,"dynamic_variables":{"firstName":"Ada"}}`, to, pipeAgent, p.callback)
	r, _ := http.NewRequest(http.MethodPost, p.ingestURL+"/v1/api/call", strings.NewReader(body))
	r.Header.Set("Authorization", "Bearer "+pipeKey)
	r.Header.Set("x-workspace-id", pipeWS)
	r.Header.Set("Content-Type", "application/json")
	if traceparent != "" {
		r.Header.Set("traceparent", traceparent)
		r.Header.Set("tracestate", "client=7")
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	var cr ingest.CallResponse
	if err := json.NewDecoder(resp.Body).Decode(&cr); err != nil || resp.StatusCode != http.StatusAccepted {
		p.t.Fatalf("POST /v1/api/call: %d %v", resp.StatusCode, err)
	}
	return cr
}

// cancel asks ingest to cancel a call.
func (p *pipeline) cancel(id string) {
	p.t.Helper()
	r, _ := http.NewRequest(http.MethodPost, p.ingestURL+"/v1/api/call/"+id+"/cancel", nil)
	r.Header.Set("Authorization", "Bearer "+pipeKey)
	r.Header.Set("x-workspace-id", pipeWS)
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		p.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		p.t.Fatalf("cancel: %d", resp.StatusCode)
	}
}

// redeliver asks ingest to send a call's event again, once ingest's view of
// the call has that event.
func (p *pipeline) redeliver(id string, sequence int) {
	p.t.Helper()
	do := func(method, path, body string) (int, []byte) {
		r, _ := http.NewRequest(method, p.ingestURL+"/v1/api/call/"+id+path, strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+pipeKey)
		r.Header.Set("x-workspace-id", pipeWS)
		if body != "" {
			r.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			p.t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	testutil.Eventually(p.t, 10*time.Second, "ingest's view of the call has its events", func() bool {
		var env ingest.CallEnvelope
		code, b := do(http.MethodGet, "", "")
		return code == http.StatusOK && json.Unmarshal(b, &env) == nil && len(env.Call.Events) >= sequence
	})
	if code, b := do(http.MethodPost, "/redeliver", fmt.Sprintf(`{"sequence":%d}`, sequence)); code != http.StatusAccepted {
		p.t.Fatalf("redeliver: %d %s", code, b)
	}
}

// hangUp plays LiveKit telling the dialer, with a signed webhook, that the
// callee of an answered call left.
func (p *pipeline) hangUp(cr ingest.CallResponse) {
	p.t.Helper()
	p.lk.mu.Lock()
	room := p.lk.rooms[cr.RoomName]
	p.lk.mu.Unlock()
	if room == nil {
		p.t.Fatalf("no LiveKit room %s", cr.RoomName)
	}
	ev := &livekit.WebhookEvent{Event: lkParticipantLeft, Id: "EV_" + cr.CallID, CreatedAt: time.Now().Unix(),
		Room: &livekit.Room{Name: cr.RoomName, Metadata: room.Metadata},
		Participant: &livekit.ParticipantInfo{Identity: calleeIdentity(cr.CallID), Kind: livekit.ParticipantInfo_SIP,
			DisconnectReason: livekit.DisconnectReason_CLIENT_INITIATED}}
	if r := signedWebhook(p.t, "http://"+p.dialer.addr+webhookPath, testAPIKey, testAPISecret, ev); r.StatusCode != http.StatusOK {
		p.t.Fatalf("LiveKit webhook: %d", r.StatusCode)
	}
}

// webhooksOf returns the webhooks received for a call.
func (p *pipeline) webhooksOf(id string) []receivedHook {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []receivedHook
	for _, h := range p.hooks {
		if h.body.Data.CallID == id {
			out = append(out, h)
		}
	}
	return out
}

func (p *pipeline) waitWebhook(id string, s schemas.Status) {
	p.t.Helper()
	testutil.Eventually(p.t, 30*time.Second, fmt.Sprintf("webhook %s of call %s", s, id), func() bool {
		for _, h := range p.webhooksOf(id) {
			if h.body.Data.Status == s && !h.refused {
				return true
			}
		}
		return false
	})
}

func spanContextOf(traceparent, tracestate string) trace.SpanContext {
	c := propagation.MapCarrier{obs.HeaderTraceparent: traceparent, obs.HeaderTracestate: tracestate}
	return trace.SpanContextFromContext(obs.Propagator().Extract(context.Background(), c))
}

// One call is one trace from the client's request to its webhooks: every
// lifecycle webhook, including the end that LiveKit's own webhook caused, a
// retry that went through a retry topic and a redelivery asked for later,
// carries a traceparent with the trace id of the request's traceparent, and
// its tracestate. A request without traceparent gets a trace of its own,
// which all of its call's webhooks share.
func TestTraceFollowsCallToWebhooks(t *testing.T) {
	p := startPipeline(t)
	refused := false
	p.refuse = func(h receivedHook) bool { // the traced call's first webhook, once
		if refused || h.header.Get("tracestate") != "client=7" {
			return false
		}
		refused = true
		return true
	}
	const incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	traced := p.call("+15550100123", incoming)
	p.waitWebhook(traced.CallID, schemas.StatusAnswered)
	p.hangUp(traced)
	untraced := p.call("+15550100486", "") // busy: dialing, ringing?, ended
	p.waitWebhook(traced.CallID, schemas.StatusEnded)
	p.waitWebhook(traced.CallID, schemas.StatusQueued) // its retry, a second later
	p.waitWebhook(untraced.CallID, schemas.StatusEnded)
	before := len(p.webhooksOf(traced.CallID))
	p.redeliver(traced.CallID, 2)
	testutil.Eventually(t, 10*time.Second, "the redelivered webhook", func() bool { return len(p.webhooksOf(traced.CallID)) > before })

	want := spanContextOf(incoming, "")
	hooks := p.webhooksOf(traced.CallID)
	seen := map[schemas.Status]bool{}
	deliveries := map[int]int{} // sequence -> deliveries
	for _, h := range hooks {
		seen[h.body.Data.Status] = true
		deliveries[h.body.Data.Sequence]++
		sc := spanContextOf(h.header.Get("traceparent"), h.header.Get("tracestate"))
		if !sc.IsValid() || sc.TraceID() != want.TraceID() {
			t.Errorf("webhook %s (sequence %d): traceparent %q, want trace id %s",
				h.body.Data.Status, h.body.Data.Sequence, h.header.Get("traceparent"), want.TraceID())
		}
		if sc.SpanID() == want.SpanID() {
			t.Errorf("webhook %s: the client's own span id came back; want the notifier's", h.body.Data.Status)
		}
		if got := h.header.Get("tracestate"); got != "client=7" {
			t.Errorf("webhook %s: tracestate %q, want the request's", h.body.Data.Status, got)
		}
	}
	for _, s := range []schemas.Status{schemas.StatusQueued, schemas.StatusDialing, schemas.StatusAnswered, schemas.StatusEnded} {
		if !seen[s] {
			t.Errorf("no %s webhook among %d", s, len(hooks))
		}
	}
	if !refused || deliveries[1] != 2 || deliveries[2] != 2 {
		t.Errorf("want sequence 1 refused once and retried, sequence 2 redelivered; got refused=%v, deliveries by sequence %v", refused, deliveries)
	}

	var first trace.TraceID
	for i, h := range p.webhooksOf(untraced.CallID) {
		sc := spanContextOf(h.header.Get("traceparent"), "")
		switch {
		case !sc.IsValid():
			t.Errorf("untraced call: webhook %s without a valid traceparent", h.body.Data.Status)
		case sc.TraceID() == want.TraceID():
			t.Errorf("untraced call: webhook %s in the other call's trace", h.body.Data.Status)
		case i == 0:
			first = sc.TraceID()
		case sc.TraceID() != first:
			t.Errorf("untraced call: webhook %s in trace %s, the first in %s", h.body.Data.Status, sc.TraceID(), first)
		}
	}
}

// The JSON logs of calls' lives, from all three services: every line that
// mentions a call (its id, its room, or the masked number) names it with
// call_id and workspace_id; no line holds a full phone number; each service
// has lines of each call, and lines with the call's trace_id.
func TestLogsNameTheCallAndMaskTheNumber(t *testing.T) {
	p := startPipeline(t)
	type call struct {
		to, traceparent string
		cr              ingest.CallResponse
	}
	calls := []*call{
		{to: "+15550100123", traceparent: "00-11111111111111111111111111111111-1111111111111111-01"}, // answered, then hung up
		{to: "+15550100486", traceparent: "00-22222222222222222222222222222222-2222222222222222-01"}, // busy
		{to: "+15550100480", traceparent: "00-33333333333333333333333333333333-3333333333333333-01"}, // rings until canceled
	}
	for _, c := range calls {
		c.cr = p.call(c.to, c.traceparent)
	}
	p.waitWebhook(calls[0].cr.CallID, schemas.StatusAnswered)
	p.hangUp(calls[0].cr)
	p.waitWebhook(calls[2].cr.CallID, schemas.StatusDialing)
	p.cancel(calls[2].cr.CallID)
	for _, c := range calls {
		p.waitWebhook(c.cr.CallID, schemas.StatusEnded)
	}
	// The last delivery's log line follows its webhook.
	testutil.Eventually(t, 10*time.Second, "the notifier's log of the last webhooks", func() bool {
		n := 0
		for _, l := range p.logs.lines() {
			if strings.Contains(l, `"notifier: webhook attempt"`) && strings.Contains(l, `"status":204`) {
				n++
			}
		}
		return n >= len(p.webhooksOf(calls[0].cr.CallID))+len(p.webhooksOf(calls[1].cr.CallID))+len(p.webhooksOf(calls[2].cr.CallID))
	})

	lines := p.logs.lines()
	for _, l := range lines {
		for _, c := range calls {
			digits := strings.TrimPrefix(c.to, "+")
			if strings.Contains(l, digits) || strings.Contains(l, digits[1:]) {
				t.Errorf("log line holds the full number %s: %s", c.to, l)
			}
		}
	}
	for _, c := range calls {
		id := c.cr.CallID
		masked := obs.MaskPhone(c.to)
		perService := map[string]int{}
		traced := map[string]bool{}
		for _, l := range lines {
			if !strings.Contains(l, id) && !strings.Contains(l, c.cr.RoomName) && !strings.Contains(l, masked) {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("not a JSON log line: %s", l)
			}
			if m["call_id"] != id || m["workspace_id"] != pipeWS {
				t.Errorf("line about call %s lacks call_id=%s workspace_id=%s: %s", id, id, pipeWS, l)
			}
			svc, _ := m["service"].(string)
			perService[svc]++
			if m["trace_id"] == spanContextOf(c.traceparent, "").TraceID().String() {
				traced[svc] = true
			}
		}
		for _, svc := range []string{"ingest", "dialer", "notifier"} {
			if perService[svc] == 0 {
				t.Errorf("call %s (%s): no %s log line about it", id, c.to, svc)
			}
			if !traced[svc] {
				t.Errorf("call %s (%s): no %s log line with its trace_id", id, c.to, svc)
			}
		}
	}
	// Any line naming some call names its workspace too.
	for _, l := range lines {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) != nil {
			continue
		}
		if _, ok := m["call_id"]; ok {
			if ws, _ := m["workspace_id"].(string); ws == "" {
				t.Errorf("line with call_id but no workspace_id: %s", l)
			}
		}
	}
	if t.Failed() {
		t.Logf("logs:\n%s", strings.Join(lines, "\n"))
	}
}
