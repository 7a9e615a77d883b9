package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/compliance"
	"github.com/dialstream/dialstream/internal/registry"
	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/dialstream/dialstream/schemas"
)

// strictRegistry is ws_demo with the compliance defaults (US only, 08:00-21:00
// in the callee's time zone): what production gets without a compliance:
// block.
func strictRegistry(t *testing.T) *registry.Registry {
	t.Helper()
	r, err := registry.Parse([]byte(`
workspaces:
  - id: ws_demo
    api_key_sha256: ["`+registry.HashKey(demoKey)+`"]
    limits: {requests_per_second: 1000000}
    compliance: {home_country: US}
agents:
  - {id: `+demoAgent+`, workspace: ws_demo, livekit_agent_name: demo, sip_trunk_id: ST_x}
`), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return r
}

type refusal struct {
	Status        string       `json:"status"`
	Message       string       `json:"message"`
	Errors        []FieldError `json:"errors"`
	Rule          string       `json:"rule"`
	NextAllowedAt string       `json:"next_allowed_at"`
}

func decodeRefusal(t *testing.T, b []byte) refusal {
	t.Helper()
	var r refusal
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return r
}

// A refusal is 422 naming the rule, in the usual error shape, and writes
// nothing; calling hours come with next_allowed_at from the injected clock.
func TestComplianceRefusesAtRequest(t *testing.T) {
	// 03:00 in New York on a Tuesday.
	ny, _ := time.LoadLocation("America/New_York")
	var clock atomic.Pointer[time.Time]
	night := time.Date(2026, 3, 10, 3, 0, 0, 0, ny)
	clock.Store(&night)
	env := newTestEnv(t, func(c *Config) {
		c.Registry = strictRegistry(t)
		c.Now = func() time.Time { return *clock.Load() }
	})
	body := func(to string) string { return `{"to":"` + to + `","call_agent_id":"` + demoAgent + `"}` }

	for _, tc := range []struct{ name, to, rule, mention string }{
		{"premium rate", "+19005550123", "destination_not_allowed", "PREMIUM"},
		{"Cuba", "+5352123456", "destination_not_allowed", "CU"},
		{"New York at 03:00", "+12124567890", "outside_calling_hours", "08:00-21:00"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := env.do(t, req{body: body(tc.to)})
			if w.Code != 422 {
				t.Fatalf("code %d: %s", w.Code, w.Body)
			}
			r := decodeRefusal(t, w.Body.Bytes())
			if r.Status != "error" || r.Rule != tc.rule || !strings.Contains(r.Message, tc.rule) ||
				!strings.Contains(strings.ToUpper(r.Message), strings.ToUpper(tc.mention)) ||
				len(r.Errors) != 1 || r.Errors[0].Field != "to" {
				t.Fatalf("body %s", w.Body)
			}
			if tc.rule == "outside_calling_hours" {
				want := time.Date(2026, 3, 10, 8, 0, 0, 0, ny).UTC().Format(time.RFC3339)
				if r.NextAllowedAt != want {
					t.Fatalf("next_allowed_at %q, want %q", r.NextAllowedAt, want)
				}
			} else if r.NextAllowedAt != "" {
				t.Fatalf("next_allowed_at on %s: %s", tc.rule, w.Body)
			}
		})
	}
	if n := env.p.count(); n != 0 {
		t.Fatalf("%d records produced for refused calls", n)
	}
	noon := time.Date(2026, 3, 10, 12, 0, 0, 0, ny)
	clock.Store(&noon)
	if w := env.do(t, req{body: body("+12124567890")}); w.Code != 202 {
		t.Fatalf("New York at noon: code %d: %s", w.Code, w.Body)
	}
}

// The Idempotency-Key is looked up before the rules: a retry of an accepted
// request gets its stored answer even after the calling hours have closed
// (nothing new is written), a new key is refused, and a key refused by the
// rules is not kept, so it is accepted once they allow the call.
func TestComplianceAfterIdempotencyReplay(t *testing.T) {
	ny, _ := time.LoadLocation("America/New_York")
	var clock atomic.Pointer[time.Time]
	set := func(tm time.Time) { clock.Store(&tm) }
	set(time.Date(2026, 3, 10, 12, 0, 0, 0, ny))
	env := newTestEnv(t, func(c *Config) {
		c.Registry = strictRegistry(t)
		c.Now = func() time.Time { return *clock.Load() }
	})
	body := `{"to":"+12124567890","call_agent_id":"` + demoAgent + `"}`

	first := env.do(t, req{body: body, idemKey: "noon-call"})
	if first.Code != 202 {
		t.Fatalf("at noon: code %d: %s", first.Code, first.Body)
	}
	set(time.Date(2026, 3, 10, 23, 0, 0, 0, ny))
	retry := env.do(t, req{body: body, idemKey: "noon-call"})
	if retry.Code != 202 || retry.Header().Get(HeaderReplayed) != "true" || retry.Body.String() != first.Body.String() {
		t.Fatalf("retry at 23:00: code %d, replayed %q: %s (first %s)", retry.Code, retry.Header().Get(HeaderReplayed), retry.Body, first.Body)
	}
	late := env.do(t, req{body: body, idemKey: "late-call"})
	if late.Code != 422 || decodeRefusal(t, late.Body.Bytes()).Rule != "outside_calling_hours" {
		t.Fatalf("new key at 23:00: code %d: %s", late.Code, late.Body)
	}
	set(time.Date(2026, 3, 11, 9, 0, 0, 0, ny))
	morning := env.do(t, req{body: body, idemKey: "late-call"})
	if morning.Code != 202 || morning.Header().Get(HeaderReplayed) != "" {
		t.Fatalf("refused key next morning: code %d, replayed %q: %s", morning.Code, morning.Header().Get(HeaderReplayed), morning.Body)
	}
	if n := env.p.count(); n != 2 {
		t.Fatalf("%d records produced, want 2 (noon and next morning)", n)
	}
}

// Until the do-not-call list has loaded, calls are 503 with Retry-After and
// nothing is written.
func TestComplianceNotReady(t *testing.T) {
	env := newTestEnv(t, func(c *Config) { c.Suppressions = compliance.NewTable() })
	w := env.do(t, req{body: validBody})
	if w.Code != 503 || w.Header().Get("Retry-After") == "" {
		t.Fatalf("code %d, Retry-After %q: %s", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
	if r := decodeRefusal(t, w.Body.Bytes()); r.Status != "error" || !strings.Contains(r.Message, "do-not-call") {
		t.Fatalf("body %s", w.Body)
	}
	if n := env.p.count(); n != 0 {
		t.Fatalf("%d records produced", n)
	}
}

// Run follows dialstream.suppressions: a listing written to the topic
// refuses the next call to that number (naming the reason), a tombstone
// allows it again, and another workspace's listing changes nothing for
// ws_demo.
func TestComponentSuppressionFollowed(t *testing.T) {
	b := stateBroker(t)
	in := startIngest(t, b.Addr())
	in.waitReady(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const number = "+15550101234"
	for _, ws := range []string{"ws_other", "ws_demo"} {
		rec, err := compliance.SuppressionRecord(schemas.Suppression{WorkspaceID: ws, Number: number,
			Reason: schemas.ReasonComplaint, Source: schemas.SourceAPI, AddedAt: time.Now().UTC()}, EventSource)
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	var last []byte
	testutil.Eventually(t, 15*time.Second, "call refused as suppressed", func() bool {
		code, _, body := post(t, in.url, "", validBody)
		last = body
		return code == 422
	})
	r := decodeRefusal(t, last)
	if r.Rule != "suppressed" || !strings.Contains(r.Message, "complaint") {
		t.Fatalf("body %s", last)
	}
	if err := cl.ProduceSync(ctx, compliance.RemovalRecord("ws_demo", number)).FirstErr(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 15*time.Second, "call accepted after removal", func() bool {
		code, _, _ := post(t, in.url, "", validBody)
		return code == 202
	})
}

// send sends one authenticated request to a running ingest.
func (r *runningIngest) send(t *testing.T, method, path, key, ws, body string) (int, []byte) {
	t.Helper()
	hr, _ := http.NewRequest(method, r.url+path, strings.NewReader(body))
	hr.Header.Set("Authorization", "Bearer "+key)
	hr.Header.Set("x-workspace-id", ws)
	hr.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// suppressionRecords counts the records of dialstream.suppressions now.
func suppressionRecords(t *testing.T, addr string) int64 {
	t.Helper()
	adm, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(adm).ListEndOffsets(ctx, schemas.TopicSuppressions)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

// Through the API against the broker: a call right after a 2xx PUT is
// refused (read-your-writes), removal allows it again, another workspace
// neither sees nor removes the entry, and bad input writes nothing.
func TestComponentSuppressionRoutes(t *testing.T) {
	b := stateBroker(t)
	in := startIngest(t, b.Addr())
	in.waitReady(t)
	const path = "/v1/api/suppressions/+15550101234"

	code, body := in.send(t, "PUT", path, demoKey, "ws_demo", `{"reason":"opt_out"}`)
	if code != 200 || !strings.Contains(string(body), `"reason":"opt_out"`) {
		t.Fatalf("PUT: %d %s", code, body)
	}
	code, _, body = post(t, in.url, "", validBody)
	if r := decodeRefusal(t, body); code != 422 || r.Rule != "suppressed" || !strings.Contains(r.Message, "opt_out") {
		t.Fatalf("call right after PUT: %d %s", code, body)
	}
	written := suppressionRecords(t, b.Addr())

	for _, tc := range []struct {
		name, method, path, key, ws, body string
		code                              int
		mention                           string
	}{
		{"other workspace GET", "GET", path, otherKey, "ws_other", "", 404, "not on this workspace's"},
		{"other workspace DELETE", "DELETE", path, otherKey, "ws_other", "", 404, "not on this workspace's"},
		{"malformed number", "PUT", "/v1/api/suppressions/12ab", demoKey, "ws_demo", `{"reason":"opt_out"}`, 422, `"field":"number"`},
		{"unknown reason", "PUT", path, demoKey, "ws_demo", `{"reason":"bored"}`, 422, "opt_out, complaint"},
		{"unknown field", "PUT", path, demoKey, "ws_demo", `{"reasons":"opt_out"}`, 400, "reasons"},
	} {
		code, body := in.send(t, tc.method, tc.path, tc.key, tc.ws, tc.body)
		if code != tc.code || !strings.Contains(string(body), tc.mention) {
			t.Errorf("%s: %d %s", tc.name, code, body)
		}
	}
	if n := suppressionRecords(t, b.Addr()); n != written {
		t.Fatalf("refused requests wrote %d records", n-written)
	}
	code, body = in.send(t, "GET", "/v1/api/suppressions?limit=10", demoKey, "ws_demo", "")
	if code != 200 || !strings.Contains(string(body), "+15550101234") {
		t.Fatalf("list: %d %s", code, body)
	}
	if code, body = in.send(t, "GET", "/v1/api/suppressions", otherKey, "ws_other", ""); code != 200 || strings.Contains(string(body), "+1555") {
		t.Fatalf("other workspace's list: %d %s", code, body)
	}

	if code, body = in.send(t, "DELETE", path, demoKey, "ws_demo", ""); code != 204 {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	if code, _, body = post(t, in.url, "", validBody); code != 202 {
		t.Fatalf("call right after DELETE: %d %s", code, body)
	}
}

// A CSV import is all or nothing: bad rows are reported by row number and
// nothing is written; a good file lists every row, which the next call and
// the export see.
func TestComponentSuppressionImport(t *testing.T) {
	b := stateBroker(t)
	in := startIngest(t, b.Addr())
	in.waitReady(t)
	csvPost := func(body string) (int, []byte) {
		t.Helper()
		hr, _ := http.NewRequest("POST", in.url+"/v1/api/suppressions/import", strings.NewReader(body))
		hr.Header.Set("Authorization", "Bearer "+demoKey)
		hr.Header.Set("x-workspace-id", "ws_demo")
		hr.Header.Set("Content-Type", "text/csv")
		resp, err := http.DefaultClient.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, out
	}
	before := suppressionRecords(t, b.Addr())
	code, body := csvPost("number,reason\n+15550101234,opt_out\n12ab,opt_out\n+15550101235,bored\n+15550101236,a,b\n")
	r := decodeRefusal(t, body)
	if code != 422 || len(r.Errors) != 3 || r.Errors[0].Field != "row 3" || r.Errors[1].Field != "row 4" ||
		!strings.Contains(r.Errors[1].Message, "bored") || r.Errors[2].Field != "row 5" {
		t.Fatalf("bad rows: %d %s", code, body)
	}
	if n := suppressionRecords(t, b.Addr()); n != before {
		t.Fatalf("a refused import wrote %d records", n-before)
	}
	if code, _, body := post(t, in.url, "", validBody); code != 202 {
		t.Fatalf("call after refused import: %d %s", code, body)
	}

	if code, body = csvPost("+15550101234,dnc_registry\n+1 555 010 1235,\n"); code != 200 || !strings.Contains(string(body), `"imported":2`) {
		t.Fatalf("import: %d %s", code, body)
	}
	code, _, body = post(t, in.url, "", validBody)
	if r := decodeRefusal(t, body); code != 422 || r.Rule != "suppressed" || !strings.Contains(r.Message, "dnc_registry") {
		t.Fatalf("call right after import: %d %s", code, body)
	}
	code, body = in.send(t, "GET", "/v1/api/suppressions/export", demoKey, "ws_demo", "")
	lines := strings.Split(strings.TrimSpace(string(body)), "\n")
	if code != 200 || len(lines) != 3 || lines[0] != "number,reason,added_at" ||
		!strings.HasPrefix(lines[1], "+15550101234,dnc_registry,") || !strings.HasPrefix(lines[2], "+15550101235,manual,") {
		t.Fatalf("export: %d %q", code, body)
	}
	if code, body = in.send(t, "GET", "/v1/api/suppressions/export", otherKey, "ws_other", ""); code != 200 || strings.Contains(string(body), "+1555") {
		t.Fatalf("other workspace's export: %d %s", code, body)
	}

	// A file of more rows than one chunk, with a number listed twice: every
	// number is listed, the twice-listed one with its last row's reason,
	// and all are in effect at the 200.
	var big strings.Builder
	big.WriteString("+15550102000,complaint\n")
	for i := range 2500 {
		fmt.Fprintf(&big, "+1555010%04d,opt_out\n", 5000+i)
	}
	big.WriteString("+15550102000,wrong_number\n")
	if code, body = csvPost(big.String()); code != 200 || !strings.Contains(string(body), `"imported":2502`) {
		t.Fatalf("big import: %d %s", code, body)
	}
	code, body = in.send(t, "GET", "/v1/api/suppressions/export", demoKey, "ws_demo", "")
	if lines := strings.Split(strings.TrimSpace(string(body)), "\n"); code != 200 || len(lines) != 1+2+2501 {
		t.Fatalf("export after the big import: %d, %d lines", code, len(lines))
	}
	if code, body = in.send(t, "GET", "/v1/api/suppressions/+15550102000", demoKey, "ws_demo", ""); code != 200 || !strings.Contains(string(body), `"reason":"wrong_number"`) {
		t.Fatalf("the twice-listed number: %d %s", code, body)
	}
	if code, body = in.send(t, "GET", "/v1/api/suppressions/+15550107499", demoKey, "ws_demo", ""); code != 200 {
		t.Fatalf("the last row of the big import: %d %s", code, body)
	}
}
