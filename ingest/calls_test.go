package ingest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/dialstream/dialstream/schemas"
)

// A finished call, as GET shows it: every field, exactly.
func TestGetCallLifecycle(t *testing.T) {
	forEngines(t, func(t *testing.T, env *testEnv) {
		env.clock(t0.Add(time.Hour))
		f := demoCall(1, t0)
		env.feed(t, f.request(t, 2, 41))
		env.feed(t, eventRecords(t, f.completed())...)
		code, body := env.get(t, "/v1/api/call/"+f.id)
		if code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		id := f.id
		assertJSON(t, []byte(body), `{"status":"success","call":{
	  "callId":"`+id+`","status":"ended","outcome":"completed","to":"+15550100001",
	  "call_agent_id":"`+demoAgent+`","roomName":"`+demoAgent+`-room000001","jobId":"2-41",
	  "callback_url":"https://example.com/hooks","sequence":5,
	  "requested_at":"2026-03-01T10:00:00Z","queued_at":"2026-03-01T10:00:00.01Z","dialing_at":"2026-03-01T10:00:00.02Z",
	  "ringing_at":"2026-03-01T10:00:01Z","answered_at":"2026-03-01T10:00:02Z","ended_at":"2026-03-01T10:00:05Z",
	  "ended_by":"callee","reason":"the callee left the call","disconnect_reason":"CLIENT_INITIATED",
	  "ring_duration_seconds":1,"talk_duration_seconds":3,
	  "dynamic_variables":{"firstName":"Ada"},"metadata":{"crm_id":"42"},
	  "events":[
	    {"id":"`+id+`-1","type":"dialstream.call.queued.v1","sequence":1,"status":"queued","occurred_at":"2026-03-01T10:00:00.01Z"},
	    {"id":"`+id+`-2","type":"dialstream.call.dialing.v1","sequence":2,"status":"dialing","occurred_at":"2026-03-01T10:00:00.02Z"},
	    {"id":"`+id+`-3","type":"dialstream.call.ringing.v1","sequence":3,"status":"ringing","occurred_at":"2026-03-01T10:00:01Z"},
	    {"id":"`+id+`-4","type":"dialstream.call.answered.v1","sequence":4,"status":"answered","occurred_at":"2026-03-01T10:00:02Z"},
	    {"id":"`+id+`-5","type":"dialstream.call.ended.v1","sequence":5,"status":"ended","occurred_at":"2026-03-01T10:00:05Z",
	     "outcome":"completed","ended_by":"callee","reason":"the callee left the call","disconnect_reason":"CLIENT_INITIATED",
	     "ring_duration_seconds":1,"talk_duration_seconds":3}
	  ]}}`)
	})
}

// The raw SIP facts of a failed dial, and a masked workspace's number.
func TestGetCallBusyMasked(t *testing.T) {
	forEngines(t, func(t *testing.T, env *testEnv) {
		env.clock(t0.Add(time.Hour))
		f := fixture{id: "00000000000000000000beef", ws: "ws_masked", agent: "masked_agent", to: "+15550100486",
			room: "masked_agent-abcdefghij", at: t0}
		env.feed(t, f.request(t, 0, 7))
		env.feed(t, eventRecords(t, f.busy())...)
		w := env.do(t, req{method: "GET", path: "/v1/api/call/" + f.id, key: maskedKey, workspace: "ws_masked"})
		if w.Code != 200 {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		id := f.id
		assertJSON(t, w.Body.Bytes(), `{"status":"success","call":{
	  "callId":"`+id+`","status":"ended","outcome":"busy","to":"********0486",
	  "call_agent_id":"masked_agent","roomName":"masked_agent-abcdefghij","jobId":"0-7","sequence":4,
	  "requested_at":"2026-03-01T10:00:00Z","queued_at":"2026-03-01T10:00:00.01Z","dialing_at":"2026-03-01T10:00:00.02Z",
	  "ringing_at":"2026-03-01T10:00:00.5Z","ended_at":"2026-03-01T10:00:02Z",
	  "ended_by":"callee","reason":"sip status 486: Busy Here","sip_status_code":486,"sip_status":"Busy Here",
	  "ring_duration_seconds":1.5,
	  "events":[
	    {"id":"`+id+`-1","type":"dialstream.call.queued.v1","sequence":1,"status":"queued","occurred_at":"2026-03-01T10:00:00.01Z"},
	    {"id":"`+id+`-2","type":"dialstream.call.dialing.v1","sequence":2,"status":"dialing","occurred_at":"2026-03-01T10:00:00.02Z"},
	    {"id":"`+id+`-3","type":"dialstream.call.ringing.v1","sequence":3,"status":"ringing","occurred_at":"2026-03-01T10:00:00.5Z"},
	    {"id":"`+id+`-4","type":"dialstream.call.ended.v1","sequence":4,"status":"ended","occurred_at":"2026-03-01T10:00:02Z",
	     "outcome":"busy","ended_by":"callee","reason":"sip status 486: Busy Here","sip_status_code":486,"sip_status":"Busy Here",
	     "ring_duration_seconds":1.5}
	  ]}}`)
		if strings.Contains(w.Body.String(), "0100486") {
			t.Fatal("the full number leaked")
		}
	})
}

// Read-your-writes: the call ingest just accepted is visible at once as
// queued, with what was sent; its events merge in by sequence later, in any
// arrival order, replays changing nothing.
func TestGetCallReadYourWrites(t *testing.T) {
	forEngines(t, func(t *testing.T, env *testEnv) {
		w := env.do(t, req{idemKey: "ryw", body: `{"to":"+15550100001","call_agent_id":"` + demoAgent + `",` +
			`"callback_url":"https://example.com/h","dynamic_variables":{"firstName":"Ada"},"metadata":{"crm":{"id":7}}}`})
		if w.Code != 202 {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		var acc CallResponse
		_ = json.Unmarshal(w.Body.Bytes(), &acc)
		data := decodeData(t, env.p.records()[0])
		code, body := env.get(t, "/v1/api/call/"+acc.CallID)
		if code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		want := CallEnvelope{Status: "success", Call: Call{
			CallSummary: CallSummary{CallID: acc.CallID, Status: schemas.StatusQueued, To: "+15550100001", CallAgentID: demoAgent,
				RoomName: acc.RoomName, JobID: acc.JobID, CallbackURL: "https://example.com/h", RequestedAt: data.RequestedAt},
			DynamicVariables: map[string]string{"firstName": "Ada"}, Metadata: json.RawMessage(`{"crm":{"id":7}}`),
			Events: []CallEventView{},
		}}
		assertJSON(t, []byte(body), mustJSON(t, want))

		// The dialer's events arrive out of order and twice; the request is
		// read back from Kafka (same record: nothing changes).
		f := fixture{id: acc.CallID, ws: "ws_demo", agent: demoAgent, to: "+15550100001", room: acc.RoomName,
			callback: "https://example.com/h", at: data.RequestedAt, meta: `{"crm":{"id":7}}`}
		evs := eventRecords(t, f.dialing())
		env.feed(t, evs[1], evs[0])
		if env.write(t, evs[1]) {
			t.Fatal("a replayed event changed the records")
		}
		if !env.write(t, env.p.records()[0]) {
			t.Fatal("the request read back from Kafka did not replace the replica's own write")
		}
		_, body = env.get(t, "/v1/api/call/"+acc.CallID)
		var got CallEnvelope
		_ = json.Unmarshal([]byte(body), &got)
		if got.Call.Status != schemas.StatusDialing || got.Call.Sequence != 2 || len(got.Call.Events) != 2 ||
			got.Call.Events[0].Sequence != 1 || got.Call.Events[1].Sequence != 2 || got.Call.JobID != acc.JobID ||
			got.Call.DynamicVariables["firstName"] != "Ada" {
			t.Fatalf("after events: %s", body)
		}
	})
}

// A call whose request is older than what the replica read (its retention
// bound on start) is shown from its events; jobId and dynamic_variables,
// which only the request holds, are absent.
func TestGetCallFromEventsOnly(t *testing.T) {
	forEngines(t, func(t *testing.T, env *testEnv) {
		env.clock(t0.Add(time.Hour))
		f := demoCall(3, t0)
		env.feed(t, eventRecords(t, f.busy())...)
		_, body := env.get(t, "/v1/api/call/"+f.id)
		var got CallEnvelope
		_ = json.Unmarshal([]byte(body), &got)
		c := got.Call
		if c.JobID != "" || c.DynamicVariables != nil || c.To != f.to || c.RoomName != f.room || c.CallAgentID != demoAgent ||
			string(c.Metadata) != f.meta || !c.RequestedAt.Equal(t0) || c.Outcome != schemas.OutcomeBusy || len(c.Events) != 4 {
			t.Fatalf("%s", body)
		}
	})
}

func TestGetCallNotFound(t *testing.T) {
	forEngines(t, func(t *testing.T, env *testEnv) {
		for _, id := range []string{"000000000000000000000000", "not-an-id", strings.Repeat("x", 100)} {
			code, body := env.get(t, "/v1/api/call/"+id)
			if code != 404 {
				t.Fatalf("%s: %d", id, code)
			}
			assertJSON(t, []byte(body), errBody(t, "call "+schemas.Clip(id, 64)+" not found"))
		}
	})
}

// listFixture fills ws_demo with n calls a second apart (call i requested at
// t0+i s) in a mix of states, plus calls of other workspaces.
func listFixture(t *testing.T, env *testEnv, n int) []fixture {
	env.clock(t0.Add(time.Hour))
	var fs []fixture
	for i := range n {
		f := demoCall(i, t0.Add(time.Duration(i)*time.Second))
		if i%3 == 2 {
			f.agent = "agent_b"
			f.room = "agent_b-" + f.room[len(demoAgent)+1:]
		}
		env.feed(t, f.request(t, int32(i%3), int64(i)))
		switch i % 4 {
		case 1:
			env.feed(t, eventRecords(t, f.dialing())...)
		case 2:
			env.feed(t, eventRecords(t, f.completed())...)
		case 3:
			env.feed(t, eventRecords(t, f.busy())...)
		}
		fs = append(fs, f)
	}
	o := demoCall(999, t0.Add(time.Second))
	o.ws, o.agent, o.room = "ws_other", otherAgent, otherAgent+"-zzzzzzzzzz"
	env.feed(t, o.request(t, 0, 999))
	return fs
}

type listed struct {
	Status     string        `json:"status"`
	Calls      []CallSummary `json:"calls"`
	NextCursor string        `json:"next_cursor"`
}

func (e *testEnv) list(t *testing.T, query string) listed {
	t.Helper()
	code, body := e.get(t, "/v1/api/calls?"+query)
	if code != 200 {
		t.Fatalf("list %s: %d %s", query, code, body)
	}
	var l listed
	if err := json.Unmarshal([]byte(body), &l); err != nil {
		t.Fatal(err)
	}
	return l
}

func ids(cs []CallSummary) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.CallID
	}
	return out
}

func fixtureIDs(fs []fixture, keep func(i int) bool) []string {
	var out []string
	for i := len(fs) - 1; i >= 0; i-- {
		if keep(i) {
			out = append(out, fs[i].id)
		}
	}
	return out
}

// Newest first; every filter; exact summaries.
func TestListCalls(t *testing.T) {
	forEngines(t, func(t *testing.T, env *testEnv) {
		fs := listFixture(t, env, 12)

		all := env.list(t, "")
		if want := fixtureIDs(fs, func(int) bool { return true }); !slices.Equal(ids(all.Calls), want) || all.NextCursor != "" {
			t.Fatalf("all: %v, cursor %q; want %v", ids(all.Calls), all.NextCursor, want)
		}
		// One summary exactly: call 10 (i%4 == 2: completed, agent demoAgent... 10%3 == 1).
		f := fs[10]
		var s CallSummary
		for _, c := range all.Calls {
			if c.CallID == f.id {
				s = c
			}
		}
		assertJSON(t, []byte(mustJSON(t, s)), `{"callId":"`+f.id+`","status":"ended","outcome":"completed","to":"+15550100001",
	  "call_agent_id":"`+demoAgent+`","roomName":"`+f.room+`","jobId":"1-10","callback_url":"https://example.com/hooks","sequence":5,
	  "requested_at":"2026-03-01T10:00:10Z","queued_at":"2026-03-01T10:00:10.01Z","dialing_at":"2026-03-01T10:00:10.02Z",
	  "ringing_at":"2026-03-01T10:00:11Z","answered_at":"2026-03-01T10:00:12Z","ended_at":"2026-03-01T10:00:15Z",
	  "ended_by":"callee","reason":"the callee left the call","disconnect_reason":"CLIENT_INITIATED",
	  "ring_duration_seconds":1,"talk_duration_seconds":3}`)

		for _, tc := range []struct {
			query string
			keep  func(i int) bool
		}{
			{"status=queued", func(i int) bool { return i%4 == 0 }},
			{"status=dialing", func(i int) bool { return i%4 == 1 }},
			{"status=ended", func(i int) bool { return i%4 >= 2 }},
			{"outcome=busy", func(i int) bool { return i%4 == 3 }},
			{"outcome=completed&status=ended", func(i int) bool { return i%4 == 2 }},
			{"call_agent_id=agent_b", func(i int) bool { return i%3 == 2 }},
			{"call_agent_id=agent_b&outcome=busy", func(i int) bool { return i%3 == 2 && i%4 == 3 }},
			{"from=2026-03-01T10:00:03Z&to=2026-03-01T10:00:07Z", func(i int) bool { return i >= 3 && i < 7 }},
			{"from=2026-03-01T11:00:03%2B01:00", func(i int) bool { return i >= 3 }},
			{"to=2026-03-01T10:00:00.5Z", func(i int) bool { return i == 0 }},
			{"status=answered", func(int) bool { return false }},
		} {
			got := env.list(t, tc.query)
			if want := fixtureIDs(fs, tc.keep); !slices.Equal(ids(got.Calls), want) || got.NextCursor != "" {
				t.Errorf("%s: %v, want %v", tc.query, ids(got.Calls), want)
			}
		}
		// Another workspace sees only its own.
		w := env.do(t, req{method: "GET", path: "/v1/api/calls", key: otherKey, workspace: "ws_other"})
		var other listed
		_ = json.Unmarshal(w.Body.Bytes(), &other)
		if len(other.Calls) != 1 || other.Calls[0].CallID != demoCall(999, t0).id {
			t.Fatalf("ws_other: %s", w.Body)
		}
		// An empty workspace: an empty list, not null.
		w = env.do(t, req{method: "GET", path: "/v1/api/calls", key: maskedKey, workspace: "ws_masked"})
		assertJSON(t, w.Body.Bytes(), `{"status":"success","calls":[]}`)
	})
}

// Paging: limit, an opaque cursor, and a stable order while calls arrive
// (newer ones, and with filters too): no call twice, none skipped.
func TestListCallsPaging(t *testing.T) {
	forEngines(t, func(t *testing.T, env *testEnv) {
		fs := listFixture(t, env, 10)
		var seen []string
		cursor := ""
		for page := 0; ; page++ {
			q := "limit=3"
			if cursor != "" {
				q += "&cursor=" + cursor
			}
			l := env.list(t, q)
			seen = append(seen, ids(l.Calls)...)
			// Between pages, new calls arrive (newer than every listed one),
			// and a listed call changes state.
			nf := demoCall(100+page, t0.Add(time.Minute+time.Duration(page)*time.Second))
			env.feed(t, nf.request(t, 0, int64(100+page)))
			if page == 0 {
				env.feed(t, eventRecords(t, fs[0].dialing())...)
			}
			if l.NextCursor == "" {
				if len(l.Calls) > 3 {
					t.Fatalf("page of %d", len(l.Calls))
				}
				break
			}
			if len(l.Calls) != 3 {
				t.Fatalf("page %d has %d calls", page, len(l.Calls))
			}
			cursor = l.NextCursor
			if page > 10 {
				t.Fatal("paging does not end")
			}
		}
		if want := fixtureIDs(fs, func(int) bool { return true }); !slices.Equal(seen, want) {
			t.Fatalf("pages gave %v\nwant %v", seen, want)
		}
		// With a filter (4 calls ended): a page that ends at the last match has
		// no cursor.
		if l := env.list(t, "limit=3&status=ended"); len(l.Calls) != 3 || l.NextCursor == "" {
			t.Fatalf("%+v", l)
		} else if l2 := env.list(t, "limit=3&status=ended&cursor="+l.NextCursor); len(l2.Calls) != 1 || l2.NextCursor != "" {
			t.Fatalf("second page %+v", l2)
		}
		if l := env.list(t, "limit=4&status=ended"); len(l.Calls) != 4 || l.NextCursor != "" {
			t.Fatalf("exact page %+v", l)
		}
		// The new calls show on a fresh first page, newest first.
		first := env.list(t, "limit=2")
		if first.Calls[0].CallID != demoCall(103, t0).id {
			t.Fatalf("fresh first page %v", ids(first.Calls))
		}
	})
}

func TestListCallsQueryErrors(t *testing.T) {
	env := newTestEnv(t)
	one := func(field, msg string) string {
		return errBody(t, "invalid query parameter "+field+": "+msg, fe(field, msg))
	}
	for _, tc := range []struct{ query, want string }{
		{"status=done", one("status", `must be one of queued, dialing, ringing, answered, ended; got "done"`)},
		{"outcome=ok", one("outcome", `must be one of completed, busy, no_answer, declined, failed, canceled, rejected, expired, max_duration, voicemail, transferred, suppressed, outside_calling_hours, attempt_capped, destination_not_allowed; got "ok"`)},
		{"call_agent_id=a%20b", one("call_agent_id", "must be 1 to 64 letters, digits, _ or -")},
		{"from=yesterday", one("from", `must be an RFC 3339 timestamp, e.g. 2026-01-02T15:04:05Z; got "yesterday"`)},
		{"from=2026-03-02T00:00:00Z&to=2026-03-01T00:00:00Z", one("to", "must be later than from")},
		{"limit=0", one("limit", `must be an integer from 1 to 200; got "0"`)},
		{"limit=201", one("limit", `must be an integer from 1 to 200; got "201"`)},
		{"cursor=abc", one("cursor", "is not a cursor this API returned; pass next_cursor from the previous page as it is")},
		{"agent=x", one("agent", "unknown query parameter; the parameters are status, outcome, call_agent_id, from, to, limit, cursor")},
		{"status=queued&status=ended", one("status", "appears more than once; send each parameter once")},
		{"limit=x&status=y", errBody(t, "the request has 2 invalid query parameters; see errors",
			fe("limit", `must be an integer from 1 to 200; got "x"`),
			fe("status", `must be one of queued, dialing, ringing, answered, ended; got "y"`))},
	} {
		code, body := env.get(t, "/v1/api/calls?"+tc.query)
		if code != 400 {
			t.Fatalf("%s: %d %s", tc.query, code, body)
		}
		assertJSON(t, []byte(body), tc.want)
	}
}

// Cancel writes the command the dialer honors and answers with the call.
func TestCancelCall(t *testing.T) {
	forEngines(t, func(t *testing.T, env *testEnv) {
		env.clock(t0.Add(time.Hour))
		f := demoCall(1, t0)
		env.feed(t, f.request(t, 1, 5))
		env.feed(t, eventRecords(t, f.dialing())...)
		before := time.Now()
		w := env.do(t, req{path: "/v1/api/call/" + f.id + "/cancel", body: `{"reason":"customer asked"}`})
		if w.Code != 202 {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		recs := env.p.records()
		if len(recs) != 1 {
			t.Fatalf("%d records", len(recs))
		}
		r := recs[0]
		if r.Topic != schemas.TopicRequested || string(r.Key) != f.id || kafkax.Header(r, schemas.HeaderType) != schemas.TypeCallCancel ||
			kafkax.Header(r, schemas.HeaderSource) != EventSource || kafkax.Header(r, schemas.HeaderSubject) != f.id {
			t.Fatalf("record %s %s %v", r.Topic, r.Key, r.Headers)
		}
		ev, err := schemas.Decode(r)
		if err != nil {
			t.Fatal(err)
		}
		var cc schemas.CallCancel
		_ = json.Unmarshal(ev.Data, &cc)
		if cc.CallID != f.id || cc.WorkspaceID != "ws_demo" || cc.Reason != "customer asked" || cc.RequestedAt.Before(before.Add(-time.Second)) {
			t.Fatalf("cancel %+v", cc)
		}
		id := f.id
		assertJSON(t, w.Body.Bytes(), `{"status":"success",
	  "message":"cancel of call `+id+` requested; the call ends with outcome canceled unless it ends otherwise first",
	  "call":{"callId":"`+id+`","status":"dialing","to":"+15550100001","call_agent_id":"`+demoAgent+`",
	    "roomName":"`+f.room+`","jobId":"1-5","callback_url":"https://example.com/hooks","sequence":2,
	    "requested_at":"2026-03-01T10:00:00Z","queued_at":"2026-03-01T10:00:00.01Z","dialing_at":"2026-03-01T10:00:00.02Z",
	    "cancel_requested_at":"`+cc.RequestedAt.Format(time.RFC3339Nano)+`",
	    "dynamic_variables":{"firstName":"Ada"},"metadata":{"crm_id":"42"},
	    "events":[
	      {"id":"`+id+`-1","type":"dialstream.call.queued.v1","sequence":1,"status":"queued","occurred_at":"2026-03-01T10:00:00.01Z"},
	      {"id":"`+id+`-2","type":"dialstream.call.dialing.v1","sequence":2,"status":"dialing","occurred_at":"2026-03-01T10:00:00.02Z"}]}}`)

		// Without a body (and without a Content-Type) too.
		g := demoCall(2, t0)
		env.feed(t, g.request(t, 1, 6))
		if w := env.do(t, req{path: "/v1/api/call/" + g.id + "/cancel", contentType: "-"}); w.Code != 202 {
			t.Fatalf("no body: %d %s", w.Code, w.Body)
		}
		if d := decodeCancel(t, env.p.records()[1]); d.Reason != "" || d.CallID != g.id {
			t.Fatalf("%+v", d)
		}
	})
}

func decodeCancel(t *testing.T, r *kgo.Record) schemas.CallCancel {
	t.Helper()
	ev, err := schemas.Decode(r)
	if err != nil {
		t.Fatal(err)
	}
	var cc schemas.CallCancel
	if err := json.Unmarshal(ev.Data, &cc); err != nil {
		t.Fatal(err)
	}
	return cc
}

var errBrokerDown = errors.New("kafka: broker down")

// A call that already ended: 409 with the call and its outcome; nothing is
// written.
func TestCancelEndedCall(t *testing.T) {
	forEngines(t, func(t *testing.T, env *testEnv) {
		env.clock(t0.Add(time.Hour))
		f := demoCall(1, t0)
		env.feed(t, f.request(t, 1, 5))
		env.feed(t, eventRecords(t, f.busy())...)
		w := env.do(t, req{path: "/v1/api/call/" + f.id + "/cancel"})
		if w.Code != 409 {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		var call CallEnvelope
		_, body := env.get(t, "/v1/api/call/"+f.id)
		_ = json.Unmarshal([]byte(body), &call)
		assertJSON(t, w.Body.Bytes(), mustJSON(t, ErrorResponse{Status: "error",
			Message: "call " + f.id + " already ended with outcome busy; there is nothing to cancel", Call: &call.Call}))
		if n := len(env.p.records()); n != 0 {
			t.Fatalf("%d records written", n)
		}
	})
}

func TestCancelRequestErrors(t *testing.T) {
	forEngines(t, func(t *testing.T, env *testEnv) {
		env.clock(t0.Add(time.Hour))
		f := demoCall(1, t0)
		env.feed(t, f.request(t, 1, 5))
		path := "/v1/api/call/" + f.id + "/cancel"
		for _, tc := range []struct {
			r    req
			code int
			want string
		}{
			{req{path: path, body: `{"reason":7}`}, 422, errBody(t, "invalid field reason: must be a string, got a number", fe("reason", "must be a string, got a number"))},
			{req{path: path, body: `{"reason":"` + strings.Repeat("x", 513) + `"}`}, 422, errBody(t, "invalid field reason: must be at most 512 characters", fe("reason", "must be at most 512 characters"))},
			{req{path: path, body: `{"why":"x"}`}, 422, errBody(t, "invalid field why: unknown field; the fields are reason", fe("why", "unknown field; the fields are reason"))},
			{req{path: path, body: `{"reason":`}, 400, errBody(t, "malformed JSON at byte 10: unexpected end of JSON input")},
			{req{path: path, body: `[]`}, 400, errBody(t, "request body must be a JSON object, got an array")},
			{req{path: path, body: `reason=x`, contentType: "application/x-www-form-urlencoded"}, 415, errBody(t, "Content-Type must be application/json, got application/x-www-form-urlencoded")},
			{req{path: path, body: `{"reason":"x"}`, contentType: "-"}, 415, errBody(t, "Content-Type must be application/json, got none")},
			{req{path: "/v1/api/call/000000000000000000000000/cancel"}, 404, errBody(t, "call 000000000000000000000000 not found")},
			{req{path: path, key: "-"}, 401, errBody(t, "missing API key: send the header Authorization: Bearer <api key>")},
		} {
			w := env.do(t, tc.r)
			if w.Code != tc.code {
				t.Fatalf("%+v: %d %s", tc.r, w.Code, w.Body)
			}
			assertJSON(t, w.Body.Bytes(), tc.want)
		}
		if n := len(env.p.records()); n != 0 {
			t.Fatalf("%d records written by refused cancels", n)
		}
		// Kafka refusing: 503, and the call shows no cancel.
		env.p.err = errBrokerDown
		w := env.do(t, req{path: path})
		if w.Code != 503 || w.Header().Get("Retry-After") != "2" {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		assertJSON(t, w.Body.Bytes(), errBody(t, "the cancel was not written: Kafka did not acknowledge it within 2s; retry later (a repeated cancel is harmless)"))
		if _, body := env.get(t, "/v1/api/call/"+f.id); strings.Contains(body, "cancel_requested_at") {
			t.Fatalf("%s", body)
		}
	})
}

// Every webhook attempt of the call, in log order, exactly.
func TestDeliveries(t *testing.T) {
	forEngines(t, func(t *testing.T, env *testEnv) {
		env.clock(t0.Add(time.Hour))
		f := demoCall(1, t0)
		env.feed(t, f.request(t, 1, 5))
		env.feed(t, eventRecords(t, f.busy())...)
		next := t0.Add(6 * time.Second)
		a1 := f.attempt(1, schemas.StatusQueued, 1, t0.Add(time.Second), 503, "", schemas.WebhookRetry)
		a1.NextAttemptAt = &next
		a2 := f.attempt(1, schemas.StatusQueued, 2, t0.Add(6*time.Second), 0, "dial tcp 93.184.216.34:443: connect: connection refused", schemas.WebhookExhausted)
		a3 := f.attempt(1, schemas.StatusQueued, 1, t0.Add(30*time.Second), 204, "", schemas.WebhookSuccess)
		a3.Redelivery = true
		env.feed(t, attemptRecord(t, a1), attemptRecord(t, a2), attemptRecord(t, a3))
		code, body := env.get(t, "/v1/api/call/"+f.id+"/deliveries")
		if code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		id := f.id
		assertJSON(t, []byte(body), `{"status":"success","callId":"`+id+`","deliveries":[
	  {"event_id":"`+id+`-1","event_type":"dialstream.call.queued.v1","sequence":1,"event_status":"queued","attempt":1,"max_attempts":8,
	   "redelivery":false,"url":"https://example.com/hooks","attempted_at":"2026-03-01T10:00:01Z","duration_seconds":0.25,
	   "status_code":503,"result":"retry","next_attempt_at":"2026-03-01T10:00:06Z"},
	  {"event_id":"`+id+`-1","event_type":"dialstream.call.queued.v1","sequence":1,"event_status":"queued","attempt":2,"max_attempts":8,
	   "redelivery":false,"url":"https://example.com/hooks","attempted_at":"2026-03-01T10:00:06Z","duration_seconds":0.25,
	   "error":"dial tcp 93.184.216.34:443: connect: connection refused","result":"exhausted"},
	  {"event_id":"`+id+`-1","event_type":"dialstream.call.queued.v1","sequence":1,"event_status":"queued","attempt":1,"max_attempts":8,
	   "redelivery":true,"url":"https://example.com/hooks","attempted_at":"2026-03-01T10:00:30Z","duration_seconds":0.25,
	   "status_code":204,"result":"success"}]}`)
		// A call without attempts: an empty list.
		g := demoCall(2, t0)
		env.feed(t, g.request(t, 1, 6))
		_, body = env.get(t, "/v1/api/call/"+g.id+"/deliveries")
		assertJSON(t, []byte(body), `{"status":"success","callId":"`+g.id+`","deliveries":[]}`)
	})
}

// Redeliver sends the original event records, as schemas.RedeliveryRecord
// makes them, to the redelivery topic.
func TestRedeliver(t *testing.T) {
	forEngines(t, func(t *testing.T, env *testEnv) {
		env.clock(t0.Add(time.Hour))
		f := demoCall(1, t0)
		env.feed(t, f.request(t, 1, 5))
		originals := eventRecords(t, f.busy())
		env.feed(t, originals...)
		id := f.id

		w := env.do(t, req{path: "/v1/api/call/" + id + "/redeliver"})
		if w.Code != 202 {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		assertJSON(t, w.Body.Bytes(), `{"status":"success","callId":"`+id+`",
	  "message":"4 events of call `+id+` queued for redelivery with their original webhook-id",
	  "events":[
	    {"event_id":"`+id+`-1","event_type":"dialstream.call.queued.v1","sequence":1,"event_status":"queued"},
	    {"event_id":"`+id+`-2","event_type":"dialstream.call.dialing.v1","sequence":2,"event_status":"dialing"},
	    {"event_id":"`+id+`-3","event_type":"dialstream.call.ringing.v1","sequence":3,"event_status":"ringing"},
	    {"event_id":"`+id+`-4","event_type":"dialstream.call.ended.v1","sequence":4,"event_status":"ended"}]}`)
		recs := env.p.records()
		if len(recs) != 4 {
			t.Fatalf("%d records", len(recs))
		}
		bySeq := map[string]int{}
		for i, r := range recs {
			bySeq[kafkax.Header(r, schemas.HeaderID)] = i
		}
		for _, o := range originals {
			r := recs[bySeq[kafkax.Header(o, schemas.HeaderID)]]
			want := schemas.RedeliveryRecord(o)
			if r.Topic != schemas.TopicWebhookRedeliver || string(r.Key) != string(want.Key) || string(r.Value) != string(want.Value) ||
				fmt.Sprint(r.Headers) != fmt.Sprint(want.Headers) {
				t.Fatalf("redelivery record\n got %s %s %v\nwant %s %s %v", r.Topic, r.Key, r.Headers, want.Topic, want.Key, want.Headers)
			}
		}

		// One event, by id or by sequence.
		for _, body := range []string{`{"event_id":"` + id + `-3"}`, `{"sequence":3}`} {
			w := env.do(t, req{path: "/v1/api/call/" + id + "/redeliver", body: body})
			assertJSON(t, w.Body.Bytes(), `{"status":"success","callId":"`+id+`",
		  "message":"1 event of call `+id+` queued for redelivery with their original webhook-id",
		  "events":[{"event_id":"`+id+`-3","event_type":"dialstream.call.ringing.v1","sequence":3,"event_status":"ringing"}]}`)
		}
		if n := len(env.p.records()); n != 6 {
			t.Fatalf("%d records", n)
		}
	})
}

func TestRedeliverErrors(t *testing.T) {
	forEngines(t, func(t *testing.T, env *testEnv) {
		env.clock(t0.Add(time.Hour))
		f := demoCall(1, t0)
		env.feed(t, f.request(t, 1, 5))
		env.feed(t, eventRecords(t, f.busy())...)
		noEvents := demoCall(2, t0)
		env.feed(t, noEvents.request(t, 1, 6))
		noHook := demoCall(3, t0)
		noHook.callback = ""
		env.feed(t, noHook.request(t, 1, 7))
		env.feed(t, eventRecords(t, noHook.busy())...)
		path := "/v1/api/call/" + f.id + "/redeliver"
		for _, tc := range []struct {
			r    req
			code int
			want string
		}{
			{req{path: path, body: `{"event_id":"nope"}`}, 404, errBody(t, "call "+f.id+" has no event nope", fe("event_id", "not an event of this call"))},
			{req{path: path, body: `{"sequence":9}`}, 404, errBody(t, "call "+f.id+" has no event with sequence 9", fe("sequence", "not the sequence of an event of this call"))},
			{req{path: path, body: `{"sequence":0}`}, 422, errBody(t, "invalid field sequence: must be an integer >= 1: the sequence number of one of the call's events", fe("sequence", "must be an integer >= 1: the sequence number of one of the call's events"))},
			{req{path: path, body: `{"sequence":"1"}`}, 422, errBody(t, "invalid field sequence: must be an integer >= 1: the sequence number of one of the call's events", fe("sequence", "must be an integer >= 1: the sequence number of one of the call's events"))},
			{req{path: path, body: `{"event_id":""}`}, 422, errBody(t, "invalid field event_id: must be a non-empty string of at most 256 bytes: the id of one of the call's events", fe("event_id", "must be a non-empty string of at most 256 bytes: the id of one of the call's events"))},
			{req{path: path, body: `{"event_id":"` + f.id + `-1","sequence":1}`}, 422, errBody(t, "invalid field sequence: send event_id or sequence, not both", fe("sequence", "send event_id or sequence, not both"))},
			{req{path: path, body: `{"events":[]}`}, 422, errBody(t, "invalid field events: unknown field; the fields are event_id, sequence", fe("events", "unknown field; the fields are event_id, sequence"))},
			{req{path: "/v1/api/call/" + noEvents.id + "/redeliver"}, 409, errBody(t, "call "+noEvents.id+" has no lifecycle events yet; there is nothing to redeliver")},
			{req{path: "/v1/api/call/" + noHook.id + "/redeliver"}, 409, errBody(t, "call "+noHook.id+" has no callback_url; its events are not delivered anywhere")},
			{req{path: "/v1/api/call/000000000000000000000000/redeliver"}, 404, errBody(t, "call 000000000000000000000000 not found")},
		} {
			w := env.do(t, tc.r)
			if w.Code != tc.code {
				t.Fatalf("%+v: %d %s", tc.r, w.Code, w.Body)
			}
			assertJSON(t, w.Body.Bytes(), tc.want)
		}
		if n := len(env.p.records()); n != 0 {
			t.Fatalf("%d records written by refused redeliveries", n)
		}
	})
}

// Workspace isolation: for every route, another workspace's call id gets
// the very answer a call id that exists nowhere gets (404, same body, same
// headers), and nothing is written.
func TestCallStateIsolation(t *testing.T) {
	forEngines(t, func(t *testing.T, env *testEnv) {
		env.clock(t0.Add(time.Hour))
		f := demoCall(1, t0)
		env.feed(t, f.request(t, 1, 5))
		env.feed(t, eventRecords(t, f.dialing())...)
		env.feed(t, attemptRecord(t, f.attempt(1, schemas.StatusQueued, 1, t0.Add(time.Second), 204, "", schemas.WebhookSuccess)))
		missing := "0000000000000000000f00d0"
		for _, route := range []struct{ method, suffix, body string }{
			{"GET", "", ""},
			{"POST", "/cancel", `{"reason":"x"}`},
			{"GET", "/deliveries", ""},
			{"POST", "/redeliver", `{"sequence":1}`},
		} {
			ask := func(id string) (int, http.Header, string) {
				w := env.do(t, req{method: route.method, path: "/v1/api/call/" + id + route.suffix, body: route.body,
					key: otherKey, workspace: "ws_other"})
				b, _ := io.ReadAll(w.Body)
				return w.Code, w.Header(), string(b)
			}
			code, h, body := ask(f.id)
			mcode, mh, mbody := ask(missing)
			if code != 404 || mcode != 404 || body != strings.ReplaceAll(mbody, missing, f.id) || fmt.Sprint(h) != fmt.Sprint(mh) {
				t.Fatalf("%s %s: foreign %d %v %s; missing %d %v %s", route.method, route.suffix, code, h, body, mcode, mh, mbody)
			}
			assertJSON(t, []byte(body), errBody(t, "call "+f.id+" not found"))
		}
		if n := len(env.p.records()); n != 0 {
			t.Fatalf("%d records written for a foreign call", n)
		}
		// The owner still sees it, unchanged.
		if code, body := env.get(t, "/v1/api/call/"+f.id); code != 200 || strings.Contains(body, "cancel_requested_at") {
			t.Fatalf("%d %s", code, body)
		}
	})
}

// A call records database that does not answer: every state route is a
// 503 with Retry-After (the call may exist: never a 404), /readyz is not
// ready, and POST /v1/api/call still answers 202 once Kafka has the call
// (a 503 would make a client without an Idempotency-Key call twice).
func TestCallRecordsUnavailable(t *testing.T) {
	env := newTestEnv(t)
	if err := env.st.Close(); err != nil {
		t.Fatal(err)
	}
	want := errBody(t, "the call records database did not answer; retry shortly")
	for _, r := range []req{
		{method: "GET", path: "/v1/api/call/000000000000000000000000"},
		{method: "GET", path: "/v1/api/calls"},
		{method: "GET", path: "/v1/api/calls/export?format=csv"},
		{path: "/v1/api/call/000000000000000000000000/cancel"},
		{method: "GET", path: "/v1/api/call/000000000000000000000000/deliveries"},
		{path: "/v1/api/call/000000000000000000000000/redeliver"},
	} {
		w := env.do(t, r)
		if w.Code != 503 || w.Header().Get("Retry-After") != "2" {
			t.Fatalf("%s %s: %d %s", r.method, r.path, w.Code, w.Body)
		}
		assertJSON(t, w.Body.Bytes(), want)
	}
	w := env.do(t, req{method: "GET", path: "/readyz"})
	if w.Code != 503 {
		t.Fatalf("readyz %d", w.Code)
	}
	assertJSON(t, w.Body.Bytes(), `{"status":"not_ready","reason":"call records database: not reachable"}`)
	if w := env.do(t, req{body: validBody}); w.Code != 202 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	// The write is the group commit's, after the 202: its failure is logged.
	testutil.EventuallyWhy(t, 10*time.Second, "a log line saying the records missed the call", func() (bool, string) {
		logs := env.logText()
		return strings.Contains(logs, "written to Kafka but not to the call records yet"), logs
	})
}

// The new routes are counted under their pattern, never the path.
func TestCallStateMetrics(t *testing.T) {
	env := newTestEnv(t)
	env.clock(t0.Add(time.Hour))
	f := demoCall(1, t0)
	env.feed(t, f.request(t, 1, 5))
	env.get(t, "/v1/api/call/"+f.id)
	env.get(t, "/v1/api/call/000000000000000000000000")
	env.get(t, "/v1/api/calls")
	env.get(t, "/v1/api/calls/export?format=ndjson")
	env.get(t, "/v1/api/call/"+f.id+"/deliveries")
	env.do(t, req{path: "/v1/api/call/" + f.id + "/redeliver"})
	env.do(t, req{path: "/v1/api/call/" + f.id + "/cancel"})
	env.get(t, "/openapi.json")
	_, m := env.get(t, "/metrics")
	for _, want := range []string{
		`dialstream_ingest_requests_total{code="200",route="/v1/api/call/:callId"} 1`,
		`dialstream_ingest_requests_total{code="404",route="/v1/api/call/:callId"} 1`,
		`dialstream_ingest_requests_total{code="200",route="/v1/api/calls"} 1`,
		`dialstream_ingest_requests_total{code="200",route="/v1/api/call/:callId/deliveries"} 1`,
		`dialstream_ingest_requests_total{code="409",route="/v1/api/call/:callId/redeliver"} 1`,
		`dialstream_ingest_requests_total{code="202",route="/v1/api/call/:callId/cancel"} 1`,
		`dialstream_ingest_requests_total{code="200",route="/openapi.json"} 1`,
		`dialstream_ingest_requests_total{code="503",route="/v1/api/call/:callId/cancel"} 0`,
		`dialstream_ingest_calls_rejected_total{reason="unknown_call"} 1`,
		`dialstream_ingest_requests_total{code="200",route="/v1/api/calls/export"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(m, f.id) {
		t.Error("a call id is a label value")
	}
}

// Read-your-writes holds for concurrent requests too, whose own writes
// share group commits (ownwrites.go): every call answered 202 is there,
// queued, the moment its client reads it.
func TestReadYourWritesConcurrent(t *testing.T) {
	forEngines(t, func(t *testing.T, env *testEnv) {
		const n = 64
		errs := make(chan error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				w := env.do(t, req{idemKey: fmt.Sprintf("ryw-%d", i), body: validBody})
				if w.Code != 202 {
					errs <- fmt.Errorf("POST %d: %d %s", i, w.Code, w.Body)
					return
				}
				var acc CallResponse
				_ = json.Unmarshal(w.Body.Bytes(), &acc)
				code, body := env.get(t, "/v1/api/call/"+acc.CallID)
				var got CallEnvelope
				_ = json.Unmarshal([]byte(body), &got)
				if code != 200 || got.Call.Status != schemas.StatusQueued || got.Call.JobID != acc.JobID {
					errs <- fmt.Errorf("GET right after the 202 of call %d: %d %s", i, code, body)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if l := env.list(t, "limit=200"); len(l.Calls) != n {
			t.Fatalf("%d calls listed, want %d", len(l.Calls), n)
		}
	})
}
