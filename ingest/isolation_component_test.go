package ingest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/dialstream/dialstream/schemas"
)

// Isolation on every route of the served OpenAPI document: each operation is
// tried as workspace B (ws_other) on workspace A's (ws_demo) resources, and
// with one workspace's key on the other's x-workspace-id. The README's
// promises: another workspace's call, agent or listed number is a 404
// identical to one that exists nowhere; a list never shows another
// workspace's entries; a key opens only its own workspace (403). And nothing
// of A's changes: A reads the same call, deliveries and list afterwards, and
// no record lands in Kafka (but B's own writes to B's own list).
//
// An operation the table below does not know fails the test: a route added
// to the OpenAPI document is covered the day it is added, or the build says so.

// isoKind is how an operation relates to another workspace's resources.
type isoKind int

const (
	// isoForeign: the path names a resource of A (a call id, a listed
	// number); B gets 404, identical to a resource that exists nowhere.
	isoForeign isoKind = iota + 1
	// isoForeignRef: the body names a resource of A (an agent); the same.
	isoForeignRef
	// isoList: B's answer is 200 and shows nothing of A's.
	isoList
	// isoOwn: the path or body names a number, which for B is B's own
	// list entry: B's write succeeds and touches only B's list.
	isoOwn
	// isoPublic: no workspace (ops endpoints); shows nothing of A's.
	isoPublic
	// isoReportToken: authorized by a call's report token only (the
	// agent's report route): B's token for B's own call, or B's API key,
	// on A's call is 401 and writes nothing.
	isoReportToken
	// isoStream: B's event stream opens (200) and shows nothing of A's
	// (TestComponentEventStream has A's events written while B listens).
	isoStream
)

type isoCase struct {
	kind        isoKind
	contentType string
	body        string // {agent} is A's agent, {missing} an agent that exists nowhere
	query       string // sent as the URL's query
}

var isolationCases = map[string]isoCase{
	"createCall":             {kind: isoForeignRef, contentType: "application/json", body: `{"to":"+15550100009","call_agent_id":"{agent}"}`},
	"getCall":                {kind: isoForeign},
	"cancelCall":             {kind: isoForeign, contentType: "application/json", body: `{"reason":"not yours"}`},
	"listDeliveries":         {kind: isoForeign},
	"redeliverEvents":        {kind: isoForeign, contentType: "application/json", body: `{}`},
	"listCalls":              {kind: isoList},
	"exportCalls":            {kind: isoList, query: "format=ndjson"},
	"agentReport":            {kind: isoReportToken, contentType: "application/json", body: `{"id":"r1","type":"answered_by","at":"2026-03-01T10:00:00Z","answered_by":"human"}`},
	"putSuppression":         {kind: isoOwn, contentType: "application/json", body: `{"reason":"complaint"}`},
	"deleteSuppression":      {kind: isoForeign},
	"getSuppression":         {kind: isoForeign},
	"listSuppressions":       {kind: isoList},
	"importSuppressions":     {kind: isoOwn, contentType: "text/csv", body: "{number},wrong_number\n"},
	"exportSuppressions":     {kind: isoList},
	"createCampaign":         {kind: isoForeignRef, contentType: "application/json", body: "{" + strings.Replace(campaignBase, demoAgent, "{agent}", 1) + "}"},
	"uploadCampaignContacts": {kind: isoForeign, contentType: "text/csv", body: "to,firstName\n+15550100009,Bo\n"},
	"getCampaign":            {kind: isoForeign},
	"listCampaigns":          {kind: isoList},
	"listCampaignContacts":   {kind: isoForeign},
	"exportCampaign":         {kind: isoForeign},
	"startCampaign":          {kind: isoForeign},
	"pauseCampaign":          {kind: isoForeign},
	"resumeCampaign":         {kind: isoForeign},
	"cancelCampaign":         {kind: isoForeign},
	"streamEvents":           {kind: isoStream},
	"healthz":                {kind: isoPublic},
	"readyz":                 {kind: isoPublic},
	"metrics":                {kind: isoPublic},
	"openapi":                {kind: isoPublic},
}

// operation is one path+method of the OpenAPI document.
type operation struct {
	method, path, id string
	workspace        bool // takes x-workspace-id (so an API key)
}

// operations lists every operation of the served document.
func operations(t *testing.T, baseURL string) []operation {
	t.Helper()
	resp, err := http.Get(baseURL + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/openapi.json: %d %v", resp.StatusCode, err)
	}
	return documentOperations(t, body)
}

// documentOperations lists every operation of an OpenAPI document.
func documentOperations(t testing.TB, body []byte) []operation {
	t.Helper()
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(body, &doc); err != nil || len(doc.Paths) == 0 {
		t.Fatalf("OpenAPI document: %v (%d paths)", err, len(doc.Paths))
	}
	var ops []operation
	for path, item := range doc.Paths {
		for method, raw := range item {
			if !slices.Contains([]string{"get", "put", "post", "delete", "patch", "head", "options", "trace"}, method) {
				continue // "parameters", "summary"...
			}
			var op struct {
				OperationID string            `json:"operationId"`
				Parameters  []json.RawMessage `json:"parameters"`
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatal(err)
			}
			o := operation{method: strings.ToUpper(method), path: path, id: op.OperationID}
			for _, p := range op.Parameters {
				if s := string(p); strings.Contains(s, "WorkspaceId") || strings.Contains(strings.ToLower(s), `"x-workspace-id"`) {
					o.workspace = true
				}
			}
			ops = append(ops, o)
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].path+ops[i].method < ops[j].path+ops[j].method })
	return ops
}

// isoRequest is one request's answer.
type isoAnswer struct {
	code int
	body string
}

func (r *runningIngest) raw(t *testing.T, method, path, key, ws, ct, body string) isoAnswer {
	t.Helper()
	hr, _ := http.NewRequest(method, r.url+path, strings.NewReader(body))
	if key != "" {
		hr.Header.Set("Authorization", "Bearer "+key)
		hr.Header.Set("x-workspace-id", ws)
	}
	if ct != "" {
		hr.Header.Set("Content-Type", ct)
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return isoAnswer{resp.StatusCode, string(b)}
}

// endOffsets is the end offset of every partition of every topic.
func endOffsets(t *testing.T, adm *kadm.Client) map[string]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	ends.Each(func(o kadm.ListedOffset) { out[o.Topic] += o.Offset })
	return out
}

// newRecords is the last n records of topic (by time: partitions interleave).
func newRecords(t *testing.T, addr, topic string, n int64) []*kgo.Record {
	t.Helper()
	all := readTopicRecords(t, addr, topic)
	sort.Slice(all, func(i, j int) bool { return all[i].Timestamp.Before(all[j].Timestamp) })
	return all[len(all)-int(n):]
}

func TestComponentIsolationEveryRoute(t *testing.T) {
	b := stateBroker(t)
	createCommandsTopic(t, b.Addr())
	in := startIngest(t, b.Addr(), func(c *Config) { c.AgentReportSecrets = [][]byte{testReportSecret} })
	in.waitReady(t)
	admCl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admCl.Close)
	adm := kadm.NewClient(admCl)

	// A's resources: a live call with events and a delivery attempt (so
	// that cancel and redeliver would succeed for A), its agent, and a
	// number on A's do-not-call list.
	const number, missingNumber = "+15550101234", "+15550109876"
	const missingCall, missingAgent = "0000000000000000000000ff", "c0ffeec0ffeec0ffeec0ffee"
	acc, f := in.place(t, "+15550100001")
	cl := producer(t, b.Addr())
	produceAll(t, cl, eventRecords(t, f.dialing())...)
	produceAll(t, cl, attemptRecord(t, f.attempt(1, schemas.StatusQueued, 1, time.Now(), 200, "", schemas.WebhookSuccess)))
	testutil.Eventually(t, 15*time.Second, "A's call dialing with a delivery", func() bool {
		c, _ := in.state(t, acc.CallID)
		code, body := in.call(t, "GET", "/v1/api/call/"+acc.CallID+"/deliveries", "")
		return c.Status == schemas.StatusDialing && code == 200 && strings.Contains(body, `"attempt":1`)
	})
	if code, body := in.call(t, "PUT", "/v1/api/suppressions/"+number, `{"reason":"opt_out"}`); code != 200 {
		t.Fatalf("A's PUT: %d %s", code, body)
	}
	// A's campaign, running, with a contact.
	const missingCampaign = "0123456789abcdef01234567"
	code, body := in.call(t, "POST", "/v1/api/campaigns", "{"+campaignBase+`,"start":true,"contacts":[{"to":"+15550100002"}]}`)
	var camp CampaignCreated
	if err := json.Unmarshal([]byte(body), &camp); code != 201 || err != nil {
		t.Fatalf("A's campaign: %d %s", code, body)
	}
	params := map[string][2]string{"{callId}": {acc.CallID, missingCall}, "{number}": {number, missingNumber},
		"{campaignId}": {camp.CampaignID, missingCampaign}}

	// What A sees, before and after everything B tries.
	aView := func() map[string]string {
		out := map[string]string{}
		for _, p := range []string{"/v1/api/call/" + acc.CallID, "/v1/api/call/" + acc.CallID + "/deliveries", "/v1/api/calls",
			"/v1/api/suppressions/" + number, "/v1/api/suppressions", "/v1/api/suppressions/export"} {
			a := in.raw(t, "GET", p, demoKey, "ws_demo", "", "")
			if a.code != 200 {
				t.Fatalf("A's GET %s: %d %s", p, a.code, a.body)
			}
			out[p] = a.body
		}
		return out
	}
	before := aView()
	// Nothing of A's may show in an answer to B.
	aMarks := []string{acc.CallID, number, f.room, camp.CampaignID}

	ops := operations(t, in.url)
	var tried []string
	for _, op := range ops {
		c, ok := isolationCases[op.id]
		if !ok {
			t.Errorf("%s %s (operationId %q) has no isolation case: add it to isolationCases", op.method, op.path, op.id)
			continue
		}
		tried = append(tried, op.id)
		fill := func(which int) (string, string) {
			path := op.path
			for _, seg := range strings.Split(op.path, "/") {
				if strings.HasPrefix(seg, "{") {
					v, ok := params[seg]
					if !ok {
						t.Fatalf("%s %s: no resource of A for path parameter %s: add one to params", op.method, op.path, seg)
					}
					path = strings.Replace(path, seg, v[which], 1)
				}
			}
			agent := []string{demoAgent, missingAgent}[which]
			body := strings.NewReplacer("{agent}", agent, "{number}", []string{number, missingNumber}[which]).Replace(c.body)
			if c.query != "" {
				path += "?" + c.query
			}
			return path, body
		}
		path, body := fill(0)
		offsets := endOffsets(t, adm)
		unchanged := func(what string, allowed ...string) {
			t.Helper()
			after := endOffsets(t, adm)
			for topic, n := range after {
				if n != offsets[topic] && !slices.Contains(allowed, topic) {
					t.Errorf("%s %s %s wrote %d records to %s", what, op.method, path, n-offsets[topic], topic)
				}
			}
			offsets = after
		}

		if op.workspace {
			// A key opens its own workspace only, whoever's resource the
			// path names.
			for _, kw := range [][2]string{{otherKey, "ws_demo"}, {demoKey, "ws_other"}} {
				if a := in.raw(t, op.method, path, kw[0], kw[1], c.contentType, body); a.code != http.StatusForbidden {
					t.Errorf("%s %s with %s's key on %s: %d %s; want 403", op.method, path, kw[0], kw[1], a.code, a.body)
				}
			}
			unchanged("a mismatched key")
		}

		switch c.kind {
		case isoPublic:
			a := in.raw(t, op.method, path, "", "", "", "")
			for _, m := range aMarks {
				if strings.Contains(a.body, m) {
					t.Errorf("%s %s shows A's %q", op.method, path, m)
				}
			}
			unchanged("an unauthenticated")
		case isoForeign, isoForeignRef:
			a := in.raw(t, op.method, path, otherKey, "ws_other", c.contentType, body)
			missingPath, missingBody := fill(1)
			m := in.raw(t, op.method, missingPath, otherKey, "ws_other", c.contentType, missingBody)
			// The answer names the id it was asked about; with that
			// swapped, it must be the nowhere-resource's answer, byte for byte.
			swapped := strings.NewReplacer(acc.CallID, missingCall, number, missingNumber, demoAgent, missingAgent, camp.CampaignID, missingCampaign).Replace(a.body)
			if a.code != http.StatusNotFound || swapped != m.body || m.code != http.StatusNotFound {
				t.Errorf("%s %s as B: %d %s\nthe same for a resource that exists nowhere: %d %s", op.method, path, a.code, a.body, m.code, m.body)
			}
			unchanged("B's")
		case isoList:
			a := in.raw(t, op.method, path, otherKey, "ws_other", c.contentType, body)
			if a.code != http.StatusOK {
				t.Errorf("%s %s as B: %d %s", op.method, path, a.code, a.body)
			}
			for _, m := range aMarks {
				if strings.Contains(a.body, m) {
					t.Errorf("%s %s as B shows A's %q: %s", op.method, path, m, a.body)
				}
			}
			unchanged("B's")
		case isoOwn:
			a := in.raw(t, op.method, path, otherKey, "ws_other", c.contentType, body)
			if a.code != http.StatusOK {
				t.Errorf("%s %s as B (B's own list): %d %s", op.method, path, a.code, a.body)
			}
			n := endOffsets(t, adm)[schemas.TopicSuppressions] - offsets[schemas.TopicSuppressions]
			for _, r := range newRecords(t, b.Addr(), schemas.TopicSuppressions, n) {
				var s schemas.Suppression
				if err := json.Unmarshal(r.Value, &s); err != nil || s.WorkspaceID != "ws_other" {
					t.Errorf("%s %s as B wrote a suppression of %q (%v)", op.method, path, s.WorkspaceID, err)
				}
			}
			unchanged("B's own", schemas.TopicSuppressions)
			// B's entry is B's: take it off again, as B.
			if a := in.raw(t, "DELETE", "/v1/api/suppressions/"+number, otherKey, "ws_other", "", ""); a.code != http.StatusNoContent {
				t.Errorf("B's DELETE of B's own entry: %d %s", a.code, a.body)
			}
			unchanged("B's own", schemas.TopicSuppressions)
		case isoReportToken:
			// B's report token for a call of B's own (the missing id
			// stands for it), and B's API key, on A's call.
			tokB := schemas.MintReportToken(testReportSecret, missingCall, "ws_other", time.Now().Add(time.Hour))
			for _, cred := range []string{tokB, otherKey} {
				a := in.raw(t, op.method, path, cred, "ws_other", c.contentType, body)
				if a.code != http.StatusUnauthorized {
					t.Errorf("%s %s with B's %s: %d %s; want 401", op.method, path, cred[:4], a.code, a.body)
				}
			}
			unchanged("B's")
		case isoStream:
			s := openStream(t, in.url+strings.TrimSuffix(path, op.path), otherKey, "ws_other", "")
			if s.code != http.StatusOK {
				t.Errorf("%s %s as B: %d %s", op.method, path, s.code, s.body)
				break
			}
			s.waitLine(t, 10*time.Second, ": stream open")
			s.cancel()
			for _, l := range s.all() {
				for _, m := range aMarks {
					if strings.Contains(l, m) {
						t.Errorf("%s %s as B shows A's %q: %s", op.method, path, m, l)
					}
				}
			}
			unchanged("B's")
		default:
			t.Fatalf("isolation case %q: no kind", op.id)
		}
	}

	after := aView()
	for p, b := range before {
		if after[p] != b {
			t.Errorf("A's GET %s changed:\nbefore %s\nafter  %s", p, b, after[p])
		}
	}
	// The document is what the router serves: every /v1/api route was tried.
	for _, want := range []string{"createCall", "getCall", "cancelCall", "listDeliveries", "redeliverEvents", "listCalls", "exportCalls", "agentReport",
		"putSuppression", "deleteSuppression", "getSuppression", "listSuppressions", "importSuppressions", "exportSuppressions",
		"createCampaign", "uploadCampaignContacts", "getCampaign", "listCampaigns", "listCampaignContacts", "exportCampaign", "startCampaign", "pauseCampaign", "resumeCampaign", "cancelCampaign", "streamEvents"} {
		if !slices.Contains(tried, want) {
			t.Errorf("operation %s was not tried: the served /openapi.json lacks it, or the table does", want)
		}
	}
	t.Logf("%d operations tried: %v", len(tried), tried)
}
