package ingest

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/callrecords"
	"github.com/dialstream/dialstream/schemas"
)

// Fuzz targets for every route but POST /v1/api/call (call_fuzz_test.go).
// Each holds, for whatever arrives: no panic (the recover middleware would
// answer 500), no 5xx (the fake producer acknowledges everything and the
// state is loaded, so no 503 is due either), the JSON envelope (or the
// route's own type), and records written only on success, each valid
// against its schema. Run one with, e.g.:
//
//	go test ./ingest -run='^$' -fuzz='^FuzzCancelCall$' -fuzztime=60s -parallel=1

// take returns the records acknowledged since the last take, and forgets them.
func (f *fakeProducer) take() []*kgo.Record {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.recs
	f.recs = nil
	return out
}

// reachable says whether a header value can arrive over HTTP at all: Go's
// server refuses a request line or header with CR, LF or NUL before any
// handler runs.
func reachable(vs ...string) bool {
	for _, v := range vs {
		if strings.ContainsAny(v, "\r\n\x00") {
			return false
		}
	}
	return true
}

// fuzzServe serves one request whose path is set as it arrives (unparsed,
// so the fuzzer's bytes reach the router) and checks what every answer
// must be: below 500, and the JSON envelope unless it is a 204, CSV or NDJSON.
func fuzzServe(t *testing.T, env *testEnv, method, path, rawQuery string, hdr http.Header, body []byte) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, "/", bytes.NewReader(body))
	r.URL.Path, r.URL.RawQuery, r.RequestURI = path, rawQuery, ""
	for k, vs := range hdr {
		r.Header[k] = vs
	}
	w := httptest.NewRecorder()
	env.h.ServeHTTP(w, r)
	if w.Code >= 500 {
		t.Fatalf("%s %q ? %q headers %v body %q: %d %s", method, path, rawQuery, hdr, body, w.Code, w.Body)
	}
	ct := w.Header().Get("Content-Type")
	switch {
	case w.Code == http.StatusNoContent:
		if w.Body.Len() != 0 {
			t.Fatalf("204 with a body: %q", w.Body)
		}
	case (strings.HasPrefix(ct, "text/csv") || strings.HasPrefix(ct, "application/x-ndjson")) && w.Code == http.StatusOK:
	case !strings.HasPrefix(ct, "application/json") || !json.Valid(w.Body.Bytes()) || !bytes.HasPrefix(w.Body.Bytes(), []byte(`{"`)):
		t.Fatalf("%s %q: %d not the JSON envelope (%s): %q", method, path, w.Code, ct, w.Body)
	}
	return w
}

// authed is ws_demo's credentials, plus a content type when ct is not "-".
func authed(ct string) http.Header {
	h := http.Header{"Authorization": {"Bearer " + demoKey}, "X-Workspace-Id": {"ws_demo"}}
	if ct != "-" {
		h.Set("Content-Type", ct)
	}
	return h
}

// decoded checks that every record decodes against its schema and returns
// their types.
func decoded(t *testing.T, recs []*kgo.Record) []string {
	t.Helper()
	var types []string
	for _, r := range recs {
		if r.Topic == schemas.TopicSuppressions && r.Value == nil {
			types = append(types, "tombstone")
			continue
		}
		ev, err := schemas.Decode(r)
		if err != nil {
			t.Fatalf("written record of %s does not satisfy its schema: %v", r.Topic, err)
		}
		types = append(types, ev.Type)
	}
	return types
}

// FuzzCancelCall: POST /v1/api/call/{callId}/cancel with any call id, content
// type and body. A 202 wrote exactly one call.cancel of that call.
func FuzzCancelCall(f *testing.F) {
	env := newTestEnv(f, func(c *Config) { c.Logger = discardLogger() })
	env.clock(t0)
	live, ended := demoCall(1, t0), demoCall(2, t0)
	env.feed(f, live.request(f, 1, 5), ended.request(f, 1, 6))
	env.feed(f, eventRecords(f, ended.busy())...)
	for _, id := range []string{live.id, ended.id, "000000000000000000000000", "", "..", "%2F", strings.ToUpper(live.id)} {
		for _, b := range []string{``, ` `, `{}`, `{"reason":"customer asked"}`, `{"reason":null}`, `{"reason":7}`, `{"why":"x"}`, `{"reason":`, `[]`,
			`{"reason":"` + strings.Repeat("é", 513) + `"}`, `{"reason":"\ud800"}`, `{"reason":"a","reason":"b"}`} {
			f.Add(id, "application/json", []byte(b))
		}
	}
	f.Add(live.id, "-", []byte(" \n"))
	f.Add(live.id, "-", []byte(`{"reason":"x"}`))
	f.Add(live.id, "application/x-www-form-urlencoded", []byte("reason=x"))
	f.Add(live.id, "application/json; charset=latin1", []byte(`{}`))
	f.Fuzz(func(t *testing.T, id, ct string, body []byte) {
		if !reachable(ct) {
			return
		}
		w := fuzzServe(t, env, http.MethodPost, "/v1/api/call/"+id+"/cancel", "", authed(ct), body)
		recs := env.p.take()
		if w.Code != http.StatusAccepted {
			if len(recs) != 0 {
				t.Fatalf("%d wrote %d records", w.Code, len(recs))
			}
			return
		}
		if types := decoded(t, recs); len(recs) != 1 || types[0] != schemas.TypeCallCancel || string(recs[0].Key) != id || id != live.id {
			t.Fatalf("202 for call %q wrote %v", id, types)
		}
	})
}

// FuzzRedeliver: POST /v1/api/call/{callId}/redeliver with any call id,
// content type and body. A 202 wrote one redelivery per event it lists,
// each the call's original event.
func FuzzRedeliver(f *testing.F) {
	env, c := busyCallEnv(f)
	for _, b := range []string{``, `{}`, `{"event_id":"` + c.id + `-3"}`, `{"sequence":3}`, `{"sequence":9}`, `{"sequence":0}`, `{"sequence":"1"}`,
		`{"sequence":1e2}`, `{"sequence":-1}`, `{"sequence":99999999999999999999}`, `{"event_id":""}`, `{"event_id":"nope"}`,
		`{"event_id":"` + c.id + `-1","sequence":1}`, `{"events":[]}`, `{"event_id":null,"sequence":null}`} {
		f.Add(c.id, "application/json", []byte(b))
	}
	f.Add("000000000000000000000000", "application/json", []byte(`{}`))
	f.Add(c.id, "text/plain", []byte(`{}`))
	f.Fuzz(func(t *testing.T, id, ct string, body []byte) {
		if !reachable(ct) {
			return
		}
		w := fuzzServe(t, env, http.MethodPost, "/v1/api/call/"+id+"/redeliver", "", authed(ct), body)
		recs := env.p.take()
		if w.Code != http.StatusAccepted {
			if len(recs) != 0 {
				t.Fatalf("%d wrote %d records", w.Code, len(recs))
			}
			return
		}
		var resp RedeliverResponse
		if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || len(resp.Events) == 0 || len(resp.Events) != len(recs) || id != c.id {
			t.Fatalf("202 for call %q listing %d events wrote %d records (%v)", id, len(resp.Events), len(recs), err)
		}
		decoded(t, recs)
		for _, r := range recs {
			if r.Topic != schemas.TopicWebhookRedeliver || string(r.Key) != c.id {
				t.Fatalf("redelivery on %s under key %q", r.Topic, r.Key)
			}
		}
	})
}

// FuzzListCalls: GET /v1/api/calls with any query string. A 200 lists only
// the workspace's calls.
func FuzzListCalls(f *testing.F) {
	env := newTestEnv(f, func(c *Config) { c.Logger = discardLogger() })
	env.clock(t0)
	for i := range 3 {
		env.feed(f, demoCall(i, t0).request(f, 1, int64(i)))
	}
	foreign := strings.Repeat("b", 24)
	env.feed(f, fixture{id: foreign, ws: "ws_other", agent: otherAgent, to: "+15550100002", room: otherAgent + "-abcdefghij", at: t0}.request(f, 1, 9))
	cursor := encodeCursor(callrecords.Key{At: t0.UnixNano(), ID: demoCall(1, t0).id})
	for _, q := range []string{"", "status=queued", "status=done", "outcome=busy", "outcome=ok", "call_agent_id=" + demoAgent, "call_agent_id=a%20b",
		"from=2026-03-01T00:00:00Z&to=2026-03-02T00:00:00Z", "from=yesterday", "from=2026-03-02T00:00:00Z&to=2026-03-01T00:00:00Z",
		"limit=1", "limit=0", "limit=201", "limit=-1", "limit=1&cursor=" + cursor, "cursor=abc", "cursor=", "agent=x",
		"status=queued&status=ended", "limit=x&status=y", "%zz", "a=%", ";", "limit=99999999999999999999", "to=2026-03-01T00:00:00.999999999+14:00"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		w := fuzzServe(t, env, http.MethodGet, "/v1/api/calls", q, authed("-"), nil)
		if w.Code != http.StatusOK {
			return
		}
		var out CallList
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
			t.Fatal(err)
		}
		for _, c := range out.Calls {
			if c.CallID == foreign {
				t.Fatalf("?%s listed ws_other's call", q)
			}
		}
		if n := len(env.p.take()); n != 0 {
			t.Fatalf("a list wrote %d records", n)
		}
	})
}

// FuzzSuppressions: PUT, GET and DELETE /v1/api/suppressions/{number} and
// GET /v1/api/suppressions with any number, query, content type and body.
// A 200 PUT wrote one suppression record of this workspace and reads back;
// a 204 DELETE wrote one tombstone; nothing else writes.
func FuzzSuppressions(f *testing.F) {
	env := newTestEnv(f, func(c *Config) { c.Logger = discardLogger() })
	for _, n := range []string{"+15550100001", "+1 555 010 0001", "(555) 010-0001", "tel:+1-555-010-0001", "+442071838750", "１２０２５５５０１２３", "+1900", "", "%2B1555", "+"} {
		for _, b := range []string{``, `{}`, `{"reason":"opt_out"}`, `{"reason":"nope"}`, `{"reason":1}`, `{"reason":"manual","x":1}`, `[`} {
			f.Add(uint8(0), n, "", "application/json", []byte(b))
		}
		f.Add(uint8(1), n, "", "-", []byte(nil))
		f.Add(uint8(2), n, "", "-", []byte(nil))
	}
	for _, q := range []string{"", "limit=1", "limit=0", "limit=1001", "limit=x", "cursor=%2B15550100001", "cursor=abc", "cursor=&limit=5", "%zz"} {
		f.Add(uint8(3), "", q, "-", []byte(nil))
	}
	f.Add(uint8(0), "+15550100001", "", "text/plain", []byte(`{"reason":"opt_out"}`))
	f.Fuzz(func(t *testing.T, op uint8, number, q, ct string, body []byte) {
		if !reachable(ct) {
			return
		}
		path := "/v1/api/suppressions/" + number
		switch op % 4 {
		case 0:
			w := fuzzServe(t, env, http.MethodPut, path, q, authed(ct), body)
			recs := env.p.take()
			if w.Code != http.StatusOK {
				if len(recs) != 0 {
					t.Fatalf("PUT %d wrote %d records", w.Code, len(recs))
				}
				return
			}
			var s Suppression
			if err := json.Unmarshal(w.Body.Bytes(), &s); err != nil {
				t.Fatal(err)
			}
			if types := decoded(t, recs); len(recs) != 1 || types[0] != schemas.TypeSuppression {
				t.Fatalf("PUT 200 wrote %v", types)
			}
			// It reads back under its normalized number, and goes away.
			if g := fuzzServe(t, env, http.MethodGet, "/v1/api/suppressions/"+s.Number, "", authed("-"), nil); g.Code != http.StatusOK {
				t.Fatalf("PUT %q answered %+v, GET %s: %d", number, s, s.Number, g.Code)
			}
			if d := fuzzServe(t, env, http.MethodDelete, "/v1/api/suppressions/"+s.Number, "", authed("-"), nil); d.Code != http.StatusNoContent {
				t.Fatalf("DELETE %s: %d", s.Number, d.Code)
			}
			if types := decoded(t, env.p.take()); len(types) != 1 || types[0] != "tombstone" {
				t.Fatalf("DELETE wrote %v", types)
			}
		case 1:
			fuzzServe(t, env, http.MethodGet, path, q, authed(ct), body)
		case 2:
			fuzzServe(t, env, http.MethodDelete, path, q, authed(ct), body)
		case 3:
			fuzzServe(t, env, http.MethodGet, "/v1/api/suppressions", q, authed(ct), body)
		}
		if n := len(env.p.take()); n != 0 {
			t.Fatalf("a read or a refused delete wrote %d records", n)
		}
	})
}

// FuzzImportSuppressions: POST /v1/api/suppressions/import with any content
// type and CSV body. A 200 counts every data row of the file and wrote one
// valid suppression per distinct number (a number listed twice keeps its
// last row); any refusal wrote nothing.
func FuzzImportSuppressions(f *testing.F) {
	env := newTestEnv(f, func(c *Config) { c.Logger = discardLogger() })
	for _, b := range []string{"number,reason\n+15550100001,opt_out\n+15550100002\n", "+15550100003,complaint\r\n", "", "number\n",
		"+15550100001,nope\n", "not a number\n", "+15550100001,opt_out,extra\n", "\"+1555\n", "a,\"b\n", "+1 (555) 010-0004, wrong_number \n",
		"NUMBER,REASON\n+15550100005,dnc_registry\n", "\ufeffnumber,reason\n+15550100006\n", ",\n", "\n\n\n"} {
		f.Add("text/csv", []byte(b))
	}
	f.Add("text/csv; charset=utf-8", []byte("+15550100001\n"))
	f.Add("application/json", []byte("+15550100001\n"))
	f.Add("-", []byte("+15550100001\n"))
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		if !reachable(ct) {
			return
		}
		w := fuzzServe(t, env, http.MethodPost, "/v1/api/suppressions/import", "", authed(ct), body)
		recs := env.p.take()
		if w.Code != http.StatusOK {
			if len(recs) != 0 {
				t.Fatalf("%d wrote %d records", w.Code, len(recs))
			}
			return
		}
		var res ImportResult
		if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil {
			t.Fatal(err)
		}
		if rows := csvDataRows(t, body); res.Imported != rows {
			t.Fatalf("imported %d, the file has %d data rows", res.Imported, rows)
		}
		keys := map[string]bool{}
		for _, r := range recs {
			if keys[string(r.Key)] {
				t.Fatalf("import wrote %q twice", r.Key)
			}
			keys[string(r.Key)] = true
		}
		if len(recs) > res.Imported || (res.Imported > 0 && len(recs) == 0) {
			t.Fatalf("imported %d rows, wrote %d records", res.Imported, len(recs))
		}
		for _, typ := range decoded(t, recs) {
			if typ != schemas.TypeSuppression {
				t.Fatalf("import wrote %s", typ)
			}
		}
	})
}

// csvDataRows counts the records of an accepted CSV body, less a first
// "number" header row.
func csvDataRows(t *testing.T, body []byte) int {
	t.Helper()
	rd := csv.NewReader(bytes.NewReader(body))
	rd.FieldsPerRecord = -1
	all, err := rd.ReadAll()
	if err != nil {
		t.Fatalf("the import accepted CSV that does not parse: %v", err)
	}
	if len(all) > 0 && strings.EqualFold(strings.TrimSpace(all[0][0]), "number") {
		return len(all) - 1
	}
	return len(all)
}

// FuzzAuthHeaders: every route of the API with any Authorization and
// x-workspace-id header and any path id. Anything but a workspace's key
// with that workspace's id is 401, 400 or 403 (or 404 for a path no route
// serves) and writes nothing, on every route.
func FuzzAuthHeaders(f *testing.F) {
	env, c := busyCallEnv(f)
	for _, a := range []string{"Bearer " + demoKey, "Bearer " + otherKey, "bearer  " + demoKey + " ", "Basic x", "Bearer", "", demoKey, "Bearer " + demoKey + "x"} {
		for _, ws := range []string{"ws_demo", "ws_other", "", " ws_demo ", "WS_DEMO"} {
			f.Add(a, ws, uint8(len(a)+len(ws)), c.id)
		}
	}
	f.Add("Bearer "+demoKey, "ws_demo", uint8(2), "../../x")
	routes := apiKeyRoutes(f)
	keyOf := map[string]string{"ws_demo": demoKey, "ws_other": otherKey, "ws_slow": slowKey, "ws_masked": maskedKey}
	f.Fuzz(func(t *testing.T, auth, ws string, route uint8, id string) {
		if !reachable(auth, ws) {
			return
		}
		rt := routes[int(route)%len(routes)]
		hdr := http.Header{"Authorization": {auth}, "X-Workspace-Id": {ws}, "Content-Type": {"application/json"}}
		body := []byte(`{}`)
		if strings.HasSuffix(rt.path, "/import") || strings.HasSuffix(rt.path, "/contacts") {
			hdr.Set("Content-Type", "text/csv")
			body = []byte("to\n+15550100001\n")
		}
		w := fuzzServe(t, env, rt.method, pathWith(rt.path, id), "", hdr, body)
		recs := env.p.take()
		ok := false
		if a := strings.TrimSpace(auth); len(a) >= 7 && strings.EqualFold(a[:7], "Bearer ") {
			ok = keyOf[strings.TrimSpace(ws)] == strings.TrimSpace(a[7:])
		}
		if !ok {
			noRoute := w.Code == http.StatusNotFound && strings.Contains(w.Body.String(), `"message":"no such endpoint`)
			if w.Code != http.StatusUnauthorized && w.Code != http.StatusBadRequest && w.Code != http.StatusForbidden && !noRoute {
				t.Fatalf("%s %s with Authorization %q x-workspace-id %q: %d %s", rt.method, rt.path, auth, ws, w.Code, w.Body)
			}
			if len(recs) != 0 {
				t.Fatalf("unauthenticated request wrote %d records", len(recs))
			}
			return
		}
		decoded(t, recs)
		// Keep the do-not-call table from growing across inputs.
		if w.Code == http.StatusOK && rt.method == http.MethodPut || strings.HasSuffix(rt.path, "/import") && w.Code == http.StatusOK {
			fuzzServe(t, env, http.MethodDelete, "/v1/api/suppressions/+15550100001", "", authed("-"), nil)
			env.p.take()
		}
	})
}

// pathWith is an OpenAPI path with every path parameter set to id.
func pathWith(path, id string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(path, '{')
		j := strings.IndexByte(path, '}')
		if i < 0 || j < i {
			b.WriteString(path)
			return b.String()
		}
		b.WriteString(path[:i])
		b.WriteString(id)
		path = path[j+1:]
	}
}

// notFuzzedHere are the API-key operations the in-process fuzz targets
// cannot serve, and where they are covered instead.
var notFuzzedHere = map[string]string{
	// The stream needs the event feed from Kafka, which the fake producer's
	// test environment does not have: it answers 503 to a valid request.
	// Its query and credentials are tried by the component tests
	// (TestComponentIsolationEveryRoute, events_stream tests).
	"streamEvents": "needs Kafka",
}

// apiKeyRoutes are the operations of the embedded OpenAPI document that take
// an API key and x-workspace-id, read from the document so that a route
// added to it is fuzzed without editing a list.
func apiKeyRoutes(t testing.TB) []operation {
	t.Helper()
	var out []operation
	for _, op := range documentOperations(t, OpenAPI) {
		if op.workspace && notFuzzedHere[op.id] == "" {
			out = append(out, op)
		}
	}
	if len(out) < 20 {
		t.Fatalf("only %d API-key operations in the OpenAPI document", len(out))
	}
	return out
}

// FuzzReadQueries: every GET of the API with any path id and any query.
// Whatever arrives: no 5xx, the envelope (or the route's CSV or NDJSON),
// and nothing written. A read of workspace A's call and campaign with the
// seeds' ids reaches the handlers past the 404.
func FuzzReadQueries(f *testing.F) {
	env, c := busyCallEnv(f)
	camp := setupCampaign(f, env)
	var reads []operation
	for _, r := range apiKeyRoutes(f) {
		if r.method == http.MethodGet {
			reads = append(reads, r)
		}
	}
	for i := range reads {
		for _, q := range []string{"", "limit=1", "limit=0", "limit=-1", "limit=x", "cursor=abc", "format=ndjson", "format=csv", "format=x",
			"status=ended", "from=2026-03-01T00:00:00Z&to=2026-03-02T00:00:00Z", "%zz", ";", "a=%", "limit=1&limit=2"} {
			f.Add(uint8(i), c.id, q)
			f.Add(uint8(i), camp, q)
		}
		f.Add(uint8(i), "+15550100001", "")
		f.Add(uint8(i), "../../x", "")
	}
	f.Fuzz(func(t *testing.T, which uint8, id, q string) {
		r := reads[int(which)%len(reads)]
		w := fuzzServe(t, env, r.method, pathWith(r.path, id), q, authed("-"), nil)
		if n := len(env.p.take()); n != 0 {
			t.Fatalf("%s %s?%s (%d) wrote %d records", r.method, pathWith(r.path, id), q, w.Code, n)
		}
	})
}

// FuzzCreateCampaign: POST /v1/api/campaigns with any content type and body.
// A 201 wrote records of the campaign it names, each valid against its
// schema; anything else wrote nothing.
func FuzzCreateCampaign(f *testing.F) {
	env := newTestEnv(f, func(c *Config) { c.Logger = discardLogger() })
	for _, b := range []string{
		"{" + campaignBase + "}",
		"{" + campaignBase + `,"start":true}`,
		"{" + campaignBase + `,"contacts":[{"to":"+15550100001","contact_id":"c-1"},{"to":"nope"}]}`,
		"{" + campaignBase + `,"name":""}`, "{" + campaignBase + `,"pacing":{"calls_per_second":0}}`,
		"{" + campaignBase + `,"schedule":{"windows":[{"days":["sun"],"start":"25:00","end":"01:00"}],"default_timezone":"Mars/X"}}`,
		`{"name":"x"}`, `{}`, `[]`, `null`, "{" + campaignBase, "{" + campaignBase + `,"unknown":1}`,
		"{" + campaignBase + `,"dynamic_variables":{"a":"b"},"metadata":{"k":[1,2]}}`,
	} {
		f.Add("application/json", []byte(b))
	}
	f.Add("text/plain", []byte("{"+campaignBase+"}"))
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		if !reachable(ct) {
			return
		}
		w := fuzzServe(t, env, http.MethodPost, "/v1/api/campaigns", "", authed(ct), body)
		recs := env.p.take()
		if w.Code != http.StatusCreated && w.Code != http.StatusOK {
			if len(recs) != 0 {
				t.Fatalf("%d wrote %d records: %s", w.Code, len(recs), w.Body)
			}
			return
		}
		var camp CampaignCreated
		if err := json.Unmarshal(w.Body.Bytes(), &camp); err != nil || !callIDPattern.MatchString(camp.CampaignID) {
			t.Fatalf("%d %s: %v", w.Code, w.Body, err)
		}
		allKeyed(t, recs, camp.CampaignID)
	})
}

// FuzzCampaignActions: start, pause, resume and cancel on any campaign id
// with any content type and body. A 2xx wrote records of that campaign
// only, each valid against its schema; anything else wrote nothing.
func FuzzCampaignActions(f *testing.F) {
	env := newTestEnv(f, func(c *Config) { c.Logger = discardLogger() })
	camp := setupCampaign(f, env)
	actions := []string{"start", "pause", "resume", "cancel"}
	for i := range actions {
		for _, b := range []string{"", "{}", `{"reason":"x"}`, "[]", "{", `{"at":"2026-03-01T00:00:00Z"}`} {
			f.Add(uint8(i), camp, "application/json", []byte(b))
		}
		f.Add(uint8(i), strings.Repeat("0", 24), "application/json", []byte("{}"))
		f.Add(uint8(i), "x", "-", []byte(nil))
	}
	f.Fuzz(func(t *testing.T, which uint8, id, ct string, body []byte) {
		if !reachable(ct) {
			return
		}
		path := "/v1/api/campaigns/" + id + "/" + actions[int(which)%len(actions)]
		w := fuzzServe(t, env, http.MethodPost, path, "", authed(ct), body)
		recs := env.p.take()
		if w.Code/100 != 2 {
			if len(recs) != 0 {
				t.Fatalf("%s: %d wrote %d records: %s", path, w.Code, len(recs), w.Body)
			}
			return
		}
		allKeyed(t, recs, id)
	})
}

// setupCampaign creates a campaign of ws_demo for a fuzz target to work on
// and returns its id, its records taken.
func setupCampaign(f *testing.F, env *testEnv) string {
	w := env.do(f, req{path: "/v1/api/campaigns", body: "{" + campaignBase + "}"})
	if w.Code != http.StatusCreated {
		f.Fatalf("create: %d %s", w.Code, w.Body)
	}
	var camp CampaignCreated
	mustUnmarshal(f, w.Body.Bytes(), &camp)
	env.p.take()
	return camp.CampaignID
}

// busyCallEnv is a fuzz target's ingest with one call of ws_demo, ended
// busy.
func busyCallEnv(f *testing.F) (*testEnv, fixture) {
	env := newTestEnv(f, func(c *Config) { c.Logger = discardLogger() })
	env.clock(t0)
	c := demoCall(1, t0)
	env.feed(f, c.request(f, 1, 5))
	env.feed(f, eventRecords(f, c.busy())...)
	return env, c
}

// allKeyed checks that every record is valid against its schema and keyed
// by key (the campaign a campaign route wrote for).
func allKeyed(t *testing.T, recs []*kgo.Record, key string) {
	t.Helper()
	decoded(t, recs)
	for _, r := range recs {
		if string(r.Key) != key {
			t.Fatalf("a record for %s keyed %s", key, r.Key)
		}
	}
}
