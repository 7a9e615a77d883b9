package ingest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

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

// BenchmarkCallStateLoad is what a start costs per call: folding a typical
// call's records (its request, five events, two delivery attempts) into the
// call state, as the follower does. It reports the heap a call keeps
// (heap-B/call); ns/op is for 2000 calls.
func BenchmarkCallStateLoad(b *testing.B) {
	reg := testRegistry(b, true)
	const n = 2000
	var recs []*kgo.Record
	for i := range n {
		f := demoCall(i, t0.Add(time.Duration(i)*time.Millisecond))
		f.id = fmt.Sprintf("%024x", i+1)
		recs = append(recs, f.request(b, 0, int64(i)))
		recs = append(recs, eventRecords(b, f.completed())...)
		recs = append(recs, attemptRecord(b, f.attempt(1, schemas.StatusQueued, 1, f.at, 204, "", schemas.WebhookSuccess)),
			attemptRecord(b, f.attempt(5, schemas.StatusEnded, 1, f.at, 204, "", schemas.WebhookSuccess)))
	}
	var heap float64
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		b.StartTimer()
		st := newStore(365*24*time.Hour, 1<<30)
		st.now = func() time.Time { return t0 }
		for _, r := range recs {
			applyRecord(st, reg, r)
		}
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&m1)
		heap = float64(m1.HeapAlloc-m0.HeapAlloc) / n
		runtime.KeepAlive(st)
		b.StartTimer()
	}
	b.ReportMetric(heap, "heap-B/call")
}
