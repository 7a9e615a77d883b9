package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/dialstream/dialstream/schemas"
)

const validBody = `{"to":"+15550101234","call_agent_id":"` + demoAgent + `"}`

func fe(field, msg string) FieldError { return FieldError{Field: field, Message: msg} }

// The seed document's request, with the header and key added and a number
// that exists, is accepted with exactly the documented body.
func TestCreateCallAccepted(t *testing.T) {
	env := newTestEnv(t)
	body := `{
	  "to": "+12025550123",
	  "call_agent_id": "` + demoAgent + `",
	  "callback_url": "https://example.com/webhooks/dialstream",
	  "dynamic_variables": {"firstName": "Ada", "lastName": "Lovelace", "Zipcode": 94105, "address": "1 Main St", "email": "ada@example.com", "vip": true},
	  "metadata": {"crm_id": "abc-123", "tags": ["a", "b"], "n": 1.50}
	}`
	w := env.do(t, req{idemKey: "key-1", body: body})
	if w.Code != http.StatusAccepted {
		t.Fatalf("code %d: %s", w.Code, w.Body)
	}
	assertJSON(t, w.Body.Bytes(), successBody(t, "ws_demo", "key-1", demoAgent, "+12025550123", "3-0"))
	if ct := w.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Fatalf("content type %q", ct)
	}

	recs := env.p.records()
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1", len(recs))
	}
	var resp CallResponse
	_ = json.Unmarshal(w.Body.Bytes(), &resp)
	r := recs[0]
	if r.Topic != schemas.TopicRequested || string(r.Key) != resp.CallID {
		t.Fatalf("record topic %s key %s, want %s key %s", r.Topic, r.Key, schemas.TopicRequested, resp.CallID)
	}
	ev, err := schemas.Decode(r)
	if err != nil {
		t.Fatalf("record does not decode: %v", err)
	}
	if ev.Type != schemas.TypeCallRequested || ev.Source != EventSource || ev.Subject != resp.CallID {
		t.Fatalf("event attributes %+v", ev)
	}
	var data schemas.CallRequested
	if err := json.Unmarshal(ev.Data, &data); err != nil {
		t.Fatal(err)
	}
	want := schemas.CallRequested{
		CallID: resp.CallID, WorkspaceID: "ws_demo", To: "+12025550123", CallAgentID: demoAgent,
		RoomName: resp.RoomName, CallbackURL: "https://example.com/webhooks/dialstream",
		DynamicVariables: map[string]string{"firstName": "Ada", "lastName": "Lovelace", "Zipcode": "94105",
			"address": "1 Main St", "email": "ada@example.com", "vip": "true"},
		IdempotencyKey: "key-1", RequestedAt: data.RequestedAt,
	}
	gotMeta := string(data.Metadata)
	data.Metadata = nil
	if fmt.Sprint(data) != fmt.Sprint(want) {
		t.Fatalf("record data\n got %+v\nwant %+v", data, want)
	}
	// Metadata passes through as sent (whitespace aside): the number keeps
	// its literal 1.50, the key order is the client's.
	if gotMeta != `{"crm_id":"abc-123","tags":["a","b"],"n":1.50}` {
		t.Fatalf("metadata %s", gotMeta)
	}
	if time.Since(data.RequestedAt) > time.Minute {
		t.Fatalf("requested_at %s", data.RequestedAt)
	}
}

// Without an Idempotency-Key the ids are random and well-formed.
func TestCreateCallRandomIDs(t *testing.T) {
	env := newTestEnv(t)
	seen := map[string]bool{}
	for i := 0; i < 20; i++ {
		w := env.do(t, req{body: validBody})
		if w.Code != http.StatusAccepted {
			t.Fatalf("code %d: %s", w.Code, w.Body)
		}
		var resp CallResponse
		if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
			t.Fatal(err)
		}
		if !callIDRE.MatchString(resp.CallID) || !roomRE.MatchString(resp.RoomName) ||
			!strings.HasPrefix(resp.RoomName, demoAgent+"-") || seen[resp.CallID] {
			t.Fatalf("bad or repeated ids: %+v", resp)
		}
		seen[resp.CallID] = true
		want := mustJSON(t, CallResponse{Status: "success",
			Message: "Outbound call job scheduled for agent " + demoAgent + " to number +15550101234",
			CallID:  resp.CallID, RoomName: resp.RoomName, JobID: fmt.Sprintf("3-%d", i)})
		assertJSON(t, w.Body.Bytes(), want)
	}
}

// A workspace with mask_phone_numbers sees only the last 4 digits.
func TestCreateCallMaskedWorkspace(t *testing.T) {
	env := newTestEnv(t)
	w := env.do(t, req{key: maskedKey, workspace: "ws_masked", idemKey: "m",
		body: `{"to":"+15550101234","call_agent_id":"masked_agent"}`})
	assertJSON(t, w.Body.Bytes(), successBody(t, "ws_masked", "m", "masked_agent", "********1234", "3-0"))
	if to := decodeData(t, env.p.records()[0]).To; to != "+15550101234" {
		t.Fatalf("record to = %s; the record keeps the full number", to)
	}
}

func decodeData(t testing.TB, r *kgo.Record) schemas.CallRequested {
	t.Helper()
	ev, err := schemas.Decode(r)
	if err != nil {
		t.Fatal(err)
	}
	var d schemas.CallRequested
	if err := json.Unmarshal(ev.Data, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// Every header rule, with its exact answer.
func TestCreateCallHeaders(t *testing.T) {
	env := newTestEnv(t)
	tooMuch := strings.Repeat("x", 64<<10)
	for _, tc := range []struct {
		name      string
		r         req
		code      int
		body      string
		challenge string
	}{
		{"no Authorization", req{key: "-", body: validBody}, 401,
			errBody(t, "missing API key: send the header Authorization: Bearer <api key>"), `Bearer realm="dialstream"`},
		{"not Bearer", req{auth: "Basic ZHNrX2RlbW9fbG9jYWw6", body: validBody}, 401,
			errBody(t, "the Authorization header must be: Bearer <api key>"), `Bearer realm="dialstream", error="invalid_request"`},
		{"Bearer without key", req{auth: "Bearer   ", body: validBody}, 401,
			errBody(t, "the Authorization header must be: Bearer <api key>"), `Bearer realm="dialstream", error="invalid_request"`},
		{"unknown key", req{key: "dsk_nope", body: validBody}, 401,
			errBody(t, "invalid API key"), `Bearer realm="dialstream", error="invalid_token"`},
		{"no workspace header", req{workspace: "-", body: validBody}, 400,
			errBody(t, "missing x-workspace-id header: send the id of the workspace the call belongs to"), ""},
		{"key of another workspace", req{workspace: "ws_other", body: validBody}, 403,
			errBody(t, "this API key does not belong to the workspace named in x-workspace-id"), ""},
		{"unknown workspace", req{workspace: "ws_nope", body: validBody}, 403,
			errBody(t, "this API key does not belong to the workspace named in x-workspace-id"), ""},
		{"no content type", req{contentType: "-", body: validBody}, 415,
			errBody(t, "Content-Type must be application/json, got none"), ""},
		{"form content type", req{contentType: "application/x-www-form-urlencoded", body: validBody}, 415,
			errBody(t, "Content-Type must be application/json, got application/x-www-form-urlencoded"), ""},
		{"latin1 charset", req{contentType: "application/json; charset=latin1", body: validBody}, 415,
			errBody(t, "Content-Type must be application/json, got application/json; charset=latin1"), ""},
		{"body too large", req{body: `{"metadata":{"x":"` + tooMuch + `"}}`}, 413,
			errBody(t, "request body is larger than 65536 bytes"), ""},
		{"body too large, chunked", req{bodyReader: strings.NewReader(`{"metadata":{"x":"` + tooMuch + `"}}`)}, 413,
			errBody(t, "request body is larger than 65536 bytes"), ""},
		{"empty Idempotency-Key", req{idemKey: `""`, body: validBody}, 400,
			errBody(t, "Idempotency-Key must not be empty"), ""},
		{"long Idempotency-Key", req{idemKey: strings.Repeat("k", 256), body: validBody}, 400,
			errBody(t, "Idempotency-Key must be at most 255 characters"), ""},
		{"non-ASCII Idempotency-Key", req{idemKey: "clé", body: validBody}, 400,
			errBody(t, "Idempotency-Key must be printable ASCII (a UUID is a good key)"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := env.do(t, tc.r)
			if w.Code != tc.code {
				t.Fatalf("code %d, want %d: %s", w.Code, tc.code, w.Body)
			}
			assertJSON(t, w.Body.Bytes(), tc.body)
			if got := w.Header().Get("WWW-Authenticate"); got != tc.challenge {
				t.Fatalf("WWW-Authenticate %q, want %q", got, tc.challenge)
			}
		})
	}
	if n := len(env.p.records()); n != 0 {
		t.Fatalf("%d records written by refused requests", n)
	}
}

// Every /v1/api route refuses a request that is not its workspace's with the
// very same answer, to the byte, before it looks at anything else (the
// call id, the body, the query, the rate limit).
func TestEveryAPIRouteAuthenticates(t *testing.T) {
	env := newTestEnv(t)
	routes := []req{
		{method: "POST", path: "/v1/api/call", body: validBody},
		{method: "GET", path: "/v1/api/call/000000000000000000000000"},
		{method: "POST", path: "/v1/api/call/000000000000000000000000/cancel"},
		{method: "GET", path: "/v1/api/call/000000000000000000000000/deliveries"},
		{method: "POST", path: "/v1/api/call/000000000000000000000000/redeliver"},
		{method: "GET", path: "/v1/api/calls?nope=1"},
	}
	for _, tc := range []struct {
		name      string
		mod       func(req) req
		code      int
		body      string
		challenge string
	}{
		{"no Authorization", func(r req) req { r.key = "-"; return r }, 401,
			`{"status":"error","message":"missing API key: send the header Authorization: Bearer \u003capi key\u003e"}`, `Bearer realm="dialstream"`},
		{"unknown key", func(r req) req { r.key = "dsk_nope"; return r }, 401,
			`{"status":"error","message":"invalid API key"}`, `Bearer realm="dialstream", error="invalid_token"`},
		{"no workspace header", func(r req) req { r.workspace = "-"; return r }, 400,
			`{"status":"error","message":"missing x-workspace-id header: send the id of the workspace the call belongs to"}`, ""},
		{"key of another workspace", func(r req) req { r.workspace = "ws_other"; return r }, 403,
			`{"status":"error","message":"this API key does not belong to the workspace named in x-workspace-id"}`, ""},
	} {
		for _, r := range routes {
			w := env.do(t, tc.mod(r))
			if w.Code != tc.code || w.Body.String() != tc.body || w.Header().Get("WWW-Authenticate") != tc.challenge ||
				w.Header().Get("Content-Type") != "application/json; charset=utf-8" {
				t.Errorf("%s, %s %s: %d %s %q", tc.name, r.method, r.path, w.Code, w.Body, w.Header().Get("WWW-Authenticate"))
			}
		}
	}
	if n := len(env.p.records()); n != 0 {
		t.Fatalf("%d records written by refused requests", n)
	}
}

// "Bearer" is case-insensitive (RFC 7235), and the Structured Fields string
// form of Idempotency-Key is the same key as the bare form.
func TestCreateCallHeaderForms(t *testing.T) {
	env := newTestEnv(t)
	w := env.do(t, req{auth: "bearer " + demoKey, idemKey: `"abc"`, body: validBody})
	if w.Code != 202 {
		t.Fatalf("code %d: %s", w.Code, w.Body)
	}
	w2 := env.do(t, req{idemKey: `abc`, body: validBody})
	if w2.Code != 202 || w2.Header().Get(HeaderReplayed) != "true" || w2.Body.String() != w.Body.String() {
		t.Fatalf("bare key not the same key: %d %s", w2.Code, w2.Body)
	}
}

// Bodies that are not a JSON object: 400, never 422 or 500.
func TestCreateCallMalformed(t *testing.T) {
	env := newTestEnv(t)
	for _, tc := range []struct{ body, msg string }{
		{``, "request body is empty; send a JSON object"},
		{`   `, "request body is empty; send a JSON object"},
		{`{"to":`, "malformed JSON at byte 6: unexpected end of JSON input"},
		{`{"to" "x"}`, "malformed JSON at byte 7: invalid character '\"' after object key"},
		{`{} {}`, "malformed JSON at byte 4: invalid character '{' after top-level value"},
		{`[]`, "request body must be a JSON object, got an array"},
		{`"call me"`, "request body must be a JSON object, got a string"},
		{`null`, "request body must be a JSON object, got null"},
		{`42`, "request body must be a JSON object, got a number"},
		{"{\"to\":\"\x00\"}", "malformed JSON at byte 8: invalid character '\\x00' in string literal"},
	} {
		t.Run(tc.body, func(t *testing.T) {
			w := env.do(t, req{body: tc.body})
			if w.Code != 400 {
				t.Fatalf("code %d: %s", w.Code, w.Body)
			}
			assertJSON(t, w.Body.Bytes(), errBody(t, tc.msg))
		})
	}
}

// Every field rule, with its exact 422 answer.
func TestCreateCallFieldRules(t *testing.T) {
	env := newTestEnv(t)
	const ex = exampleNumber
	agent := `"call_agent_id":"` + demoAgent + `"`
	one := func(field, msg string) string {
		return errBody(t, "invalid field "+field+": "+msg, fe(field, msg))
	}
	long := strings.Repeat("a", 4097)
	manyVars := "{"
	for i := 0; i < 65; i++ {
		manyVars += fmt.Sprintf(`"k%d":"v",`, i)
	}
	manyVars = strings.TrimSuffix(manyVars, ",") + "}"
	for _, tc := range []struct {
		name, body, want string
	}{
		// to
		{"to missing", `{` + agent + `}`, one("to", "required: the number to call, in E.164 format, e.g. "+ex)},
		{"to null", `{"to":null,` + agent + `}`, one("to", "required: the number to call, in E.164 format, e.g. "+ex)},
		{"to a number", `{"to":15550101234,` + agent + `}`, one("to", `must be a string holding a phone number, e.g. "`+ex+`"; got a number`)},
		{"to empty", `{"to":" ",` + agent + `}`, one("to", "must not be empty; send the number to call in E.164 format, e.g. "+ex)},
		{"to the seed's +1234567890", `{"to":"+1234567890",` + agent + `}`,
			one("to", `"+1234567890" is not a valid phone number: too few digits for country code +1; send E.164, e.g. `+ex)},
		{"to no such range", `{"to":"+15555555555",` + agent + `}`,
			one("to", `"+15555555555" is not a valid phone number: no such number range for country code +1; send E.164, e.g. `+ex)},
		{"to unknown country code", `{"to":"+999123456",` + agent + `}`,
			one("to", `"+999123456" does not start with a known country calling code; send E.164: +, country code, number, e.g. `+ex)},
		{"to letters", `{"to":"call me",` + agent + `}`,
			one("to", `"call me" is not a phone number; send E.164: +, country code, number, e.g. `+ex)},
		{"to too long", `{"to":"` + strings.Repeat("1", 65) + `",` + agent + `}`,
			one("to", "is too long to be a phone number (65 characters); send it in E.164 format, e.g. "+ex)},
		{"to with extension", `{"to":"+12025550123 ext. 12",` + agent + `}`,
			one("to", `"+12025550123 ext. 12" has an extension, which cannot be dialed; send the number alone in E.164, e.g. `+ex)},
		{"to too many digits", `{"to":"+120255501234567",` + agent + `}`,
			one("to", `"+120255501234567" is not a valid phone number: too many digits for country code +1; send E.164, e.g. `+ex)},
		{"to near the test range", `{"to":"+1555010123",` + agent + `}`,
			one("to", `"+1555010123" is not a valid phone number: too few digits for country code +1; send E.164, e.g. `+ex)},
		{"to just past the test range", `{"to":"+15550200001",` + agent + `}`,
			one("to", `"+15550200001" is not a valid phone number: no such number range for country code +1; send E.164, e.g. `+ex)},
		// call_agent_id
		{"agent missing", `{"to":"+15550101234"}`, one("call_agent_id", "required: the id of the agent that places the call")},
		{"agent not a string", `{"to":"+15550101234","call_agent_id":7}`, one("call_agent_id", "must be a string, got a number")},
		{"agent bad characters", `{"to":"+15550101234","call_agent_id":"a b"}`, one("call_agent_id", "must be 1 to 64 letters, digits, _ or -")},
		{"agent empty", `{"to":"+15550101234","call_agent_id":""}`, one("call_agent_id", "must be 1 to 64 letters, digits, _ or -")},
		// callback_url
		{"callback ftp", `{"to":"+15550101234",` + agent + `,"callback_url":"ftp://example.com/x"}`,
			one("callback_url", "must be an absolute http or https URL, e.g. https://example.com/webhooks/dialstream")},
		{"callback relative", `{"to":"+15550101234",` + agent + `,"callback_url":"/hooks"}`,
			one("callback_url", "must be an absolute http or https URL, e.g. https://example.com/webhooks/dialstream")},
		{"callback no host", `{"to":"+15550101234",` + agent + `,"callback_url":"https:///hooks"}`,
			one("callback_url", "must be an absolute http or https URL, e.g. https://example.com/webhooks/dialstream with a host")},
		{"callback empty", `{"to":"+15550101234",` + agent + `,"callback_url":""}`,
			one("callback_url", "must not be empty; must be an absolute http or https URL, e.g. https://example.com/webhooks/dialstream, or leave callback_url out")},
		{"callback space", `{"to":"+15550101234",` + agent + `,"callback_url":"https://example.com/a b"}`,
			one("callback_url", "must not contain spaces or control characters; percent-encode them")},
		{"callback bad port", `{"to":"+15550101234",` + agent + `,"callback_url":"https://example.com:99999/x"}`,
			one("callback_url", "has an invalid port 99999")},
		{"callback too long", `{"to":"+15550101234",` + agent + `,"callback_url":"https://example.com/` + strings.Repeat("a", 2030) + `"}`,
			one("callback_url", "is 2050 bytes long; at most 2048 are allowed")},
		{"callback not a string", `{"to":"+15550101234",` + agent + `,"callback_url":{"url":"https://example.com"}}`,
			one("callback_url", "must be a string holding an absolute http or https URL, got an object")},
		// dynamic_variables
		{"variables an array", `{"to":"+15550101234",` + agent + `,"dynamic_variables":["a"]}`,
			one("dynamic_variables", "must be a JSON object whose values are strings, got an array")},
		{"variables a string", `{"to":"+15550101234",` + agent + `,"dynamic_variables":"firstName=Ada"}`,
			one("dynamic_variables", "must be a JSON object whose values are strings, got a string")},
		{"variable null", `{"to":"+15550101234",` + agent + `,"dynamic_variables":{"firstName":null}}`,
			one("dynamic_variables.firstName", "is null; send a string, or leave the key out")},
		{"variable nested object", `{"to":"+15550101234",` + agent + `,"dynamic_variables":{"address":{"city":"Oslo"}}}`,
			one("dynamic_variables.address", "is an object; values must be strings (numbers and booleans are converted), so flatten nested values into their own keys")},
		{"variable array", `{"to":"+15550101234",` + agent + `,"dynamic_variables":{"tags":["a"]}}`,
			one("dynamic_variables.tags", "is an array; values must be strings (numbers and booleans are converted), so join list values into one string")},
		{"variable key pattern", `{"to":"+15550101234",` + agent + `,"dynamic_variables":{"first name":"Ada"}}`,
			one("dynamic_variables", `key "first name" is not allowed: a key is 1 to 64 characters, starts with a letter or _, then letters, digits, _, . or -`)},
		{"variable key starts with digit", `{"to":"+15550101234",` + agent + `,"dynamic_variables":{"1st":"Ada"}}`,
			one("dynamic_variables", `key "1st" is not allowed: a key is 1 to 64 characters, starts with a letter or _, then letters, digits, _, . or -`)},
		{"variable too long", `{"to":"+15550101234",` + agent + `,"dynamic_variables":{"bio":"` + long + `"}}`,
			one("dynamic_variables.bio", "is 4097 characters long; at most 4096 are allowed")},
		{"too many variables", `{"to":"+15550101234",` + agent + `,"dynamic_variables":` + manyVars + `}`,
			one("dynamic_variables", "has 65 keys; at most 64 are allowed")},
		{"variable twice", `{"to":"+15550101234",` + agent + `,"dynamic_variables":{"a":"1","a":"2"}}`,
			one("dynamic_variables", `key "a" appears more than once`)},
		// metadata
		{"metadata an array", `{"to":"+15550101234",` + agent + `,"metadata":[1]}`, one("metadata", "must be a JSON object, got an array")},
		{"metadata a string", `{"to":"+15550101234",` + agent + `,"metadata":"x"}`, one("metadata", "must be a JSON object, got a string")},
		// the body's shape
		{"unknown field", `{"to":"+15550101234",` + agent + `,"callbackUrl":"https://example.com"}`,
			one("callbackUrl", "unknown field; the fields are to, call_agent_id, callback_url, dynamic_variables, metadata, start_at, defer_to_calling_hours")},
		{"field twice", `{"to":"+15550101234","to":"+15550101235",` + agent + `}`,
			one("to", "appears more than once; send each field once")},
		{"several problems", `{"to":"+1234567890","call_agent_id":"","extra":1}`,
			errBody(t, "the request has 3 invalid fields; see errors",
				fe("extra", "unknown field; the fields are to, call_agent_id, callback_url, dynamic_variables, metadata, start_at, defer_to_calling_hours"),
				fe("to", `"+1234567890" is not a valid phone number: too few digits for country code +1; send E.164, e.g. `+ex),
				fe("call_agent_id", "must be 1 to 64 letters, digits, _ or -"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := env.do(t, req{body: tc.body})
			if w.Code != 422 {
				t.Fatalf("code %d, want 422: %s", w.Code, w.Body)
			}
			assertJSON(t, w.Body.Bytes(), tc.want)
		})
	}
	if n := len(env.p.records()); n != 0 {
		t.Fatalf("%d records written by invalid requests", n)
	}
}

// What the field rules accept, and how it is normalized into the record.
func TestCreateCallNormalizes(t *testing.T) {
	// The caps case needs more than the default 64 KiB body.
	env := newTestEnv(t, func(c *Config) { c.MaxBodyBytes = 512 << 10 })
	max64 := map[string]string{}
	vars := "{"
	for i := 0; i < 64; i++ {
		k := fmt.Sprintf("k%d", i)
		max64[k] = strings.Repeat("a", 4096)
		if i == 0 {
			max64[k] = strings.Repeat("é", 4096) // characters, not bytes
		}
		vars += fmt.Sprintf(`"%s":"%s",`, k, max64[k])
	}
	vars = strings.TrimSuffix(vars, ",") + "}"
	for _, tc := range []struct {
		name, body string
		check      func(t *testing.T, d schemas.CallRequested)
	}{
		{"national format with the default region", `{"to":"(202) 555-0123","call_agent_id":"` + demoAgent + `"}`,
			func(t *testing.T, d schemas.CallRequested) {
				if d.To != "+12025550123" {
					t.Fatalf("to %s", d.To)
				}
			}},
		{"international format with spaces", `{"to":"+44 20 7183 8750","call_agent_id":"` + demoAgent + `"}`,
			func(t *testing.T, d schemas.CallRequested) {
				if d.To != "+442071838750" {
					t.Fatalf("to %s", d.To)
				}
			}},
		{"tel URI", `{"to":"tel:+1-202-555-0123","call_agent_id":"` + demoAgent + `"}`,
			func(t *testing.T, d schemas.CallRequested) {
				if d.To != "+12025550123" {
					t.Fatalf("to %s", d.To)
				}
			}},
		{"dev test range", `{"to":"+1 555 010 0001","call_agent_id":"` + demoAgent + `"}`,
			func(t *testing.T, d schemas.CallRequested) {
				if d.To != "+15550100001" {
					t.Fatalf("to %s", d.To)
				}
			}},
		{"dev test range, its last exchange", `{"to":"+1 555 019 9999","call_agent_id":"` + demoAgent + `"}`,
			func(t *testing.T, d schemas.CallRequested) {
				if d.To != "+15550199999" {
					t.Fatalf("to %s", d.To)
				}
			}},
		{"upper-case scheme, nulls as absent", `{"to":"+15550101234","call_agent_id":"` + demoAgent + `","callback_url":"HTTPS://Example.com/Hook?a=1#f","dynamic_variables":null,"metadata":null}`,
			func(t *testing.T, d schemas.CallRequested) {
				if d.CallbackURL != "https://Example.com/Hook?a=1#f" || d.DynamicVariables != nil || d.Metadata != nil {
					t.Fatalf("%+v", d)
				}
			}},
		{"numbers and booleans become strings", `{"to":"+15550101234","call_agent_id":"` + demoAgent + `","dynamic_variables":{"Zipcode":"02134","n":-1.50e3,"ok":false,"_x.y-z":""}}`,
			func(t *testing.T, d schemas.CallRequested) {
				want := map[string]string{"Zipcode": "02134", "n": "-1.50e3", "ok": "false", "_x.y-z": ""}
				if fmt.Sprint(d.DynamicVariables) != fmt.Sprint(want) {
					t.Fatalf("%v", d.DynamicVariables)
				}
			}},
		{"the caps exactly (64 keys of 4096 characters)", `{"to":"+15550101234","call_agent_id":"` + demoAgent + `","dynamic_variables":` + vars + `}`,
			func(t *testing.T, d schemas.CallRequested) {
				if fmt.Sprint(d.DynamicVariables) != fmt.Sprint(max64) {
					t.Fatalf("variables changed")
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := len(env.p.records())
			w := env.do(t, req{body: tc.body})
			if w.Code != 202 {
				t.Fatalf("code %d: %s", w.Code, w.Body)
			}
			recs := env.p.records()
			if len(recs) != n+1 {
				t.Fatalf("records %d", len(recs))
			}
			tc.check(t, decodeData(t, recs[n]))
		})
	}
}

// INGEST_ALLOW_TEST_NUMBERS=false refuses the dev range like any invalid number.
func TestRejectTestNumbers(t *testing.T) {
	env := newTestEnv(t, func(c *Config) { c.RejectTestNumbers = true })
	w := env.do(t, req{body: validBody})
	msg := `"+15550101234" is not a valid phone number: no such number range for country code +1; send E.164, e.g. ` + exampleNumber
	if w.Code != 422 {
		t.Fatalf("code %d", w.Code)
	}
	assertJSON(t, w.Body.Bytes(), errBody(t, "invalid field to: "+msg, fe("to", msg)))
}

// An agent of another workspace gets byte for byte the answer of an agent
// that exists nowhere.
func TestForeignAgentIsNotFound(t *testing.T) {
	env := newTestEnv(t)
	body := `{"to":"+15550101234","call_agent_id":"` + otherAgent + `"}`
	foreign := env.do(t, req{body: body})
	want := errBody(t, "agent "+otherAgent+" not found", fe("call_agent_id", "no agent with this id in workspace ws_demo"))
	if foreign.Code != 404 {
		t.Fatalf("code %d", foreign.Code)
	}
	assertJSON(t, foreign.Body.Bytes(), want)

	missingEnv := newTestEnv(t, func(c *Config) { c.Registry = testRegistry(t, false) })
	missing := missingEnv.do(t, req{body: body})
	if missing.Code != foreign.Code || missing.Body.String() != foreign.Body.String() ||
		fmt.Sprint(missing.Header()) != fmt.Sprint(foreign.Header()) {
		t.Fatalf("foreign agent distinguishable from a missing one:\n%d %v %s\n%d %v %s",
			foreign.Code, foreign.Header(), foreign.Body, missing.Code, missing.Header(), missing.Body)
	}
	// The owner can use it.
	if w := env.do(t, req{key: otherKey, workspace: "ws_other", body: body}); w.Code != 202 {
		t.Fatalf("owner: %d %s", w.Code, w.Body)
	}
}

func TestRateLimit(t *testing.T) {
	env := newTestEnv(t)
	body := `{"to":"+15550101234","call_agent_id":"slow_agent"}`
	if w := env.do(t, req{key: slowKey, workspace: "ws_slow", body: body}); w.Code != 202 {
		t.Fatalf("first: %d %s", w.Code, w.Body)
	}
	w := env.do(t, req{key: slowKey, workspace: "ws_slow", body: body})
	if w.Code != 429 {
		t.Fatalf("second: %d %s", w.Code, w.Body)
	}
	assertJSON(t, w.Body.Bytes(), errBody(t, "rate limit exceeded: workspace ws_slow may send 0.5 requests per second; retry after 2s"))
	if ra := w.Header().Get("Retry-After"); ra != "2" {
		t.Fatalf("Retry-After %q", ra)
	}
	// Other workspaces are not affected.
	if w := env.do(t, req{body: validBody}); w.Code != 202 {
		t.Fatalf("other workspace: %d", w.Code)
	}
}

func TestIdempotencyReplay(t *testing.T) {
	env := newTestEnv(t)
	first := env.do(t, req{idemKey: "order-42", body: validBody})
	if first.Code != 202 || first.Header().Get(HeaderReplayed) != "" {
		t.Fatalf("first: %d %v", first.Code, first.Header())
	}
	// The same call written differently is the same body.
	same := `{ "call_agent_id": "` + demoAgent + `", "to": "+1 555 010 1234", "dynamic_variables": {}, "metadata": null }`
	for _, body := range []string{validBody, same} {
		w := env.do(t, req{idemKey: "order-42", body: body})
		if w.Code != 202 || w.Header().Get(HeaderReplayed) != "true" || w.Body.String() != first.Body.String() {
			t.Fatalf("replay: %d %v %s", w.Code, w.Header(), w.Body)
		}
	}
	if n := len(env.p.records()); n != 1 {
		t.Fatalf("%d records, want 1", n)
	}
	// A different body under the key is refused.
	w := env.do(t, req{idemKey: "order-42", body: `{"to":"+15550101235","call_agent_id":"` + demoAgent + `"}`})
	if w.Code != 422 {
		t.Fatalf("different body: %d", w.Code)
	}
	assertJSON(t, w.Body.Bytes(), errBody(t, "this Idempotency-Key was already used with a different request body; use a new key for a new call"))
	// Keys are scoped by workspace: ws_other's "order-42" is its own call.
	w = env.do(t, req{key: otherKey, workspace: "ws_other", idemKey: "order-42",
		body: `{"to":"+15550101234","call_agent_id":"` + otherAgent + `"}`})
	if w.Code != 202 || w.Header().Get(HeaderReplayed) != "" {
		t.Fatalf("other workspace: %d %v", w.Code, w.Header())
	}
	assertJSON(t, w.Body.Bytes(), successBody(t, "ws_other", "order-42", otherAgent, "+15550101234", "3-1"))
	// A refused request stores nothing: the key can be used after fixing it.
	if w := env.do(t, req{idemKey: "fix-me", body: `{"to":"+1234567890","call_agent_id":"` + demoAgent + `"}`}); w.Code != 422 {
		t.Fatalf("invalid: %d", w.Code)
	}
	if w := env.do(t, req{idemKey: "fix-me", body: validBody}); w.Code != 202 || w.Header().Get(HeaderReplayed) != "" {
		t.Fatalf("fixed: %d %v", w.Code, w.Header())
	}
}

func TestIdempotencyInFlight(t *testing.T) {
	env := newTestEnv(t)
	env.p.block = make(chan struct{})
	env.p.started = make(chan struct{}, 1)
	done := make(chan string)
	go func() {
		w := env.do(t, req{idemKey: "k", body: validBody})
		done <- fmt.Sprint(w.Code, w.Body.String())
	}()
	<-env.p.started
	w := env.do(t, req{idemKey: "k", body: validBody})
	if w.Code != 409 || w.Header().Get("Retry-After") != "1" {
		t.Fatalf("in flight: %d %v", w.Code, w.Header())
	}
	assertJSON(t, w.Body.Bytes(), errBody(t, "a request with this Idempotency-Key is still being processed; retry later to get its answer"))
	// A different body is a misuse of the key even while the first runs.
	w = env.do(t, req{idemKey: "k", body: `{"to":"+15550101299","call_agent_id":"` + demoAgent + `"}`})
	if w.Code != 422 {
		t.Fatalf("different body in flight: %d", w.Code)
	}
	close(env.p.block)
	first := <-done
	if !strings.HasPrefix(first, "202") {
		t.Fatalf("first: %s", first)
	}
	env.p.started = nil
	if w := env.do(t, req{idemKey: "k", body: validBody}); w.Code != 202 || "202"+w.Body.String() != first {
		t.Fatalf("after: %d %s", w.Code, w.Body)
	}
}

// Kafka refusing or not answering: 503 with Retry-After, no 2xx, and the
// Idempotency-Key free for the retry.
func TestKafkaUnavailable(t *testing.T) {
	msg := "the call was not scheduled: Kafka did not acknowledge it within 2s; retry later, with the same Idempotency-Key so that a retry can never place the call twice"
	t.Run("refused", func(t *testing.T) {
		env := newTestEnv(t)
		env.p.err = kerr.NotEnoughReplicas
		w := env.do(t, req{idemKey: "k", body: validBody})
		if w.Code != 503 || w.Header().Get("Retry-After") != "2" {
			t.Fatalf("%d %v", w.Code, w.Header())
		}
		assertJSON(t, w.Body.Bytes(), errBody(t, msg))
		env.p.err = nil
		w = env.do(t, req{idemKey: "k", body: validBody})
		if w.Code != 202 || w.Header().Get(HeaderReplayed) != "" {
			t.Fatalf("retry: %d %v", w.Code, w.Header())
		}
	})
	t.Run("no answer in time", func(t *testing.T) {
		env := newTestEnv(t, func(c *Config) { c.Kafka.ProduceTimeout = 100 * time.Millisecond })
		env.p.block = make(chan struct{})
		start := time.Now()
		w := env.do(t, req{body: validBody})
		if w.Code != 503 {
			t.Fatalf("%d", w.Code)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("took %s", d)
		}
		assertJSON(t, w.Body.Bytes(), errBody(t, strings.Replace(msg, "2s", "100ms", 1)))
	})
}

// A record the client could not withdraw, acknowledged after the client was
// answered 503: a retry with the key learns that the call was accepted.
func TestLateAckIsReplayed(t *testing.T) {
	env := newTestEnv(t, func(c *Config) { c.Kafka.ProduceTimeout = 50 * time.Millisecond })
	lp := &lateProducer{ack: make(chan struct{})}
	h, err := newHandler(env.cfg.withDefaults(), lp)
	if err == nil {
		t.Fatal("second registration on one registry must fail")
	}
	cfg := env.cfg
	cfg.Metrics = nil
	h, err = newHandler(cfg.withDefaults(), lp)
	if err != nil {
		t.Fatal(err)
	}
	env.h = h.engine()
	w := env.do(t, req{idemKey: "late", body: validBody})
	if w.Code != 503 {
		t.Fatalf("%d", w.Code)
	}
	if w := env.do(t, req{idemKey: "late", body: validBody}); w.Code != 409 {
		t.Fatalf("while unsettled: %d", w.Code)
	}
	close(lp.ack)
	testutil.Eventually(t, 2*time.Second, "late ack to be stored", func() bool {
		w := env.do(t, req{idemKey: "late", body: validBody})
		return w.Code == 202 && w.Header().Get(HeaderReplayed) == "true"
	})
	w = env.do(t, req{idemKey: "late", body: validBody})
	assertJSON(t, w.Body.Bytes(), successBody(t, "ws_demo", "late", demoAgent, "+15550101234", "0-7"))
}

// lateProducer ignores the produce context, like franz-go with a request in
// flight, and acknowledges when told to.
type lateProducer struct{ ack chan struct{} }

func (p *lateProducer) Produce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	go func() {
		<-p.ack
		r.Partition, r.Offset = 0, 7
		promise(r, nil)
	}()
}

func TestRoutes(t *testing.T) {
	env := newTestEnv(t)
	for _, tc := range []struct {
		method, path string
		code         int
		body         string
	}{
		{"GET", "/healthz", 200, `{"status":"ok"}`},
		{"GET", "/readyz", 200, `{"status":"ready"}`},
		{"GET", "/v1/api/call", 405, errBody(t, "method GET is not allowed here")},
		{"GET", "/v1/api/calls", 200, `{"status":"success","calls":[]}`},
		{"GET", "/v1/api/nope", 404, errBody(t, "no such endpoint: GET /v1/api/nope")},
		{"GET", "/v1/api/call/000000000000000000000000/cancel", 405, errBody(t, "method GET is not allowed here")},
	} {
		w := env.do(t, req{method: tc.method, path: tc.path})
		if w.Code != tc.code {
			t.Fatalf("%s %s: %d", tc.method, tc.path, w.Code)
		}
		assertJSON(t, w.Body.Bytes(), tc.body)
	}
	if w := env.do(t, req{method: "GET", path: "/v1/api/call"}); w.Header().Get("Allow") != "POST" {
		t.Fatalf("Allow %q", w.Header().Get("Allow"))
	}
}

func TestReadyz(t *testing.T) {
	env := newTestEnv(t)
	env.p.pingErr = errors.New("dial tcp: connection refused")
	w := env.do(t, req{method: "GET", path: "/readyz"})
	if w.Code != 503 {
		t.Fatalf("%d", w.Code)
	}
	assertJSON(t, w.Body.Bytes(), `{"status":"not_ready","reason":"kafka: not reachable"}`)
}

func TestMetrics(t *testing.T) {
	env := newTestEnv(t)
	env.do(t, req{body: validBody})
	env.do(t, req{key: "-", body: validBody})
	w := env.do(t, req{method: "GET", path: "/metrics"})
	if w.Code != 200 {
		t.Fatalf("%d", w.Code)
	}
	b, _ := io.ReadAll(w.Body)
	for _, want := range []string{
		`dialstream_ingest_requests_total{code="202",route="/v1/api/call"} 1`,
		`dialstream_ingest_requests_total{code="401",route="/v1/api/call"} 1`,
		`dialstream_ingest_requests_total{code="503",route="/v1/api/call"} 0`, // initialized
		`dialstream_ingest_calls_accepted_total 1`,
		`dialstream_ingest_calls_rejected_total{reason="unauthenticated"} 1`,
		`dialstream_ingest_calls_rejected_total{reason="kafka_unavailable"} 0`,
		`dialstream_ingest_kafka_produce_duration_seconds_count{result="ok"} 1`,
		`dialstream_ingest_request_duration_seconds_count{route="/v1/api/call"} 2`,
		`dialstream_ingest_idempotency_keys 0`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(string(b), "+1555") || strings.Contains(string(b), "ws_demo") {
		t.Errorf("metrics carry unbounded labels")
	}
}

// Logs carry call_id and workspace_id and never a whole phone number.
func TestLogs(t *testing.T) {
	env := newTestEnv(t)
	w := env.do(t, req{body: validBody})
	var resp CallResponse
	_ = json.Unmarshal(w.Body.Bytes(), &resp)
	logs := env.logs.String()
	if strings.Contains(logs, "+15550101234") || !strings.Contains(logs, `"to":"********1234"`) ||
		!strings.Contains(logs, `"call_id":"`+resp.CallID+`"`) || !strings.Contains(logs, `"workspace_id":"ws_demo"`) {
		t.Fatalf("logs: %s", logs)
	}
}

// Deeply nested metadata is passed through (within the body cap), and JSON
// past encoding/json's nesting limit is a 400, never a crash.
func TestDeepMetadata(t *testing.T) {
	env := newTestEnv(t, func(c *Config) { c.MaxBodyBytes = 512 << 10 })
	deep := func(n int) string {
		return `{"to":"+15550101234","call_agent_id":"` + demoAgent + `","metadata":{"x":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}}`
	}
	if w := env.do(t, req{body: deep(5000)}); w.Code != 202 {
		t.Fatalf("depth 5000: %d %s", w.Code, w.Body)
	}
	w := env.do(t, req{body: deep(20000)})
	if w.Code != 400 {
		t.Fatalf("depth 20000: %d %s", w.Code, w.Body)
	}
	assertJSON(t, w.Body.Bytes(), errBody(t, "malformed JSON at byte 10079: invalid character '[' exceeded max depth"))
}
