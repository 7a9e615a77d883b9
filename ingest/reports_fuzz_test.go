package ingest

import (
	"net/http"
	"testing"
	"time"

	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/schemas"
)

// FuzzAgentReport: POST /v1/agent/calls/{callId}/reports, the route the
// agent calls with its per-call token, with any call id, Authorization,
// content type and body. Whatever arrives: no 5xx, the envelope, and a 202
// only for a report of the call the token names, written as one command
// keyed by that call, valid against its schema; anything else writes
// nothing.
//
//	go test ./ingest -run='^$' -fuzz='^FuzzAgentReport$' -fuzztime=60s -parallel=1
func FuzzAgentReport(f *testing.F) {
	now := t0.Add(3 * time.Second)
	env := reportEnv(f, now)
	live, other := demoCall(1, t0), demoCall(2, t0)
	env.feed(f, live.request(f, 3, 0), other.request(f, 3, 1))
	env.feed(f, eventRecords(f, live.dialing())...)
	good := tokenFor(live, now.Add(time.Hour))
	for _, b := range []string{
		resultBody,
		`{"id":"r1","type":"answered_by","at":"2026-03-01T10:00:04Z","answered_by":"human"}`,
		`{"id":"r2","type":"transfer","at":"2026-03-01T10:00:04Z","transfer":{"to":"+15550100777"}}`,
		`{"id":"r3","type":"transfer","at":"2026-03-01T10:00:04Z","transfer":{"to":"555"}}`,
		`{"id":"r4","type":"dance","at":"2026-03-01T10:00:04Z"}`, `{"id":`, `[]`, `null`, `{}`,
		`{"id":"r5","type":"result","at":"2026-03-01T10:00:04Z","result":{"data":{"a":[1,{"b":null}]},"transcript":[]}}`,
	} {
		f.Add(live.id, good, "application/json", []byte(b))
	}
	f.Add(other.id, good, "application/json", []byte(resultBody))
	f.Add(live.id, "Bearer "+demoKey, "application/json", []byte(resultBody))
	f.Add(live.id, tokenFor(live, now.Add(-time.Second)), "application/json", []byte(resultBody))
	f.Add(live.id, good, "text/plain", []byte(resultBody))
	f.Add("../x", good, "application/json", []byte(resultBody))
	f.Fuzz(func(t *testing.T, id, auth, ct string, body []byte) {
		if !reachable(auth, ct) {
			return
		}
		hdr := http.Header{"Authorization": {auth}, "Content-Type": {ct}}
		w := fuzzServe(t, env, http.MethodPost, reportPath(id), "", hdr, body)
		recs := env.p.take()
		if w.Code != http.StatusAccepted {
			if len(recs) != 0 {
				t.Fatalf("%d wrote %d records: %s", w.Code, len(recs), w.Body)
			}
			return
		}
		if id != live.id {
			t.Fatalf("report to %q with %q accepted: %s", id, auth, w.Body)
		}
		if len(recs) != 1 || string(recs[0].Key) != live.id || recs[0].Topic != schemas.TopicRequested ||
			kafkax.Header(recs[0], schemas.HeaderType) != schemas.TypeAgentReportReceived {
			t.Fatalf("a 202 wrote %d records", len(recs))
		}
		decoded(t, recs)
	})
}
