package ingest

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// checkCampaignContract is TestOpenAPIContract's part for the campaign
// routes and scheduled calls: every status code the document lists for
// them, each answer validated against it.
func checkCampaignContract(c *contract) {
	t := c.t
	const (
		pCampaigns = "/v1/api/campaigns"
		pContacts  = "/v1/api/campaigns/{campaignId}/contacts"
		missing    = "0123456789abcdef01234567"
	)
	controls := []string{"start", "pause", "resume", "cancel"}
	pControl := func(a string) string { return "/v1/api/campaigns/{campaignId}/" + a }
	body := "{" + campaignBase + `,"contacts":[{"to":"+15550100001","contact_id":"c-1","dynamic_variables":{"firstName":"Ada"}},{"to":"12ab"}]}`
	post := func(path, body string) req { return req{path: path, body: body} }
	csvReq := func(path, body string) req { return req{path: path, body: body, contentType: "text/csv"} }
	noWS := func(r req) req { r.workspace = "-"; return r }
	noAuth := func(r req) req { r.key = "-"; return r }
	wrongWS := func(r req) req { r.workspace = "ws_other"; return r }
	ct := func(r req, v string) req { r.contentType = v; return r }
	as := func(r req, key, ws string) req { r.key, r.workspace = key, ws; return r }
	created := func(env *testEnv, start bool) string {
		b := body
		if start {
			b = strings.Replace(b, `"name":"renewals"`, `"name":"renewals","start":true`, 1)
		}
		w := c.check(env, pCampaigns, post(pCampaigns, b), 201)
		var got CampaignCreated
		mustUnmarshal(t, w.Body.Bytes(), &got)
		return got.CampaignID
	}

	env := newTestEnv(t)
	id := created(env, false)
	created(env, true)
	c.check(env, pCampaigns, post(pCampaigns, `[]`), 400)
	c.check(env, pCampaigns, noWS(post(pCampaigns, body)), 400)
	c.check(env, pCampaigns, noAuth(post(pCampaigns, body)), 401)
	c.check(env, pCampaigns, wrongWS(post(pCampaigns, body)), 403)
	c.check(env, pCampaigns, post(pCampaigns, strings.Replace(body, demoAgent, otherAgent, 1)), 404)
	c.check(env, pCampaigns, post(pCampaigns, `{"name":"`+strings.Repeat("x", maxCampaignBodyBytes)+`"}`), 413)
	c.check(env, pCampaigns, ct(post(pCampaigns, body), "text/plain"), 415)
	c.check(env, pCampaigns, post(pCampaigns, strings.Replace(body, `"end":"19:00"`, `"end":"09:00"`, 1)), 422)

	// Idempotency-Key: the replay (201, Idempotent-Replayed), another body
	// under the key (422), a malformed key (400), and the 409 while the
	// first request is still being written.
	keyed := func(r req, k string) req { r.idemKey = k; return r }
	c.check(env, pCampaigns, keyed(post(pCampaigns, body), "contract"), 201)
	if w := c.check(env, pCampaigns, keyed(post(pCampaigns, body), "contract"), 201); w.Header().Get(HeaderReplayed) != "true" {
		t.Fatalf("replay: %v", w.Header())
	}
	c.check(env, pCampaigns, keyed(post(pCampaigns, strings.Replace(body, `"renewals"`, `"winback"`, 1)), "contract"), 422)
	c.check(env, pCampaigns, keyed(post(pCampaigns, body), "caf\u00e9"), 400)
	busy, finish := inFlight(t, keyed(post(pCampaigns, body), "in-flight"))
	c.check(busy, pCampaigns, keyed(post(pCampaigns, body), "in-flight"), 409)
	finish()

	contacts := "/v1/api/campaigns/" + id + "/contacts"
	c.check(env, pContacts, csvReq(contacts, "to,contact_id,firstName,metadata.crm\n+15550100002,c-2,Bob,7\nnope,c-3,,\n"), 200)
	c.check(env, pContacts, post(contacts, `[{"to":"+15550100003","timezone":"Europe/Berlin","metadata":{"a":1}},{"to":"+15550100003"}]`), 200)
	c.check(env, pContacts, post(contacts, `{"to":"+15550100004"}`), 400)
	c.check(env, pContacts, noWS(post(contacts, `[]`)), 400)
	c.check(env, pContacts, noAuth(post(contacts, `[]`)), 401)
	c.check(env, pContacts, wrongWS(post(contacts, `[]`)), 403)
	c.check(env, pContacts, as(post(contacts, `[]`), otherKey, "ws_other"), 404)
	c.check(env, pContacts, post("/v1/api/campaigns/"+missing+"/contacts", `[]`), 404)
	huge := req{path: contacts, bodyReader: io.MultiReader(strings.NewReader("["), strings.NewReader(strings.Repeat(" ", maxContactsBodyBytes+1)))}
	c.check(env, pContacts, huge, 413)
	c.check(env, pContacts, ct(post(contacts, `[]`), "text/plain"), 415)
	c.check(env, pContacts, csvReq(contacts, "number\n+15550100005\n"), 422)

	for _, a := range controls {
		p := "/v1/api/campaigns/" + id + "/" + a
		c.check(env, pControl(a), post(p, ""), 202)
		c.check(env, pControl(a), post(p, `{`), 400)
		c.check(env, pControl(a), noWS(post(p, "")), 400)
		c.check(env, pControl(a), noAuth(post(p, "")), 401)
		c.check(env, pControl(a), wrongWS(post(p, "")), 403)
		c.check(env, pControl(a), as(post(p, ""), otherKey, "ws_other"), 404)
		c.check(env, pControl(a), post("/v1/api/campaigns/"+missing+"/"+a, ""), 404)
		c.check(env, pControl(a), post(p, `{"x":"`+strings.Repeat("x", 70<<10)+`"}`), 413)
		c.check(env, pControl(a), ct(post(p, `{}`), "text/plain"), 415)
		c.check(env, pControl(a), post(p, `{"now":true}`), 422)
	}
	// The cancel above ended it.
	for _, a := range controls {
		c.check(env, pControl(a), post("/v1/api/campaigns/"+id+"/"+a, ""), 409)
	}
	c.check(env, pContacts, csvReq(contacts, "to\n+15550100006\n"), 409)

	// A scheduled call: the seed's answer, status scheduled.
	at := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	c.check(env, "/v1/api/call", post("/v1/api/call", `{"to":"+15550100001","call_agent_id":"`+demoAgent+`","start_at":"`+at+`","defer_to_calling_hours":true}`), 202)

	// The campaign reads: this replica's own campaign before the records
	// have it, and the refusals.
	const pCampaign = "/v1/api/campaigns/{campaignId}"
	get := func(path string) req { return req{method: "GET", path: path} }
	w := c.check(env, pCampaign, get("/v1/api/campaigns/"+id), 200)
	assertContains(t, w.Body.String(), `"status":"canceled"`, `"by_state":{"queued":3}`)
	c.check(env, pCampaign, noWS(get("/v1/api/campaigns/"+id)), 400)
	c.check(env, pCampaign, noAuth(get("/v1/api/campaigns/"+id)), 401)
	c.check(env, pCampaign, wrongWS(get("/v1/api/campaigns/"+id)), 403)
	c.check(env, pCampaign, as(get("/v1/api/campaigns/"+id), otherKey, "ws_other"), 404)
	c.check(env, pCampaign, get("/v1/api/campaigns/"+missing), 404)
	down := newTestEnv(t)
	_ = down.st.Close()
	c.check(down, pCampaign, get("/v1/api/campaigns/"+missing), 503)

	const pExport = "/v1/api/campaigns/{campaignId}/export"
	c.check(env, pCampaigns, get(pCampaigns), 200)
	c.check(env, pCampaigns, get(pCampaigns+"?status=running&limit=5"), 200)
	c.check(env, pCampaigns, get(pCampaigns+"?status=sleeping"), 400)
	c.check(env, pCampaigns, noAuth(get(pCampaigns)), 401)
	c.check(env, pCampaigns, wrongWS(get(pCampaigns)), 403)
	c.check(down, pCampaigns, get(pCampaigns), 503)
	c.check(env, pContacts, get(contacts), 200)
	c.check(env, pContacts, get(contacts+"?status=queued&limit=2"), 200)
	c.check(env, pContacts, get(contacts+"?limit=0"), 400)
	c.check(env, pContacts, as(get(contacts), otherKey, "ws_other"), 404)
	c.check(env, pContacts, noAuth(get(contacts)), 401)
	c.check(env, pContacts, wrongWS(get(contacts)), 403)
	c.check(env, pExport, get("/v1/api/campaigns/"+id+"/export"), 200)
	c.check(env, pExport, noAuth(get("/v1/api/campaigns/"+id+"/export")), 401)
	c.check(env, pExport, wrongWS(get("/v1/api/campaigns/"+id+"/export")), 403)
	c.check(env, pExport, get("/v1/api/campaigns/"+missing+"/export"), 404)
	c.check(down, pExport, get("/v1/api/campaigns/"+missing+"/export"), 503)
	c.check(down, pContacts, get("/v1/api/campaigns/"+missing+"/contacts"), 503)

	// Kafka refusing writes.
	live := created(env, true)
	env.p.mu.Lock()
	env.p.err = errors.New("kafka: NOT_ENOUGH_REPLICAS")
	env.p.mu.Unlock()
	c.check(env, pCampaigns, post(pCampaigns, body), 503)
	c.check(env, pContacts, csvReq("/v1/api/campaigns/"+live+"/contacts", "to\n+15550100007\n"), 503)
	for _, a := range controls {
		c.check(env, pControl(a), post("/v1/api/campaigns/"+live+"/"+a, ""), 503)
	}

	// ws_slow may send one request every 2 s: its campaign takes the
	// token, then every campaign route is 429.
	slow := newTestEnv(t)
	slowReq := func(r req) req { return as(r, slowKey, "ws_slow") }
	slowBody := strings.Replace(body, demoAgent, "slow_agent", 1)
	w = c.check(slow, pCampaigns, slowReq(post(pCampaigns, slowBody)), 201)
	var sc CampaignCreated
	mustUnmarshal(t, w.Body.Bytes(), &sc)
	c.check(slow, pCampaigns, slowReq(post(pCampaigns, slowBody)), 429)
	c.check(slow, pContacts, slowReq(post("/v1/api/campaigns/"+sc.CampaignID+"/contacts", `[]`)), 429)
	for _, a := range controls {
		c.check(slow, pControl(a), slowReq(post("/v1/api/campaigns/"+sc.CampaignID+"/"+a, "")), 429)
	}
}

func assertContains(t testing.TB, s string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(s, w) {
			t.Fatalf("%s lacks %s", s, w)
		}
	}
}
