package ingest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dialstream/dialstream/schemas"
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

// BenchmarkGetCall is GET /v1/api/call/:callId on a SQLite call records
// database holding 2000 calls (request, five events, two attempts each):
// the read and the rendering, without a network.
func BenchmarkGetCall(b *testing.B) {
	env := newTestEnv(b, func(c *Config) { c.Logger = discardLogger() })
	env.clock(t0.Add(time.Hour))
	const n = 2000
	for i := range n {
		f := demoCall(i, t0.Add(time.Duration(i)*time.Millisecond))
		f.id = fmt.Sprintf("%024x", i+1)
		env.feed(b, f.request(b, 0, int64(i)))
		env.feed(b, eventRecords(b, f.completed())...)
		env.feed(b, attemptRecord(b, f.attempt(1, schemas.StatusQueued, 1, f.at, 204, "", schemas.WebhookSuccess)),
			attemptRecord(b, f.attempt(5, schemas.StatusEnded, 1, f.at, 204, "", schemas.WebhookSuccess)))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if code, body := env.get(b, fmt.Sprintf("/v1/api/call/%024x", i%n+1)); code != http.StatusOK {
			b.Fatal(code, body)
		}
	}
}
