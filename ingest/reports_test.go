package ingest

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/schemas"
)

var testReportSecret = []byte("test-agent-report-secret-0123456789")

func reportEnv(t testing.TB, now time.Time) *testEnv {
	t.Helper()
	env := newTestEnv(t, func(c *Config) {
		c.AgentReportSecrets = [][]byte{testReportSecret}
		c.AgentReportWindow = 10 * time.Minute
		c.Now = func() time.Time { return now }
	})
	env.clock(now)
	return env
}

func reportPath(id string) string { return "/v1/agent/calls/" + id + "/reports" }

func tokenFor(f fixture, exp time.Time) string {
	return "Bearer " + schemas.MintReportToken(testReportSecret, f.id, f.ws, exp)
}

const resultBody = `{"id":"rep-1","type":"result","at":"2026-03-01T10:00:04Z","result":{"disposition":"conversation","summary":"Ada will call back","data":{"n":12345678901234567890},"transcript":[{"role":"agent","text":"Hello Ada","at":"2026-03-01T10:00:03Z"}]}}`

// An accepted report is one command on the call's partition for the dialer,
// carrying the report as the agent sent it, and a 202 naming it.
func TestAgentReportAccepted(t *testing.T) {
	now := t0.Add(3 * time.Second)
	env := reportEnv(t, now)
	f := demoCall(1, t0)
	env.feed(t, f.request(t, 3, 0))
	env.feed(t, eventRecords(t, f.dialing())...)

	w := env.do(t, req{path: reportPath(f.id), auth: tokenFor(f, now.Add(time.Hour)), body: resultBody})
	if w.Code != 202 {
		t.Fatalf("code %d: %s", w.Code, w.Body)
	}
	assertJSON(t, w.Body.Bytes(), `{"status":"success","message":"report rep-1 (result) accepted for call `+f.id+`","callId":"`+f.id+`","reportId":"rep-1"}`)
	recs := env.p.records()
	if len(recs) != 1 {
		t.Fatalf("%d records written", len(recs))
	}
	r := recs[0]
	if r.Topic != schemas.TopicRequested || string(r.Key) != f.id || kafkax.Header(r, schemas.HeaderType) != schemas.TypeAgentReportReceived {
		t.Fatalf("record %s key %s type %s", r.Topic, r.Key, kafkax.Header(r, schemas.HeaderType))
	}
	ev, err := schemas.Decode(r)
	if err != nil {
		t.Fatal(err)
	}
	var cmd schemas.AgentReportReceived
	if err := json.Unmarshal(ev.Data, &cmd); err != nil {
		t.Fatal(err)
	}
	if cmd.CallID != f.id || cmd.WorkspaceID != "ws_demo" || !cmd.ReceivedAt.Equal(now) || cmd.Report.ID != "rep-1" ||
		string(cmd.Report.Result.Data) != `{"n":12345678901234567890}` {
		t.Fatalf("command %+v data %s", cmd, cmd.Report.Result.Data)
	}
}

// Every refusal names what is wrong and writes nothing.
func TestAgentReportRefusals(t *testing.T) {
	now := t0.Add(time.Hour)
	env := reportEnv(t, now)
	live, other, ended := demoCall(1, t0.Add(50*time.Minute)), demoCall(2, t0.Add(50*time.Minute)), demoCall(3, t0)
	for _, f := range []fixture{live, other, ended} {
		env.feed(t, f.request(t, 3, 0))
	}
	env.feed(t, eventRecords(t, live.dialing())...)
	env.feed(t, eventRecords(t, ended.completed())...) // ended at t0+5s, 55 min before now
	unknown := demoCall(9, t0)
	good := tokenFor(live, now.Add(time.Hour))
	big := `{"id":"big","type":"result","at":"2026-03-01T10:00:04Z","result":{"summary":"` + strings.Repeat("x", maxReportBytes) + `"}}`

	for _, tc := range []struct {
		name, path, auth, contentType, body string
		code                                int
		field                               string
	}{
		{name: "no token", path: reportPath(live.id), auth: "", code: 401},
		{name: "workspace API key", path: reportPath(live.id), auth: "Bearer " + demoKey, code: 401},
		{name: "another call's token", path: reportPath(live.id), auth: tokenFor(other, now.Add(time.Hour)), code: 401},
		{name: "expired token", path: reportPath(live.id), auth: tokenFor(live, now.Add(-time.Second)), code: 401},
		{name: "token under another secret", path: reportPath(live.id),
			auth: "Bearer " + schemas.MintReportToken([]byte("another-secret-0123456789abcdefghij"), live.id, live.ws, now.Add(time.Hour)), code: 401},
		{name: "unknown call", path: reportPath(unknown.id), auth: tokenFor(unknown, now.Add(time.Hour)), code: 404},
		{name: "after the post-call window", path: reportPath(ended.id), auth: tokenFor(ended, now.Add(time.Hour)), code: 409},
		{name: "not JSON", path: reportPath(live.id), auth: good, body: `{"id":`, code: 400},
		{name: "wrong content type", path: reportPath(live.id), auth: good, contentType: "text/plain", body: resultBody, code: 415},
		{name: "unknown type", path: reportPath(live.id), auth: good, body: `{"id":"r","type":"dance","at":"2026-03-01T10:00:04Z"}`, code: 422, field: "type"},
		{name: "answered_by missing its value", path: reportPath(live.id), auth: good, body: `{"id":"r","type":"answered_by","at":"2026-03-01T10:00:04Z"}`, code: 422, field: ""},
		{name: "bad transfer number", path: reportPath(live.id), auth: good,
			body: `{"id":"r","type":"transfer","at":"2026-03-01T10:00:04Z","transfer":{"to":"555"}}`, code: 422, field: "transfer.to"},
		{name: "oversized", path: reportPath(live.id), auth: good, body: big, code: 413},
	} {
		t.Run(tc.name, func(t *testing.T) {
			auth := tc.auth
			if auth == "" {
				auth = "Token none"
			}
			body := tc.body
			if body == "" {
				body = resultBody
			}
			w := env.do(t, req{path: tc.path, auth: auth, contentType: tc.contentType, body: body})
			if w.Code != tc.code {
				t.Fatalf("code %d, want %d: %s", w.Code, tc.code, w.Body)
			}
			r := decodeRefusal(t, w.Body.Bytes())
			if r.Status != "error" || r.Message == "" {
				t.Fatalf("body %s", w.Body)
			}
			if tc.code == 422 {
				if len(r.Errors) == 0 || (tc.field != "" && r.Errors[0].Field != tc.field) {
					t.Fatalf("errors %+v, want field %q", r.Errors, tc.field)
				}
			}
			if tc.code == 401 && w.Header().Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}
	if n := env.p.count(); n != 0 {
		t.Fatalf("%d records written by refused reports", n)
	}
	// Inside the window, the ended call still takes a post-call report.
	env2 := reportEnv(t, t0.Add(5*time.Minute))
	env2.feed(t, ended.request(t, 3, 0))
	env2.feed(t, eventRecords(t, ended.completed())...)
	if w := env2.do(t, req{path: reportPath(ended.id), auth: tokenFor(ended, t0.Add(time.Hour)), body: resultBody}); w.Code != 202 {
		t.Fatalf("post-call report inside the window: code %d: %s", w.Code, w.Body)
	}
}

// A report event shows in GET /v1/api/call/:id with what the agent sent,
// without changing the call's status; answered_by shows on the call.
func TestAgentReportShownOnTheCall(t *testing.T) {
	env := reportEnv(t, t0.Add(time.Hour))
	f := demoCall(1, t0)
	env.feed(t, f.request(t, 3, 0))
	evs := f.completed()
	rep := f.event(6, schemas.StatusAgentReport, t0.Add(6*time.Second))
	at := t0.Add(6 * time.Second)
	rep.Report = &schemas.AgentReport{ID: "r9", Type: schemas.ReportTypeAnsweredBy, At: at, AnsweredBy: schemas.AnsweredByHuman}
	rep.ReportReceivedAt, rep.AnsweredBy = &at, schemas.AnsweredByHuman
	env.feed(t, eventRecords(t, append(evs, rep))...)
	code, body := env.get(t, "/v1/api/call/"+f.id)
	if code != 200 {
		t.Fatalf("code %d: %s", code, body)
	}
	var got CallEnvelope
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	c := got.Call
	if c.Status != schemas.StatusEnded || c.Outcome != schemas.OutcomeCompleted || c.EndedBy != schemas.EndedByCallee ||
		c.Sequence != 6 || c.AnsweredBy != schemas.AnsweredByHuman || len(c.Events) != 6 {
		t.Fatalf("call %s", body)
	}
	last := c.Events[5]
	if last.Status != schemas.StatusAgentReport || last.Type != schemas.TypeCallAgentReport || last.Report == nil || last.Report.ID != "r9" {
		t.Fatalf("report event %+v", last)
	}
}
