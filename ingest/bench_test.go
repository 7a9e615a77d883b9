package ingest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dialstream/dialstream/internal/callrecords"
	"github.com/dialstream/dialstream/internal/callrecords/dbtest"
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

// benchBody is loadgen's body: what a typical client sends.
const benchBody = `{"to":"+12025550123","call_agent_id":"load_agent","callback_url":"https://example.com/webhooks/dialstream",` +
	`"dynamic_variables":{"firstName":"Ada","lastName":"Lovelace","Zipcode":"94105","address":"1 Main St","email":"ada@example.com"},` +
	`"metadata":{"crm_id":"abc-123","campaign":"spring"}}`

// BenchmarkParseCallRequest is the body's decoding and checks, the phone
// number's parse and classification included.
func BenchmarkParseCallRequest(b *testing.B) {
	lim := limits{maxVariables: 64, maxValueLength: 4096, defaultRegion: "US"}
	body := []byte(benchBody)
	b.ReportAllocs()
	for b.Loop() {
		if _, ferrs, err := parseCallRequest(body, lim); err != nil || len(ferrs) > 0 {
			b.Fatal(err, ferrs)
		}
	}
}

// BenchmarkParsePhone: a number sent in E.164 (parsed and classified
// once) and one in national format (classified again by the check).
func BenchmarkParsePhone(b *testing.B) {
	for _, s := range []string{"+12025550123", "+442079460000", "(202) 555-0123"} {
		b.Run(s, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, msg := parsePhone(s, "US", false); msg != "" {
					b.Fatal(msg)
				}
			}
		})
	}
}

// BenchmarkReadObject splits the body into its members.
func BenchmarkReadObject(b *testing.B) {
	body := []byte(benchBody)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ok := readObject(body); !ok {
			b.Fatal("not an object")
		}
	}
}

// BenchmarkOwnWrites is ingest's fallback write of accepted calls into a
// SQLite call records database (no recorder runs), 64 at a time, each
// batch written at once as a read that waited its budget has it written
// (ownwrites.go); ns/op is per call.
func BenchmarkOwnWrites(b *testing.B) {
	st := dbtest.Open(b, callrecords.SQLite, callrecords.Options{})
	own := newOwnWrites(st, callrecords.DefaultRecorderGroup, nil, discardLogger())
	data := []byte(`{"call_id":"f9e8d7c6b5a4f3e2d1c0b9a8","workspace_id":"ws_load","to":"+12025550123","call_agent_id":"load_agent",` +
		`"room_name":"load_agent-x7k2m9p4q1","callback_url":"https://example.com/webhooks/dialstream",` +
		`"dynamic_variables":{"Zipcode":"94105","address":"1 Main St","email":"ada@example.com","firstName":"Ada","lastName":"Lovelace"},` +
		`"metadata":{"crm_id":"abc-123","campaign":"spring"},"requested_at":"2026-03-01T10:00:00.123456789Z"}`)
	ctx := context.Background()
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		r := &schemas.CallRequested{CallID: fmt.Sprintf("%024x", i), WorkspaceID: "ws_load", To: "+12025550123",
			CallAgentID: "load_agent", RequestedAt: time.Now()}
		if err := own.put(ctx, r, data, 0, int64(i)); err != nil {
			b.Fatal(err)
		}
		if i%64 == 0 {
			if err := ownFlush(ctx, own); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := ownFlush(ctx, own); err != nil {
		b.Fatal(err)
	}
}

// ownFlush has every request noted so far written by ingest, as a read that
// waited ownReadBudget does, and waits for it.
func ownFlush(ctx context.Context, o *ownWrites) error {
	o.mu.Lock()
	o.force = o.enqueued
	o.mu.Unlock()
	o.wake()
	return o.wait(ctx)
}
