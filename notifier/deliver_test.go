package notifier

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/dialstream/dialstream/schemas"
)

// A call's events arrive signed (verified by the independent Standard
// Webhooks library), in sequence order, with the metadata as sent; an event
// without callback_url is skipped and counted; a record that is not a
// CloudEvent goes to the DLQ and the partition moves on.
func TestDeliversSignedEventsInOrder(t *testing.T) {
	rc := newReceiver(t, nil)
	e := newEnv(t, nil)

	call := callID()
	meta := `{"order_id":"A-17","n":1.50,"tags":["x","<y>"]}`
	evs := []schemas.CallEvent{
		event(call, "ws_a", 1, schemas.StatusQueued, rc.URL+"/hooks"),
		event(call, "ws_a", 2, schemas.StatusDialing, rc.URL+"/hooks"),
		event(call, "ws_a", 3, schemas.StatusEnded, rc.URL+"/hooks"),
	}
	for i := range evs {
		evs[i].Metadata = json.RawMessage(meta)
	}
	// Poison first, on the same partition as nothing in particular: it must
	// not stop anything.
	poison := &kgo.Record{Topic: schemas.TopicEvents, Key: []byte(call), Value: []byte("not json"), Headers: []kgo.RecordHeader{
		{Key: schemas.HeaderSpecVersion, Value: []byte("1.0")}, {Key: schemas.HeaderID, Value: []byte("p-1")},
		{Key: schemas.HeaderType, Value: []byte(schemas.TypeCallQueued)}, {Key: schemas.HeaderSource, Value: []byte("/test")}}}
	if err := e.cl.ProduceSync(context.Background(), poison).FirstErr(); err != nil {
		t.Fatal(err)
	}
	ids := e.emit(evs...)
	e.emit(event(callID(), "ws_a", 1, schemas.StatusQueued, ""))

	testutil.Eventually(t, 20*time.Second, "3 deliveries", func() bool { return rc.count() >= 3 })
	var recordMeta json.RawMessage
	for _, r := range e.records(schemas.TopicEvents) {
		var ev schemas.CallEvent
		if json.Unmarshal(r.Value, &ev) == nil && ev.CallID == call {
			recordMeta = ev.Metadata
		}
	}
	wh, _ := standardwebhooks.NewWebhook(secretA)
	hits := rc.got()
	for i, h := range hits {
		if err := wh.Verify(h.body, h.header); err != nil {
			t.Errorf("delivery %d does not verify: %v", i, err)
		}
		if got := h.header.Get("webhook-id"); got != ids[i] {
			t.Errorf("delivery %d webhook-id %s, want %s (in order)", i, got, ids[i])
		}
		if h.header.Get("Content-Type") != "application/json" {
			t.Errorf("content type %q", h.header.Get("Content-Type"))
		}
		// The metadata bytes are those of the event record (the producer's
		// encoding of what the client sent), and mean what the client sent.
		if !strings.Contains(string(h.body), `"metadata":`+string(recordMeta)) {
			t.Errorf("metadata not verbatim from the event: %s", h.body)
		}
		var p Payload
		if err := json.Unmarshal(h.body, &p); err != nil || p.Data.Sequence != i+1 || p.Data.CallID != call || p.Data.WorkspaceID != "ws_a" {
			t.Errorf("body %s: %+v %v", h.body, p, err)
		}
		var got, want any
		_ = json.Unmarshal(p.Data.Metadata, &got)
		_ = json.Unmarshal([]byte(meta), &want)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("metadata %s, want %s", p.Data.Metadata, meta)
		}
	}
	var end Payload
	_ = json.Unmarshal(hits[2].body, &end)
	if end.Type != "call.ended" || end.Data.Outcome != schemas.OutcomeCompleted || end.Data.EndedBy != schemas.EndedByCallee {
		t.Errorf("ended body %+v", end)
	}

	dlq := e.waitRecords(schemas.TopicWebhookDLQ, 1, 10*time.Second, nil)
	if header(dlq[0], kafkax.HeaderDLQErrorClass) != string(DLQInvalidEvent) || string(dlq[0].Value) != "not json" ||
		header(dlq[0], kafkax.HeaderDLQSourceTopic) != schemas.TopicEvents {
		t.Fatalf("DLQ record %v %q", dlq[0].Headers, dlq[0].Value)
	}
	testutil.Eventually(t, 10*time.Second, "3 success entries in the delivery log", func() bool {
		as := e.attempts(call)
		return len(as) == 3 && as[0].Result == schemas.WebhookSuccess && as[0].StatusCode == 204 && as[0].Attempt == 1
	})
	testutil.Eventually(t, 5*time.Second, "metrics", func() bool {
		return e.metric("dialstream_notifier_webhook_attempts_total", "result", "success") == 3 &&
			e.metric("dialstream_notifier_webhook_attempts_total", "result", "skipped") == 1 &&
			e.metric("dialstream_notifier_dlq_total", "reason", "invalid_event") == 1
	})
	if rc.count() != 3 {
		t.Fatalf("%d deliveries, want 3", rc.count())
	}
}

// An endpoint that fails twice then succeeds gets the event three times with
// one webhook-id, spaced by the schedule.
func TestRetryThenSuccessKeepsWebhookID(t *testing.T) {
	rc := newReceiver(t, func(n int, _ *http.Request, _ http.ResponseWriter) int {
		if n <= 2 {
			return []int{500, 503}[n-1]
		}
		return 200
	})
	e := newEnv(t, nil)
	call := callID()
	ids := e.emit(event(call, "ws_b", 1, schemas.StatusQueued, rc.URL))
	testutil.Eventually(t, 20*time.Second, "3 attempts", func() bool { return rc.count() >= 3 })
	hits := rc.got()
	for _, h := range hits {
		if h.header.Get("webhook-id") != ids[0] {
			t.Fatalf("webhook-id %s, want %s", h.header.Get("webhook-id"), ids[0])
		}
	}
	if gap := hits[1].at.Sub(hits[0].at); gap < 100*time.Millisecond {
		t.Errorf("first retry after %s, schedule says 100ms", gap)
	}
	if gap := hits[2].at.Sub(hits[1].at); gap < 200*time.Millisecond {
		t.Errorf("second retry after %s, schedule says 200ms", gap)
	}
	testutil.Eventually(t, 10*time.Second, "delivery log retry, retry, success", func() bool {
		as := e.attempts(call)
		var res []schemas.WebhookResult
		for _, a := range as {
			res = append(res, a.Result)
		}
		return slices.Equal(res, []schemas.WebhookResult{schemas.WebhookRetry, schemas.WebhookRetry, schemas.WebhookSuccess}) &&
			as[0].StatusCode == 500 && as[0].NextAttemptAt != nil && as[2].Attempt == 3 && as[2].MaxAttempts == 3
	})
	if rc.count() != 3 {
		t.Fatalf("%d attempts, want 3", rc.count())
	}
	if got := e.metric("dialstream_notifier_retries_scheduled_total", "step", "1"); got != 1 {
		t.Errorf("retries step 1 = %v", got)
	}
}

// After the last attempt of a short schedule the event is in the DLQ with the
// reason, the last status and the attempt count.
func TestDLQAfterScheduleExhausted(t *testing.T) {
	rc := newReceiver(t, func(int, *http.Request, http.ResponseWriter) int { return 503 })
	e := newEnv(t, nil)
	call := callID()
	ev := event(call, "ws_a", 1, schemas.StatusQueued, rc.URL)
	ids := e.emit(ev)
	dlq := e.waitRecords(schemas.TopicWebhookDLQ, 1, 20*time.Second, nil)[0]
	if rc.count() != 3 {
		t.Fatalf("%d attempts, want 3", rc.count())
	}
	want := map[string]string{
		kafkax.HeaderDLQErrorClass:     "exhausted",
		kafkax.HeaderDLQLastStatusCode: "503",
		kafkax.HeaderDLQAttempts:       "3",
		HeaderNotifierWebhookID:        ids[0],
		schemas.HeaderID:               ids[0],
		schemas.HeaderType:             schemas.TypeCallQueued,
	}
	for k, v := range want {
		if got := header(dlq, k); got != v {
			t.Errorf("DLQ header %s = %q, want %q", k, got, v)
		}
	}
	if !strings.Contains(header(dlq, kafkax.HeaderDLQError), "HTTP 503") {
		t.Errorf("dlq_error %q", header(dlq, kafkax.HeaderDLQError))
	}
	if !strings.HasPrefix(header(dlq, HeaderOrigin), schemas.TopicEvents+"/") {
		t.Errorf("origin %q", header(dlq, HeaderOrigin))
	}
	// The DLQ record is still the event: it decodes as one.
	if _, err := schemas.Decode(dlq); err != nil {
		t.Fatalf("DLQ record is not a valid CloudEvent: %v", err)
	}
	if as := e.attempts(call); len(as) != 3 || as[2].Result != schemas.WebhookExhausted {
		t.Fatalf("delivery log %+v", as)
	}
	testutil.Eventually(t, 5*time.Second, "dlq metric", func() bool { return e.metric("dialstream_notifier_dlq_total", "reason", "exhausted") == 1 })
}

// 3xx is a final failure and the redirect is never followed; other 4xx are
// final; 410 stops deliveries to that URL (durably) until a redelivery works.
func TestFinalStatuses(t *testing.T) {
	target := newReceiver(t, nil)
	gone := true
	rc := newReceiver(t, func(_ int, r *http.Request, w http.ResponseWriter) int {
		switch r.URL.Path {
		case "/redirect":
			w.Header().Set("Location", target.URL+"/internal")
			return http.StatusFound
		case "/bad":
			return http.StatusBadRequest
		case "/missing":
			return http.StatusNotFound
		case "/gone":
			if gone {
				return http.StatusGone
			}
		}
		return http.StatusOK
	})
	e := newEnv(t, nil)
	c1, c2, c3, c4, c5 := callID(), callID(), callID(), callID(), callID()
	unsigned, badURL := callID(), callID()
	e.emit(event(c1, "ws_a", 1, schemas.StatusQueued, rc.URL+"/redirect"),
		event(c2, "ws_a", 1, schemas.StatusQueued, rc.URL+"/bad"),
		event(c3, "ws_a", 1, schemas.StatusQueued, rc.URL+"/missing"),
		event(c4, "ws_a", 1, schemas.StatusQueued, rc.URL+"/gone"),
		event(unsigned, "ws_unsigned", 1, schemas.StatusQueued, rc.URL+"/unsigned"),
		event(badURL, "ws_a", 1, schemas.StatusQueued, "ftp://example.com/hook"))
	dlq := e.waitKeys(schemas.TopicWebhookDLQ, []string{c1, c2, c3, c4, unsigned, badURL}, 20*time.Second)
	byCall := map[string]*kgo.Record{}
	for call, rs := range dlq {
		byCall[call] = rs[0]
	}
	for call, want := range map[string][2]string{c1: {"final_status", "302"}, c2: {"final_status", "400"}, c3: {"final_status", "404"}, c4: {"gone", "410"}} {
		r := byCall[call]
		if r == nil || header(r, kafkax.HeaderDLQErrorClass) != want[0] || header(r, kafkax.HeaderDLQLastStatusCode) != want[1] || header(r, kafkax.HeaderDLQAttempts) != "1" {
			t.Errorf("DLQ for %s: %v, want %v", call, r, want)
		}
	}
	for _, call := range []string{unsigned, badURL} {
		if r := byCall[call]; r == nil || header(r, kafkax.HeaderDLQErrorClass) != string(DLQUndeliverable) || header(r, kafkax.HeaderDLQAttempts) != "0" {
			t.Errorf("DLQ for %s: %v, want undeliverable after 0 attempts", call, r)
		} else {
			t.Logf("undeliverable: %s", header(r, kafkax.HeaderDLQError))
		}
	}
	if rc.count() != 4 {
		t.Errorf("%d requests, want one per event (no retries)", rc.count())
	}
	if target.count() != 0 {
		t.Fatal("the redirect was followed")
	}
	ep := e.waitRecords(schemas.TopicWebhookEndpoints, 1, 10*time.Second, nil)[0]
	if string(ep.Key) != schemas.WebhookEndpointKey("ws_a", rc.URL+"/gone") {
		t.Fatalf("endpoint key %q", ep.Key)
	}

	// Later events to the gone URL are not sent; other URLs still are; the
	// other workspace's use of the same URL is not affected.
	e.emit(event(c5, "ws_a", 1, schemas.StatusQueued, rc.URL+"/gone"),
		event(c5, "ws_a", 2, schemas.StatusDialing, rc.URL+"/ok"))
	e.waitKeys(schemas.TopicWebhookDLQ, []string{c5}, 10*time.Second)
	testutil.Eventually(t, 10*time.Second, "the /ok delivery", func() bool { return rc.count() == 5 })
	for _, h := range rc.got()[4:] {
		if h.path != "/ok" {
			t.Fatalf("request to %s after 410", h.path)
		}
	}
	other := callID()
	gone = false
	e.emit(event(other, "ws_b", 1, schemas.StatusQueued, rc.URL+"/gone"))
	testutil.Eventually(t, 10*time.Second, "ws_b delivery to the same URL", func() bool { return rc.count() == 6 })

	// A redelivery of the DLQ'd event is made despite the mark, succeeds,
	// lifts it, and the URL gets events again.
	var dlqC5 *kgo.Record
	for _, r := range e.records(schemas.TopicWebhookDLQ) {
		if string(r.Key) == c5 {
			dlqC5 = r
		}
	}
	if err := e.cl.ProduceSync(context.Background(), schemas.RedeliveryRecord(dlqC5)).FirstErr(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "redelivery", func() bool { return rc.count() == 7 })
	if h := rc.got()[6]; h.path != "/gone" || h.header.Get("webhook-id") != schemas.EventID(c5, 1) {
		t.Fatalf("redelivery %s %s", h.path, h.header.Get("webhook-id"))
	}
	e.waitRecords(schemas.TopicWebhookEndpoints, 2, 10*time.Second, nil)
	e.emit(event(c5, "ws_a", 3, schemas.StatusRinging, rc.URL+"/gone"))
	testutil.Eventually(t, 10*time.Second, "delivery after the mark was lifted", func() bool { return rc.count() == 8 })
}

// Retry-After is honored: the next attempt waits at least that long even
// when the schedule's step is shorter.
func TestRetryAfterHonored(t *testing.T) {
	rc := newReceiver(t, func(n int, _ *http.Request, w http.ResponseWriter) int {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			return http.StatusTooManyRequests
		}
		return http.StatusOK
	})
	e := newEnv(t, func(c *Config) { c.RetrySchedule = []time.Duration{0, 100 * time.Millisecond, 5 * time.Second} })
	e.emit(event(callID(), "ws_a", 1, schemas.StatusQueued, rc.URL))
	testutil.Eventually(t, 20*time.Second, "2 attempts", func() bool { return rc.count() >= 2 })
	hits := rc.got()
	gap := hits[1].at.Sub(hits[0].at)
	if gap < time.Second {
		t.Fatalf("retry after %s, Retry-After said 1s", gap)
	}
	if gap > 4*time.Second {
		t.Fatalf("retry after %s: Retry-After 1s was stretched to the next step", gap)
	}
	t.Logf("Retry-After: 1 -> next attempt %s later", gap.Round(time.Millisecond))
	if hits[1].header.Get("webhook-id") != hits[0].header.Get("webhook-id") {
		t.Fatal("webhook-id changed")
	}
}
