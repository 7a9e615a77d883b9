package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/dialstream/dialstream/internal/compliance"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/gin-gonic/gin"

	"github.com/dialstream/dialstream/schemas"
)

// The contract test: openapi.json is a valid OpenAPI 3.1 document
// (kin-openapi loads and validates 3.1, examples included, and validates
// values with JSON Schema 2020-12), it describes exactly the routes the
// engine serves, and real answers of every route, for every status code the
// document lists (but 500, which no input reaches), validate against it with
// openapi3filter.ValidateResponse, undocumented status codes failing. The
// requests of the 2xx answers are validated against it too.

func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(OpenAPI)
	if err != nil {
		t.Fatalf("openapi.json does not load: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() || doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi %q, want 3.1.0", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background(), openapi3.EnableExamplesValidation()); err != nil {
		t.Fatalf("openapi.json is not valid: %v", err)
	}
	return doc
}

// ginPath turns "/v1/api/call/:callId" into "/v1/api/call/{callId}".
func ginPath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		if strings.HasPrefix(s, ":") {
			parts[i] = "{" + s[1:] + "}"
		}
	}
	return strings.Join(parts, "/")
}

// The document lists exactly the routes the engine serves.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	env := newTestEnv(t)
	var served, documented []string
	for _, r := range env.hd.engine().Routes() {
		served = append(served, r.Method+" "+ginPath(r.Path))
	}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+path)
		}
	}
	sort.Strings(served)
	sort.Strings(documented)
	if !slices.Equal(served, documented) {
		t.Fatalf("served %v\ndocumented %v", served, documented)
	}
	w := env.do(t, req{method: "GET", path: "/openapi.json"})
	if w.Code != 200 || !bytes.Equal(w.Body.Bytes(), OpenAPI) || w.Header().Get("Content-Type") != "application/json; charset=utf-8" {
		t.Fatalf("/openapi.json: %d %s", w.Code, w.Header())
	}
}

// contract checks real answers against the document and records which
// (method, path, status) were seen.
type contract struct {
	t    *testing.T
	doc  *openapi3.T
	seen map[string]bool
}

// check sends r to env as the route template says, and validates the answer
// (and, for a 2xx, the request) against the document.
func (c *contract) check(env *testEnv, template string, r req, want int) *httptest.ResponseRecorder {
	t := c.t
	t.Helper()
	w := env.do(t, r)
	if w.Code != want {
		t.Fatalf("%s %s: %d, want %d: %s", r.method, r.path, w.Code, want, w.Body)
	}
	c.validate(template, r, w.Code, w.Header(), w.Body.Bytes())
	return w
}

func (c *contract) validate(template string, r req, code int, header http.Header, body []byte) {
	t := c.t
	t.Helper()
	hr := newRequest(r)
	item := c.doc.Paths.Value(template)
	if item == nil {
		t.Fatalf("%s is not in the document", template)
	}
	op := item.GetOperation(hr.Method)
	if op == nil {
		t.Fatalf("%s %s is not in the document", hr.Method, template)
	}
	params := map[string]string{}
	if strings.Contains(template, "{callId}") {
		rest := strings.TrimPrefix(strings.TrimPrefix(hr.URL.Path, "/v1/api/call/"), "/v1/agent/calls/")
		params["callId"] = strings.Split(rest, "/")[0]
	}
	if strings.Contains(template, "{campaignId}") {
		params["campaignId"] = strings.Split(strings.TrimPrefix(hr.URL.Path, "/v1/api/campaigns/"), "/")[0]
	}
	if strings.Contains(template, "{number}") {
		params["number"] = strings.TrimPrefix(hr.URL.Path, "/v1/api/suppressions/")
	}
	opts := &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true,
		AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}
	in := &openapi3filter.RequestValidationInput{Request: hr, PathParams: params, Options: opts,
		Route: &routers.Route{Spec: c.doc, Path: template, PathItem: item, Method: hr.Method, Operation: op}}
	if code/100 == 2 {
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			t.Errorf("%s %s: the request does not match the document: %v", hr.Method, hr.URL, err)
		}
		in.Request = newRequest(r)
	}
	err := openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: code, Header: header, Body: io.NopCloser(bytes.NewReader(body)), Options: opts})
	if err != nil {
		t.Errorf("%s %s -> %d does not match the document: %v\n%s", hr.Method, hr.URL, code, err, body)
	}
	c.seen[fmt.Sprintf("%s %s %d", hr.Method, template, code)] = true
}

func TestOpenAPIContract(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	c := &contract{t: t, doc: loadOpenAPI(t), seen: map[string]bool{}}
	env := newTestEnv(t)
	env.clock(t0.Add(time.Hour))
	done := demoCall(1, t0)
	env.feed(t, done.request(t, 1, 5))
	env.feed(t, eventRecords(t, done.completed())...)
	next := t0.Add(6 * time.Second)
	a := done.attempt(1, schemas.StatusQueued, 1, t0.Add(time.Second), 503, "", schemas.WebhookRetry)
	a.NextAttemptAt = &next
	env.feed(t, attemptRecord(t, a), attemptRecord(t, done.attempt(1, schemas.StatusQueued, 2, next, 204, "", schemas.WebhookSuccess)))
	live := demoCall(2, t0.Add(time.Second))
	env.feed(t, live.request(t, 0, 6))
	env.feed(t, eventRecords(t, live.dialing())...)
	queued := demoCall(3, t0.Add(2*time.Second))
	env.feed(t, queued.request(t, 2, 7))
	busy := fixture{id: "00000000000000000000beef", ws: "ws_masked", agent: "masked_agent", to: "+15550100486",
		room: "masked_agent-abcdefghij", at: t0}
	env.feed(t, busy.request(t, 0, 8))
	env.feed(t, eventRecords(t, busy.busy())...)
	slow := fixture{id: "0000000000000000000051a0", ws: "ws_slow", agent: "slow_agent", to: "+15550100001",
		room: "slow_agent-abcdefghij", callback: "https://example.com/h", at: t0}
	env.feed(t, slow.request(t, 0, 9))
	env.feed(t, eventRecords(t, slow.dialing())...)

	const (
		pCall        = "/v1/api/call"
		pState       = "/v1/api/call/{callId}"
		pCalls       = "/v1/api/calls"
		pCancel      = "/v1/api/call/{callId}/cancel"
		pDeliveries  = "/v1/api/call/{callId}/deliveries"
		pRedeliver   = "/v1/api/call/{callId}/redeliver"
		pCallsExport = "/v1/api/calls/export"
		missingID    = "0000000000000000000f00d0"
		tooBig       = 70 << 10
		createAccept = `{"to":"+12025550123","call_agent_id":"` + demoAgent + `","callback_url":"https://example.com/h",` +
			`"dynamic_variables":{"firstName":"Ada","Zipcode":94105,"vip":true},"metadata":{"crm":{"id":7}}}`
	)
	big := `{"reason":"` + strings.Repeat("x", tooBig) + `"}`
	get := func(path string) req { return req{method: "GET", path: path} }
	post := func(path, body string) req { return req{path: path, body: body} }
	as := func(r req, key, ws string) req { r.key, r.workspace = key, ws; return r }
	noAuth := func(r req) req { r.key = "-"; return r }
	noWS := func(r req) req { r.workspace = "-"; return r }
	wrongWS := func(r req) req { r.workspace = "ws_other"; return r }
	ct := func(r req, v string) req { r.contentType = v; return r }
	call := func(id, suffix string) string { return "/v1/api/call/" + id + suffix }

	// Every route: success, then every refusal.
	c.check(env, pCall, req{idemKey: "contract", body: createAccept}, 202)
	c.check(env, pCall, req{idemKey: "contract", body: createAccept}, 202) // replay
	c.check(env, pCall, req{body: `[]`}, 400)
	c.check(env, pCall, noWS(req{body: createAccept}), 400)
	c.check(env, pCall, noAuth(req{body: createAccept}), 401)
	c.check(env, pCall, req{body: createAccept, auth: "Bearer nope"}, 401)
	c.check(env, pCall, wrongWS(req{body: createAccept}), 403)
	c.check(env, pCall, req{body: `{"to":"+12025550123","call_agent_id":"` + otherAgent + `"}`}, 404)
	c.check(env, pCall, req{body: `{"metadata":{"x":"` + strings.Repeat("x", tooBig) + `"}}`}, 413)
	c.check(env, pCall, ct(req{body: createAccept}, "text/plain"), 415)
	c.check(env, pCall, req{body: `{"to":"+1234567890","call_agent_id":"` + demoAgent + `","callbackUrl":"x"}`}, 422)
	c.check(env, pCall, req{idemKey: "contract", body: `{"to":"+15550100001","call_agent_id":"` + demoAgent + `"}`}, 422)

	for _, id := range []string{done.id, live.id, queued.id} {
		c.check(env, pState, get(call(id, "")), 200)
	}
	c.check(env, pState, as(get(call(busy.id, "")), maskedKey, "ws_masked"), 200)
	c.check(env, pState, noWS(get(call(done.id, ""))), 400)
	c.check(env, pState, noAuth(get(call(done.id, ""))), 401)
	c.check(env, pState, wrongWS(get(call(done.id, ""))), 403)
	c.check(env, pState, get(call(missingID, "")), 404)
	c.check(env, pState, as(get(call(done.id, "")), otherKey, "ws_other"), 404)

	c.check(env, pCalls, get("/v1/api/calls"), 200)
	c.check(env, pCalls, get("/v1/api/calls?limit=1"), 200)
	c.check(env, pCalls, get("/v1/api/calls?limit=2&status=ended&from=2026-03-01T00:00:00Z&to=2026-03-02T00:00:00Z"), 200)
	c.check(env, pCalls, get("/v1/api/calls?outcome=busy&call_agent_id=masked_agent"), 200)
	c.check(env, pCalls, get("/v1/api/calls?limit=0&agent=x"), 400)
	c.check(env, pCalls, noWS(get("/v1/api/calls")), 400)
	c.check(env, pCalls, noAuth(get("/v1/api/calls")), 401)
	c.check(env, pCalls, wrongWS(get("/v1/api/calls")), 403)

	w := c.check(env, pCallsExport, get("/v1/api/calls/export?format=ndjson"), 200)
	c.eachNDJSONLine(w.Body.Bytes(), "Call", 4) // done, live, queued, and the call POSTed above
	c.check(env, pCallsExport, get("/v1/api/calls/export?format=csv&from=2026-03-01T00:00:00Z&to=2026-03-02T00:00:00Z"), 200)
	c.check(env, pCallsExport, get("/v1/api/calls/export"), 400)
	c.check(env, pCallsExport, noWS(get("/v1/api/calls/export?format=csv")), 400)
	c.check(env, pCallsExport, noAuth(get("/v1/api/calls/export?format=csv")), 401)
	c.check(env, pCallsExport, wrongWS(get("/v1/api/calls/export?format=csv")), 403)

	c.check(env, pDeliveries, get(call(done.id, "/deliveries")), 200)
	c.check(env, pDeliveries, get(call(queued.id, "/deliveries")), 200)
	c.check(env, pDeliveries, noWS(get(call(done.id, "/deliveries"))), 400)
	c.check(env, pDeliveries, noAuth(get(call(done.id, "/deliveries"))), 401)
	c.check(env, pDeliveries, wrongWS(get(call(done.id, "/deliveries"))), 403)
	c.check(env, pDeliveries, as(get(call(done.id, "/deliveries")), otherKey, "ws_other"), 404)

	c.check(env, pRedeliver, post(call(done.id, "/redeliver"), ""), 202)
	c.check(env, pRedeliver, post(call(done.id, "/redeliver"), `{"sequence":5}`), 202)
	c.check(env, pRedeliver, post(call(done.id, "/redeliver"), `{"event_id":"`+done.id+`-1"}`), 202)
	c.check(env, pRedeliver, post(call(done.id, "/redeliver"), `{}`), 202)
	c.check(env, pRedeliver, post(call(done.id, "/redeliver"), `[]`), 400)
	c.check(env, pRedeliver, noWS(post(call(done.id, "/redeliver"), "")), 400)
	c.check(env, pRedeliver, noAuth(post(call(done.id, "/redeliver"), "")), 401)
	c.check(env, pRedeliver, wrongWS(post(call(done.id, "/redeliver"), "")), 403)
	c.check(env, pRedeliver, post(call(missingID, "/redeliver"), ""), 404)
	c.check(env, pRedeliver, post(call(done.id, "/redeliver"), `{"sequence":9}`), 404)
	c.check(env, pRedeliver, post(call(queued.id, "/redeliver"), ""), 409)
	c.check(env, pRedeliver, post(call(done.id, "/redeliver"), big), 413)
	c.check(env, pRedeliver, ct(post(call(done.id, "/redeliver"), `{}`), "text/plain"), 415)
	c.check(env, pRedeliver, post(call(done.id, "/redeliver"), `{"sequence":1,"event_id":"x"}`), 422)

	c.check(env, pCancel, post(call(live.id, "/cancel"), `{"reason":"contract"}`), 202)
	c.check(env, pCancel, post(call(queued.id, "/cancel"), ""), 202)
	c.check(env, pCancel, post(call(live.id, "/cancel"), `{`), 400)
	c.check(env, pCancel, noWS(post(call(live.id, "/cancel"), "")), 400)
	c.check(env, pCancel, noAuth(post(call(live.id, "/cancel"), "")), 401)
	c.check(env, pCancel, wrongWS(post(call(live.id, "/cancel"), "")), 403)
	c.check(env, pCancel, as(post(call(live.id, "/cancel"), ""), otherKey, "ws_other"), 404)
	c.check(env, pCancel, post(call(done.id, "/cancel"), ""), 409)
	c.check(env, pCancel, post(call(live.id, "/cancel"), big), 413)
	c.check(env, pCancel, ct(post(call(live.id, "/cancel"), `{}`), "text/plain"), 415)
	c.check(env, pCancel, post(call(live.id, "/cancel"), `{"reason":1}`), 422)

	// ws_slow may send one request every 2 s: its cancel takes the token,
	// then every write route is 429.
	slowReq := func(r req) req { return as(r, slowKey, "ws_slow") }
	c.check(env, pCancel, slowReq(post(call(slow.id, "/cancel"), "")), 202)
	c.check(env, pCancel, slowReq(post(call(slow.id, "/cancel"), "")), 429)
	c.check(env, pRedeliver, slowReq(post(call(slow.id, "/redeliver"), "")), 429)
	c.check(env, pCall, slowReq(req{body: `{"to":"+15550100001","call_agent_id":"slow_agent"}`}), 429)

	// Kafka refusing writes: 503 on every write route.
	env.p.mu.Lock()
	env.p.err = errors.New("kafka: NOT_ENOUGH_REPLICAS")
	env.p.mu.Unlock()
	c.check(env, pCall, req{body: createAccept}, 503)
	c.check(env, pCancel, post(call(live.id, "/cancel"), ""), 503)
	c.check(env, pRedeliver, post(call(done.id, "/redeliver"), ""), 503)
	// The call records database down: 503 on every state route.
	down := newTestEnv(t)
	_ = down.st.Close()
	for tmpl, r := range map[string]req{pState: get(call(done.id, "")), pCalls: get("/v1/api/calls"),
		pDeliveries: get(call(done.id, "/deliveries")), pCallsExport: get("/v1/api/calls/export?format=csv")} {
		c.check(down, tmpl, r, 503)
	}
	c.check(down, "/readyz", get("/readyz"), 503)

	// Operations.
	ops := newTestEnv(t)
	c.check(ops, "/healthz", get("/healthz"), 200)
	c.check(ops, "/readyz", get("/readyz"), 200)
	c.check(ops, "/metrics", get("/metrics"), 200)
	c.check(ops, "/openapi.json", get("/openapi.json"), 200)

	// 409 on POST /v1/api/call: the same Idempotency-Key while the first
	// request is still being written.
	busyEnv, finish := inFlight(t, req{idemKey: "in-flight", body: createAccept})
	c.check(busyEnv, pCall, req{idemKey: "in-flight", body: createAccept}, 409)
	finish()

	// The do-not-call list routes, and the compliance refusal of a call.
	const (
		pSup  = "/v1/api/suppressions/{number}"
		pSups = "/v1/api/suppressions"
		sup   = "/v1/api/suppressions/+15550104321"
	)
	senv := newTestEnv(t)
	put := func(path, body string) req { return req{method: "PUT", path: path, body: body} }
	del := func(path string) req { return req{method: "DELETE", path: path} }
	c.check(senv, pSup, put(sup, `{"reason":"opt_out"}`), 200)
	c.check(senv, pCall, req{body: `{"to":"+15550104321","call_agent_id":"` + demoAgent + `"}`}, 422)
	c.check(senv, pCall, req{body: `{"to":"+19005550123","call_agent_id":"` + demoAgent + `"}`}, 422)
	c.check(senv, pSup, put(sup, `[]`), 400)
	c.check(senv, pSup, noAuth(put(sup, `{}`)), 401)
	c.check(senv, pSup, wrongWS(put(sup, `{}`)), 403)
	c.check(senv, pSup, ct(put(sup, `{}`), "text/plain"), 415)
	c.check(senv, pSup, put(sup, `{"reason":"bored"}`), 422)
	c.check(senv, pSup, get(sup), 200)
	c.check(senv, pSup, noAuth(get(sup)), 401)
	c.check(senv, pSup, wrongWS(get(sup)), 403)
	c.check(senv, pSup, as(get(sup), otherKey, "ws_other"), 404)
	c.check(senv, pSup, get("/v1/api/suppressions/12ab"), 422)
	c.check(senv, pSups, get(pSups+"?limit=1"), 200)
	c.check(senv, pSups, get(pSups+"?limit=0"), 400)
	c.check(senv, pSups, noAuth(get(pSups)), 401)
	c.check(senv, pSups, wrongWS(get(pSups)), 403)
	c.check(senv, pSup, as(del(sup), otherKey, "ws_other"), 404)
	c.check(senv, pSup, del("/v1/api/suppressions/12ab"), 422)
	c.check(senv, pSup, noAuth(del(sup)), 401)
	c.check(senv, pSup, wrongWS(del(sup)), 403)
	c.check(senv, pSup, del(sup), 204)
	const (
		pImport = "/v1/api/suppressions/import"
		pExport = "/v1/api/suppressions/export"
	)
	csvReq := func(body string) req { return req{path: pImport, body: body, contentType: "text/csv"} }
	c.check(senv, pImport, csvReq("number,reason\n+15550104321,complaint\n+15550104322,\n"), 200)
	c.check(senv, pImport, csvReq("+15550104321,complaint\n12ab,opt_out\n+15550104322,bored\n"), 422)
	c.check(senv, pImport, ct(csvReq("+15550104321"), "application/json"), 415)
	c.check(senv, pImport, csvReq(strings.Repeat("+15550104321,manual\n", 5<<20/20+1)), 413)
	c.check(senv, pImport, noAuth(csvReq("+15550104321")), 401)
	c.check(senv, pImport, wrongWS(csvReq("+15550104321")), 403)
	c.check(senv, pExport, get(pExport), 200)
	c.check(senv, pExport, noAuth(get(pExport)), 401)
	c.check(senv, pExport, wrongWS(get(pExport)), 403)
	loading := newTestEnv(t, func(c *Config) { c.Suppressions = compliance.NewTable() })
	c.check(loading, pSup, put(sup, `{}`), 503)
	c.check(loading, pSup, get(sup), 503)
	c.check(loading, pSup, del(sup), 503)
	c.check(loading, pSups, get(pSups), 503)
	c.check(loading, pImport, csvReq("+15550104321"), 503)
	c.check(loading, pExport, get(pExport), 503)
	c.check(loading, pCall, req{body: createAccept}, 503)

	// The agent's report route: a report event also shows on the call.
	const pReports = "/v1/agent/calls/{callId}/reports"
	renv := reportEnv(t, t0.Add(time.Hour))
	rlive := demoCall(1, t0.Add(50*time.Minute))
	rdone := demoCall(2, t0)
	for _, f := range []fixture{rlive, rdone} {
		renv.feed(t, f.request(t, 3, 0))
	}
	renv.feed(t, eventRecords(t, rlive.dialing())...)
	renv.feed(t, eventRecords(t, rdone.completed())...)
	at := t0.Add(6 * time.Second)
	amd := rdone.event(6, schemas.StatusAgentReport, at)
	amd.Report = &schemas.AgentReport{ID: "amd", Type: schemas.ReportTypeAnsweredBy, At: at, AnsweredBy: schemas.AnsweredByHuman}
	amd.ReportReceivedAt, amd.AnsweredBy = &at, schemas.AnsweredByHuman
	renv.feed(t, eventRecord(t, amd))
	c.check(renv, pState, get(call(rdone.id, "")), 200)
	rtok := tokenFor(rlive, t0.Add(2*time.Hour))
	reportReq := func(id, auth, body string) req { return req{path: reportPath(id), auth: auth, body: body} }
	c.check(renv, pReports, reportReq(rlive.id, rtok, resultBody), 202)
	c.check(renv, pReports, reportReq(rlive.id, rtok, `{"id":`), 400)
	c.check(renv, pReports, reportReq(rlive.id, "Bearer "+demoKey, resultBody), 401)
	unknown := demoCall(7, t0)
	c.check(renv, pReports, reportReq(unknown.id, tokenFor(unknown, t0.Add(2*time.Hour)), resultBody), 404)
	c.check(renv, pReports, reportReq(rdone.id, tokenFor(rdone, t0.Add(2*time.Hour)), resultBody), 409)
	c.check(renv, pReports, reportReq(rlive.id, rtok, `{"id":"x","type":"result","at":"2026-03-01T10:00:04Z","result":{"summary":"`+strings.Repeat("x", maxReportBytes)+`"}}`), 413)
	c.check(renv, pReports, ct(reportReq(rlive.id, rtok, resultBody), "text/plain"), 415)
	c.check(renv, pReports, reportReq(rlive.id, rtok, `{"id":"x","type":"transfer","at":"2026-03-01T10:00:04Z","transfer":{"to":"5"}}`), 422)
	renv.p.mu.Lock()
	renv.p.err = errors.New("kafka: NOT_ENOUGH_REPLICAS")
	renv.p.mu.Unlock()
	c.check(renv, pReports, reportReq(rlive.id, rtok, resultBody), 503)

	checkCampaignContract(c)
	checkStreamContract(c)

	// Every status code the document lists was seen, for every route (500
	// is a bug no input reaches).
	var missing []string
	for path, item := range c.doc.Paths.Map() {
		for method, op := range item.Operations() {
			for code := range op.Responses.Map() {
				key := fmt.Sprintf("%s %s %s", method, path, code)
				if code != "500" && !c.seen[key] {
					missing = append(missing, key)
				}
			}
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("documented answers never checked: %v", missing)
	}
}

// eachNDJSONLine checks that an NDJSON body is exactly n lines, each a
// value of the document's schema name: the body itself is only a string
// to the document.
func (c *contract) eachNDJSONLine(body []byte, name string, n int) {
	c.t.Helper()
	lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
	if len(lines) != n || !bytes.HasSuffix(body, []byte("\n")) {
		c.t.Fatalf("%d lines, want %d:\n%s", len(lines), n, body)
	}
	schema := c.doc.Components.Schemas[name].Value
	for i, l := range lines {
		var v any
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			c.t.Fatalf("line %d is not JSON: %v", i+1, err)
		}
		if err := schema.VisitJSON(v); err != nil {
			c.t.Errorf("line %d is not a %s: %v", i+1, name, err)
		}
	}
}

func init() {
	openapi3filter.RegisterBodyDecoder("application/x-ndjson", openapi3filter.PlainBodyDecoder)
	openapi3filter.RegisterBodyDecoder("text/event-stream", openapi3filter.PlainBodyDecoder)
}

// The validation is not vacuous: an answer with an undocumented field, a
// wrong type or an undocumented status fails it.
func TestOpenAPIContractCatchesDrift(t *testing.T) {
	doc := loadOpenAPI(t)
	item := doc.Paths.Value("/v1/api/call/{callId}")
	op := item.GetOperation("GET")
	r := newRequest(req{method: "GET", path: "/v1/api/call/0000000000000000000f00d0"})
	opts := &openapi3filter.Options{IncludeResponseStatus: true}
	in := &openapi3filter.RequestValidationInput{Request: r, PathParams: map[string]string{"callId": "0000000000000000000f00d0"},
		Route: &routers.Route{Spec: doc, Path: "/v1/api/call/{callId}", PathItem: item, Method: "GET", Operation: op}, Options: opts}
	h := http.Header{"Content-Type": {"application/json; charset=utf-8"}}
	for _, tc := range []struct {
		code int
		body string
	}{
		{200, `{"status":"success","call":{"callId":"0000000000000000000f00d0","status":"queued","sequence":0,"events":[],"extra":1}}`},
		{200, `{"status":"success","call":{"callId":"0000000000000000000f00d0","status":"queued","sequence":"0","events":[]}}`},
		{200, `{"status":"success","call":{"callId":"0000000000000000000f00d0","status":"paused","sequence":0,"events":[]}}`},
		{200, `{"status":"success","call":{"callId":"0000000000000000000f00d0","status":"queued","sequence":0,"events":[],"requested_at":"yesterday"}}`},
		{404, `{"status":"error"}`},
		{418, `{"status":"error","message":"teapot"}`},
	} {
		err := openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
			RequestValidationInput: in, Status: tc.code, Header: h, Body: io.NopCloser(strings.NewReader(tc.body)), Options: opts})
		if err == nil {
			t.Errorf("%d %s passed the contract", tc.code, tc.body)
		}
	}
	ok := `{"status":"success","call":{"callId":"0000000000000000000f00d0","status":"queued","sequence":0,"events":[]}}`
	if err := openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: 200, Header: h, Body: io.NopCloser(strings.NewReader(ok)), Options: opts}); err != nil {
		t.Fatalf("a valid answer failed: %v", err)
	}
}
