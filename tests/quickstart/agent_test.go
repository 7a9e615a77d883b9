package quickstart

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"

	"github.com/dialstream/dialstream/internal/livekitdev"
	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/dialstream/dialstream/schemas"
	"github.com/dialstream/dialstream/tests/testbin"
)

// The agent side of the call, end to end on the whole pipeline `make run`
// starts: the real livekit-server, the phone simulator, and the reference
// agent taking the dispatches, reporting through ingest's report endpoint,
// its reports applied by the dialer and delivered by the notifier.

const (
	demoAgentID     = "a1b2c3d4e5f6a7b8c9d0e1f2" // on_machine: hangup, transfer_to +15550100777
	continueAgentID = "c3d4e5f6a7b8c9d0e1f2a3b4" // on_machine: continue
	reportSecret    = "quickstart-agent-report-secret-0123456789"
	reportWindow    = 30 * time.Second
	// canary is in the request's metadata: it must reach the agent's
	// dispatch and the webhooks, and nothing the callee receives.
	canary = "CANARY-5d1f0b7e-metadata-only"
)

// agentMetadata is sent as is; every webhook must carry exactly these bytes.
const agentMetadata = `{"canary":"` + canary + `","crm":{"id":42,"tags":["<vip>","a&b"]},"n":1.50}`

type callView struct {
	Status     string    `json:"status"`
	Outcome    string    `json:"outcome"`
	AnsweredBy string    `json:"answered_by"`
	EndedBy    string    `json:"ended_by"`
	EndedAt    time.Time `json:"ended_at"`
	RoomName   string    `json:"roomName"`
	Sequence   int       `json:"sequence"`
	Events     []struct {
		Sequence int                  `json:"sequence"`
		Status   string               `json:"status"`
		Report   *schemas.AgentReport `json:"report"`
	} `json:"events"`
}

type dev struct {
	*testbin.Dev
	phonesim string
}

func (d dev) place(t *testing.T, to, agent, first string) (callID, room string) {
	t.Helper()
	body := fmt.Sprintf(`{"to":%q,"call_agent_id":%q,"callback_url":"http://%s/hooks/ws_demo","dynamic_variables":{"firstName":%q},"metadata":%s}`,
		to, agent, d.Inspector, first, agentMetadata)
	code, resp := post(t, "http://"+d.Ingest+"/v1/api/call", "dsk_demo_local", "ws_demo", body)
	if code != http.StatusAccepted {
		t.Fatalf("call to %s: %d %v", to, code, resp)
	}
	return resp["callId"].(string), resp["roomName"].(string)
}

func (d dev) call(t *testing.T, id string) callView {
	t.Helper()
	code, b := send(t, http.MethodGet, "http://"+d.Ingest+"/v1/api/call/"+id, "")
	if code != http.StatusOK {
		t.Fatalf("GET call %s: %d %s", id, code, b)
	}
	var env struct {
		Call callView `json:"call"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		t.Fatal(err)
	}
	return env.Call
}

func (d dev) ended(t *testing.T, id string) callView {
	t.Helper()
	var c callView
	testutil.EventuallyWhy(t, 90*time.Second, "call "+id+" to end", func() (bool, string) {
		c = d.call(t, id)
		return c.Status == "ended", fmt.Sprintf("%+v", c)
	})
	return c
}

// dial is what phonesim recorded for a room, as raw JSON and decoded.
func (d dev) dial(t *testing.T, room string) (string, map[string]any) {
	t.Helper()
	r, err := http.Get("http://" + d.phonesim + "/dials")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	var out struct {
		Dials []json.RawMessage `json:"dials"`
	}
	if err := json.NewDecoder(r.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	for _, raw := range out.Dials {
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		if m["room"] == room {
			return string(raw), m
		}
	}
	t.Fatalf("phonesim has no dial for room %s", room)
	return "", nil
}

type delivery struct {
	WebhookID string          `json:"webhook_id"`
	Type      string          `json:"type"`
	CallID    string          `json:"call_id"`
	Sequence  int             `json:"sequence"`
	Verified  bool            `json:"verified"`
	Body      json.RawMessage `json:"body"`
}

func (d dev) deliveries(t *testing.T, callID string) []delivery {
	t.Helper()
	r, err := http.Get("http://" + d.Inspector + "/?format=json")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	var out struct {
		Deliveries []delivery `json:"deliveries"`
	}
	if err := json.NewDecoder(r.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	var mine []delivery
	for _, x := range out.Deliveries {
		if x.CallID == callID {
			mine = append(mine, x)
		}
	}
	return mine
}

// payload decodes a webhook body, keeping data.metadata as the bytes sent.
type payload struct {
	Type string `json:"type"`
	Data struct {
		Sequence   int                  `json:"sequence"`
		AnsweredBy string               `json:"answered_by"`
		Report     *schemas.AgentReport `json:"report"`
		Metadata   json.RawMessage      `json:"metadata"`
	} `json:"data"`
}

func reportPOST(t *testing.T, ingest, callID, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+ingest+"/v1/agent/calls/"+callID+"/reports", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return r.StatusCode, string(b)
}

func TestAgentEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole pipeline")
	}
	lkAddr := testbin.FreeAddr(t)
	_, lkPort, _ := net.SplitHostPort(lkAddr)
	d := dev{phonesim: testbin.FreeAddr(t)}
	d.Dev = testbin.StartDev(t, map[string]string{"PHONESIM_HTTP_ADDR": d.phonesim, "DEV_LIVEKIT_PORT": lkPort,
		"DIALSTREAM_AGENT_REPORT_SECRET": reportSecret, "DIALSTREAM_AGENT_REPORT_WINDOW": reportWindow.String()})

	// A person answers (+15550100200): the agent greets Grace by name, the
	// person replies, the agent reports answered_by human and a result.
	callID, room := d.place(t, "+15550100200", demoAgentID, "Grace")

	// While the call lives, LiveKit holds the agent's dispatch: the
	// agent.dispatch.v1 contract, with the metadata in its own field.
	dispatches := lksdk.NewAgentDispatchServiceClient(d.LiveKit, livekitdev.DefaultAPIKey, livekitdev.DefaultAPISecret)
	var disp schemas.AgentDispatch
	testutil.EventuallyWhy(t, 20*time.Second, "the agent's dispatch in LiveKit", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err := dispatches.ListDispatch(ctx, &livekit.ListAgentDispatchRequest{Room: room})
		if err != nil {
			return false, err.Error()
		}
		for _, x := range res.GetAgentDispatches() {
			if x.GetAgentName() == "dialstream-demo-agent" {
				if disp, err = schemas.DecodeAgentDispatch(x.GetMetadata()); err != nil {
					t.Fatalf("dispatch metadata does not meet agent.dispatch.v1: %v: %s", err, x.GetMetadata())
				}
				return true, ""
			}
		}
		return false, fmt.Sprint(res.GetAgentDispatches())
	})
	if disp.CallID != callID || disp.Room != room || disp.DynamicVariables["firstName"] != "Grace" || string(disp.Metadata) != agentMetadata ||
		disp.Report == nil || !strings.HasSuffix(disp.Report.URL, "/v1/agent/calls/"+callID+"/reports") || disp.Report.Token == "" {
		t.Fatalf("dispatch %+v (metadata %s)", disp, disp.Metadata)
	}
	for k, v := range disp.DynamicVariables {
		if strings.Contains(k+v, canary) {
			t.Fatalf("the metadata's canary is in the agent's context variables: %v", disp.DynamicVariables)
		}
	}

	first := d.ended(t, callID)
	if first.Outcome != "completed" || first.AnsweredBy != "human" {
		t.Fatalf("person's call ended %+v", first)
	}

	// Post-call: a report after the end is one more event, with the next
	// sequence; sent again with the same id it is still one event.
	tok := schemas.MintReportToken([]byte(reportSecret), callID, "ws_demo", time.Now().Add(10*time.Minute))
	postCall := `{"id":"post-call-1","type":"result","at":"` + time.Now().UTC().Format(time.RFC3339) + `","result":{"disposition":"callback_requested","summary":"Grace asked to be called on Friday.","data":{"when":"friday"}}}`
	for range 2 {
		if code, b := reportPOST(t, d.Ingest, callID, tok, postCall); code != http.StatusAccepted {
			t.Fatalf("post-call report: %d %s", code, b)
		}
	}
	// The person asked not to be called again: the agent's opt-out puts
	// the number on the do-not-call list, and the next call to it is
	// refused at ingest, naming the reason.
	optOut := `{"id":"opt-out","type":"result","at":"` + time.Now().UTC().Format(time.RFC3339) + `","result":{"disposition":"do_not_call","opt_out":true}}`
	if code, b := reportPOST(t, d.Ingest, callID, tok, optOut); code != http.StatusAccepted {
		t.Fatalf("opt-out report: %d %s", code, b)
	}
	testutil.EventuallyWhy(t, 20*time.Second, "the number on the do-not-call list", func() (bool, string) {
		code, b := send(t, http.MethodGet, "http://"+d.Ingest+"/v1/api/suppressions/+15550100200", "")
		return code == http.StatusOK && strings.Contains(string(b), `"reason":"opt_out"`), fmt.Sprintf("%d %s", code, b)
	})
	code, resp := post(t, "http://"+d.Ingest+"/v1/api/call", "dsk_demo_local", "ws_demo", `{"to":"+15550100200","call_agent_id":"`+demoAgentID+`"}`)
	if code != http.StatusUnprocessableEntity || resp["rule"] != "suppressed" || !strings.Contains(fmt.Sprint(resp["message"]), "opt_out") {
		t.Fatalf("call to the opted-out number: %d %v", code, resp)
	}
	if n := dialsTo(t, d.phonesim, "+15550100200"); n != 1 {
		t.Errorf("phonesim saw %d dials to the opted-out number, want the first call's 1", n)
	}

	for _, bad := range []struct {
		name, token, body string
		code              int
	}{
		{"no token", "", postCall, 401},
		{"workspace API key", "dsk_demo_local", postCall, 401},
		{"another call's token", schemas.MintReportToken([]byte(reportSecret), "0123456789abcdef01234567", "ws_demo", time.Now().Add(time.Hour)), postCall, 401},
		{"schema-invalid", tok, `{"id":"x","type":"answered_by","at":"2026-01-01T00:00:00Z","answered_by":"robot"}`, 422},
	} {
		if code, b := reportPOST(t, d.Ingest, callID, bad.token, bad.body); code != bad.code {
			t.Errorf("%s: %d %s, want %d", bad.name, code, b, bad.code)
		}
	}

	// Voicemail under both policies, and a transfer, at once.
	type want struct {
		to, agent, outcome, answeredBy string
	}
	cases := []want{
		{"+15550100300", demoAgentID, "voicemail", "machine"},
		{"+15550100300", continueAgentID, "completed", "machine"},
		{"+15550100302", demoAgentID, "transferred", "human"},
	}
	ids, rooms := make([]string, len(cases)), make([]string, len(cases))
	for i, c := range cases {
		ids[i], rooms[i] = d.place(t, c.to, c.agent, "Ada")
	}

	// Meanwhile the person's call: the callee heard the greeting with
	// Grace's name, and nothing it received carries the canary.
	raw, dial := d.dial(t, room)
	heard, _ := dial["heard"].(map[string]any)
	if g, _ := heard["greeting"].(string); !strings.Contains(g, "Hello Grace") {
		t.Errorf("greeting %q does not name Grace", g)
	}
	if n, _ := heard["audioPackets"].(float64); n == 0 {
		t.Error("the callee received no agent audio")
	}
	if strings.Contains(raw, canary) {
		t.Errorf("the metadata reached the callee: %s", raw)
	}
	// Every webhook of the call is signed and carries the metadata as
	// sent, byte for byte; the agent's reports are among them, the
	// post-call one once, with the sequence after the end.
	var reports map[string][]payload
	testutil.EventuallyWhy(t, 30*time.Second, "the post-call report's webhook", func() (bool, string) {
		reports = map[string][]payload{}
		for _, x := range d.deliveries(t, callID) {
			var p payload
			if err := json.Unmarshal(x.Body, &p); err != nil {
				t.Fatal(err)
			}
			// The inspector shows bodies indented: compacting keeps key
			// order and number spelling, so this still compares the bytes.
			var meta bytes.Buffer
			_ = json.Compact(&meta, p.Data.Metadata)
			if !x.Verified || meta.String() != agentMetadata {
				t.Fatalf("delivery %s: verified %v, metadata %s", x.WebhookID, x.Verified, p.Data.Metadata)
			}
			if p.Type == "call.agent_report" {
				reports[p.Data.Report.ID] = append(reports[p.Data.Report.ID], p)
			}
		}
		return len(reports["post-call-1"]) > 0, fmt.Sprint(len(reports))
	})
	if got := reports["post-call-1"][0]; got.Data.Sequence <= first.Sequence || got.Data.Report.Result.Summary != "Grace asked to be called on Friday." {
		t.Errorf("post-call webhook %+v (the call had reached sequence %d at its end)", got.Data, first.Sequence)
	}
	if ab := reports["answered_by"]; len(ab) != 1 || ab[0].Data.AnsweredBy != "human" {
		t.Errorf("answered_by webhooks %+v", ab)
	}
	if res := reports["result"]; len(res) != 1 || len(res[0].Data.Report.Result.Transcript) == 0 {
		t.Errorf("the agent's result webhook %+v", res)
	}

	var wg sync.WaitGroup
	for i, c := range cases {
		wg.Go(func() {
			got := d.ended(t, ids[i])
			if got.Outcome != c.outcome || got.AnsweredBy != c.answeredBy || got.EndedBy != "agent" {
				t.Errorf("%s with agent %s: ended %s, answered_by %s, ended_by %s; want %s, %s, agent",
					c.to, c.agent, got.Outcome, got.AnsweredBy, got.EndedBy, c.outcome, c.answeredBy)
			}
		})
	}
	wg.Wait()
	if _, dial := d.dial(t, rooms[2]); dial["transferredTo"] != "tel:+15550100777" {
		t.Errorf("transfer: phonesim saw transferredTo %v", dial["transferredTo"])
	}

	// The retried post-call report stayed one event.
	n := 0
	for _, ev := range d.call(t, callID).Events {
		if ev.Report != nil && ev.Report.ID == "post-call-1" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("post-call report sent twice made %d events", n)
	}
	// After the window, a report is 409 and changes nothing.
	testutil.Eventually(t, reportWindow+10*time.Second, "the post-call window to close", func() bool {
		return time.Now().After(first.EndedAt.Add(reportWindow + time.Second))
	})
	before := d.call(t, callID).Sequence
	late := bytes.Replace([]byte(postCall), []byte("post-call-1"), []byte("too-late"), 1)
	if code, b := reportPOST(t, d.Ingest, callID, tok, string(late)); code != http.StatusConflict {
		t.Errorf("report after the window: %d %s, want 409", code, b)
	}
	if after := d.call(t, callID).Sequence; after != before {
		t.Errorf("a refused report moved the call from sequence %d to %d", before, after)
	}
}
