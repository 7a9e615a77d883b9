package dialer

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/livekitdev"
	"github.com/dialstream/dialstream/internal/phonesim"
	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/dialstream/dialstream/schemas"
)

// End-to-end tests: the dialer against a real livekit-server (with its
// in-process Redis), the phone simulator on its SIP bus and the embedded
// broker. They skip when the livekit-server binary is absent, except in CI.

// liveEnv is everything but the dialer.
type liveEnv struct {
	lk       *livekitdev.Server
	sim      *phonesim.Sim
	b        *kafkax.Broker
	trunk    string
	httpAddr string // the dialer's, where LiveKit sends webhooks
	regPath  string
	log      *kafkaLog
	prod     *kgo.Client
}

// e2eRegistry has the scripted-number agents; TRUNK is replaced with the
// trunk livekit-server created.
const e2eRegistry = `
workspaces:
  - id: ws_e2e
    limits: {max_concurrent_calls: 400, calls_per_second: 1000, burst: 1000}
    compliance: {home_country: US, calling_hours: {start: "00:00", end: "24:00"}, max_attempts_per_day: unlimited, max_attempts_per_week: unlimited}
  - id: ws_one
    limits: {max_concurrent_calls: 1, calls_per_second: 100, burst: 10}
    compliance: {home_country: US, calling_hours: {start: "00:00", end: "24:00"}, max_attempts_per_day: unlimited, max_attempts_per_week: unlimited}
  - id: ws_crash
    limits: {max_concurrent_calls: 8, calls_per_second: 50, burst: 8}
    compliance: {home_country: US, calling_hours: {start: "00:00", end: "24:00"}, max_attempts_per_day: unlimited, max_attempts_per_week: unlimited}
agents:
  - id: agent_e2e
    workspace: ws_e2e
    livekit_agent_name: dialstream-e2e-agent
    sip_trunk_id: TRUNK
    caller_id: "+15550109999"
    ringing_timeout: 3s
    max_call_duration: 5m
    settings: {voice: alloy, language: en-US}
  - {id: agent_short, workspace: ws_e2e, livekit_agent_name: dialstream-e2e-agent, sip_trunk_id: TRUNK, caller_id: "+15550109999", ringing_timeout: 3s, max_call_duration: 4s}
  - {id: agent_one, workspace: ws_one, livekit_agent_name: dialstream-e2e-agent, sip_trunk_id: TRUNK, caller_id: "+15550109999", ringing_timeout: 3s, max_call_duration: 5m}
  - {id: agent_crash, workspace: ws_crash, livekit_agent_name: dialstream-e2e-agent, sip_trunk_id: TRUNK, caller_id: "+15550109999", ringing_timeout: 3s, max_call_duration: 5m}
`

func startLiveEnv(t *testing.T) *liveEnv {
	t.Helper()
	e := &liveEnv{httpAddr: freeAddr(t)}
	var lkLogs io.Writer
	if os.Getenv("DIALER_TEST_LIVEKIT_LOGS") != "" {
		lkLogs = os.Stderr
	}
	e.lk = livekitdev.StartT(t, livekitdev.Config{
		APIKey: testAPIKey, APISecret: testAPISecret, LogWriter: lkLogs, LogLevel: "warn",
		WebhookURLs: []string{"http://" + e.httpAddr + webhookPath},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sim, err := phonesim.Start(ctx, phonesim.Config{
		RedisAddr: e.lk.RedisAddr(), LiveKitURL: e.lk.URL(), APIKey: testAPIKey, APISecret: testAPISecret,
		HTTPAddr: "127.0.0.1:0", Logger: testLogger(), Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.sim = sim
	t.Cleanup(func() { _ = sim.Close() }) // before livekit-server stops
	if e.trunk, err = livekitdev.EnsureOutboundTrunk(ctx, e.lk.URL(), testAPIKey, testAPISecret, "dialstream-e2e", []string{"+15550109999"}); err != nil {
		t.Fatal(err)
	}
	e.regPath = filepath.Join(t.TempDir(), "registry.yaml")
	if err := os.WriteFile(e.regPath, []byte(strings.ReplaceAll(e2eRegistry, "TRUNK", e.trunk)), 0o600); err != nil {
		t.Fatal(err)
	}
	e.b = startBroker(t, 3)
	e.log = collect(t, e.b.Addr())
	e.prod = newProducer(t, e.b.Addr())
	return e
}

func (e *liveEnv) config(t *testing.T) Config {
	cfg := testConfig(t, e.b.Addr(), testRegistry(t, strings.ReplaceAll(e2eRegistry, "TRUNK", e.trunk)))
	cfg.HTTPAddr = e.httpAddr
	cfg.LiveKitURL, cfg.LiveKitAPIKey, cfg.LiveKitAPISecret = e.lk.URL(), testAPIKey, testAPISecret
	cfg.WatchdogGrace = 2 * time.Second
	return cfg
}

func (e *liveEnv) request(t *testing.T, ws, agent, to string) string {
	id := newCallID()
	produce(t, e.prod, requestRecord(t, schemas.CallRequested{CallID: id, WorkspaceID: ws, CallAgentID: agent, To: to,
		DynamicVariables: map[string]string{"firstName": "Ada", "lastName": "Lovelace", "Zipcode": "94107"},
		Metadata:         json.RawMessage(`{"crm_id":"c-42","tags":["<vip>"]}`)}))
	return id
}

func (e *liveEnv) waitEnded(t *testing.T, timeout time.Duration, ids ...string) {
	t.Helper()
	testutil.Eventually(t, timeout, fmt.Sprintf("%d calls ended", len(ids)), func() bool {
		for _, id := range ids {
			if e.log.ended(t, id) == nil {
				return false
			}
		}
		return true
	})
}

func (e *liveEnv) waitStatus(t *testing.T, id string, s schemas.Status) {
	t.Helper()
	testutil.Eventually(t, 20*time.Second, fmt.Sprintf("call %s %s", id, s), func() bool {
		for _, ev := range e.log.callEvents(t, id) {
			if ev.Status == s {
				return true
			}
		}
		return false
	})
}

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild())
	}
	// pion and the SDK log through lksdk's global logger; quiet unless asked.
	lksdk.SetLogger(phonesim.NewSDKLogger(testLogger()))
	os.Exit(m.Run())
}

// Every scripted number gives the right events and outcome through a real
// livekit-server; cancel works before the dial and after the answer; the
// agent's dispatch carries the dynamic variables and not the metadata.
func TestEndToEnd(t *testing.T) {
	e := startLiveEnv(t)
	d := startDialer(t, e.config(t))

	type want struct {
		outcome schemas.Outcome
		sip     int
		by      schemas.EndedBy
	}
	calls := map[string]want{}
	scripted := map[string]want{
		phonesim.NumberAnswer:   {schemas.OutcomeCompleted, 0, schemas.EndedByCallee},
		phonesim.NumberBusy:     {schemas.OutcomeBusy, 486, schemas.EndedByCallee},
		phonesim.NumberNoAnswer: {schemas.OutcomeNoAnswer, 480, schemas.EndedBySystem},
		phonesim.NumberDecline:  {schemas.OutcomeDeclined, 603, schemas.EndedByCallee},
		phonesim.NumberNotFound: {schemas.OutcomeFailed, 404, schemas.EndedBySystem},
	}
	for number, w := range scripted {
		calls[e.request(t, "ws_e2e", "agent_e2e", number)] = w
	}
	maxDur := e.request(t, "ws_e2e", "agent_short", phonesim.NumberHold)
	calls[maxDur] = want{schemas.OutcomeMaxDuration, 0, schemas.EndedBySystem}
	held := e.request(t, "ws_e2e", "agent_e2e", phonesim.NumberHold)
	calls[held] = want{schemas.OutcomeCanceled, 0, schemas.EndedByClient}

	// ws_one admits one call at a time: the second waits, and is canceled
	// before it is ever dialed.
	blocker := e.request(t, "ws_one", "agent_one", phonesim.NumberHold)
	e.waitStatus(t, blocker, schemas.StatusDialing)
	queued := e.request(t, "ws_one", "agent_one", phonesim.NumberAnswer)
	e.waitStatus(t, queued, schemas.StatusQueued)
	produce(t, e.prod, cancelRecord(t, queued, "ws_one"))
	calls[queued] = want{schemas.OutcomeCanceled, 0, schemas.EndedByClient}

	// While the held call is answered, read its dispatch back from LiveKit.
	e.waitStatus(t, held, schemas.StatusAnswered)
	room := roomNameFor("agent_e2e", held)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dispatches, err := lksdk.NewAgentDispatchServiceClient(e.lk.URL(), testAPIKey, testAPISecret).
		ListDispatch(ctx, &livekit.ListAgentDispatchRequest{Room: room})
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, dsp := range dispatches.GetAgentDispatches() {
		if dsp.GetAgentName() != "dialstream-e2e-agent" {
			continue
		}
		found = true
		// The dispatch is the agent.dispatch.v1 contract: the variables
		// for the agent's context, and the request's metadata apart from
		// them, byte for byte, for the agent to hand back.
		md, err := schemas.DecodeAgentDispatch(dsp.GetMetadata())
		if err != nil {
			t.Fatalf("dispatch metadata %q: %v", dsp.GetMetadata(), err)
		}
		if md.CallID != held || md.WorkspaceID != "ws_e2e" || md.Room != room || md.DynamicVariables["firstName"] != "Ada" ||
			md.DynamicVariables["Zipcode"] != "94107" || md.Settings["voice"] != "alloy" {
			t.Fatalf("dispatch metadata %+v", md)
		}
		if string(md.Metadata) != `{"crm_id":"c-42","tags":["<vip>"]}` {
			t.Fatalf("dispatch metadata field %s, want the request's metadata as sent", md.Metadata)
		}
	}
	if !found {
		t.Fatalf("no dispatch of dialstream-e2e-agent in %s: %v", room, dispatches)
	}
	produce(t, e.prod, cancelRecord(t, held, "ws_e2e"))
	produce(t, e.prod, cancelRecord(t, blocker, "ws_one"))
	calls[blocker] = want{schemas.OutcomeCanceled, 0, schemas.EndedByClient}

	ids := make([]string, 0, len(calls))
	for id := range calls {
		ids = append(ids, id)
	}
	e.waitEnded(t, 60*time.Second, ids...)
	dials := e.sim.Dials()
	for id, w := range calls {
		evs := e.log.callEvents(t, id)
		checkLifecycle(t, evs, w.outcome)
		end := evs[len(evs)-1]
		if end.SIPStatusCode != w.sip || end.EndedBy != w.by {
			t.Errorf("call %s (%s): sip %d ended_by %s reason %q, want sip %d ended_by %s", id, w.outcome, end.SIPStatusCode, end.EndedBy, end.Reason, w.sip, w.by)
		}
		agent := "agent_e2e"
		switch id {
		case maxDur:
			agent = "agent_short"
		case queued, blocker:
			agent = "agent_one"
		}
		wantDials := 1
		if id == queued {
			wantDials = 0
		}
		if n := dials[roomNameFor(agent, id)]; n != wantDials {
			t.Errorf("call %s (%s): %d dials at the phone network, want %d", id, w.outcome, n, wantDials)
		}
		if string(end.Metadata) != `{"crm_id":"c-42","tags":["<vip>"]}` {
			t.Errorf("call %s: ended event metadata %s", id, end.Metadata)
		}
	}
	// The answered call's events came from LiveKit's webhooks.
	for id, w := range calls {
		if w.outcome != schemas.OutcomeCompleted {
			continue
		}
		evs := e.log.callEvents(t, id)
		if got := statuses(evs); strings.Join(got, ",") != "queued,dialing,ringing,answered,ended:completed" {
			t.Errorf("completed call events %v", got)
		}
		if end := evs[len(evs)-1]; end.DisconnectReason != "CLIENT_INITIATED" || end.TalkDurationSeconds == nil || *end.TalkDurationSeconds < 2 {
			t.Errorf("completed call ended %+v", end)
		}
	}
	if d.metric("dialstream_dialer_livekit_webhooks_total", "result", whAccepted) == 0 {
		t.Error("no LiveKit webhook was accepted")
	}
}
