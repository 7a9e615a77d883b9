package ingest

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzCreateCall feeds arbitrary bodies, content types and Idempotency-Keys to
// POST /v1/api/call (fake producer, which always acknowledges): whatever
// arrives, the answer is never a 5xx, never a panic, always the JSON
// envelope, and a 202 always wrote exactly one record.
//
//	go test ./ingest -run='^$' -fuzz=FuzzCreateCall -fuzztime=20s
func FuzzCreateCall(f *testing.F) {
	agent := `"call_agent_id":"` + demoAgent + `"`
	for _, seed := range []string{
		validBody,
		`{"to":"+12025550123",` + agent + `,"callback_url":"https://example.com/h","dynamic_variables":{"firstName":"Ada","Zipcode":94105,"vip":true},"metadata":{"a":[1,{"b":null}]}}`,
		`{"to":"+1234567890",` + agent + `}`,
		`{"to":"(202) 555-0123",` + agent + `}`,
		`{"to":"tel:+1-202-555-0123;ext=1",` + agent + `}`,
		`{"to":"+44 20 7183 8750",` + agent + `,"dynamic_variables":{"a":{"b":1},"c":[1],"d":null,"1x":"y"}}`,
		`{"to":"１２０２５５５０１２３",` + agent + `}`,
		`{"to":"+1555010\u0000123",` + agent + `}`,
		`{"to":"` + strings.Repeat("9", 70) + `",` + agent + `}`,
		`{"to":"+15550101234",` + agent + `,"callback_url":"http://[::1]:80/x"}`,
		`{"to":"+15550101234",` + agent + `,"callback_url":"http://%zz"}`,
		`{"to":"+15550101234",` + agent + `,"to":"+15550101235"}`,
		`{"to":"+15550101234",` + agent + `,"metadata":"x","extra":1}`,
		`{"to":"+15550101234","call_agent_id":"` + otherAgent + `"}`,
		`{"to":"+15550101234",` + agent + `,"dynamic_variables":{"k":"\ud800"}}`,
		`{"to":1e999,"call_agent_id":[]}`,
		`[{"to":"+15550101234"}]`, `{"to":`, `null`, ``, `{}`, `{"":""}`, "\xff\xfe{}", `{"a":` + strings.Repeat("[", 1000),
	} {
		f.Add([]byte(seed), "application/json", "")
		f.Add([]byte(seed), "application/json; charset=utf-8", "key-1")
	}
	f.Add([]byte(validBody), "text/plain", `"k"`)
	f.Add([]byte(validBody), "application/json; charset", "\x7f")
	f.Add([]byte(validBody), "application/json", `"`)

	env := newTestEnv(f, func(c *Config) { c.Logger = discardLogger() })
	env.p.discard = true
	f.Fuzz(func(t *testing.T, body []byte, contentType, idemKey string) {
		before := env.p.count()
		r := httptest.NewRequest(http.MethodPost, "/v1/api/call", bytes.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+demoKey)
		r.Header.Set("x-workspace-id", "ws_demo")
		r.Header.Set("Content-Type", contentType)
		if idemKey != "" {
			r.Header.Set("Idempotency-Key", idemKey)
		}
		w := httptest.NewRecorder()
		env.h.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("%d for body %q content type %q key %q: %s", w.Code, body, contentType, idemKey, w.Body)
		}
		if !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") || !bytes.HasPrefix(w.Body.Bytes(), []byte(`{"status":"`)) {
			t.Fatalf("%d not the JSON envelope: %s", w.Code, w.Body)
		}
		wrote := env.p.count() - before
		switch {
		case w.Code == http.StatusAccepted && w.Header().Get(HeaderReplayed) == "" && wrote != 1,
			(w.Code != http.StatusAccepted || w.Header().Get(HeaderReplayed) != "") && wrote != 0:
			t.Fatalf("%d (replayed %q) wrote %d records", w.Code, w.Header().Get(HeaderReplayed), wrote)
		}
	})
}
