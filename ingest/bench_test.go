package ingest

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkCreateCall is the handler's own cost per request (fake producer,
// no network): what ingest adds on top of a bare produce.
func BenchmarkCreateCall(b *testing.B) {
	env := newTestEnv(b, func(c *Config) { c.Logger = discardLogger() })
	env.p.discard = true
	body := `{"to":"+15550101234","call_agent_id":"` + demoAgent + `","callback_url":"https://example.com/webhooks/dialstream",` +
		`"dynamic_variables":{"firstName":"Ada","lastName":"Lovelace","Zipcode":"94105","address":"1 Main St","email":"ada@example.com"},` +
		`"metadata":{"crm_id":"abc-123","campaign":"spring"}}`
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, "/v1/api/call", strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+demoKey)
		r.Header.Set("x-workspace-id", "ws_demo")
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		env.h.ServeHTTP(w, r)
		if w.Code != http.StatusAccepted {
			b.Fatal(w.Code, w.Body)
		}
	}
}
