package notifier

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dialstream/dialstream/schemas"
)

// results are the values of webhook.attempt.v1's result, and one it refuses.
var results = []schemas.WebhookResult{schemas.WebhookSuccess, schemas.WebhookRetry, schemas.WebhookExhausted,
	schemas.WebhookFailed, schemas.WebhookGone, schemas.WebhookSSRFRefused, "pending"}

// FuzzAttemptRecord shows that attemptRecord, which writes the delivery log
// without running the JSON Schema validator, accepts exactly the attempts
// that webhook.attempt.v1 accepts and writes what schemas.NewRecord would:
// for any attempt, either both refuse it, or both accept it with the same
// record value and the same headers (but for the random ce_id). So the
// schema file stays the contract: after a change to it, this test looks for
// the attempts on which checkAttempt no longer agrees.
//
//	go test ./notifier -run='^$' -fuzz='^FuzzAttemptRecord$' -fuzztime=60s -parallel=1
func FuzzAttemptRecord(f *testing.F) {
	f.Add("f9e8d7c6b5a4f3e2d1c0b9a8-5", "dialstream.call.ended.v1", "f9e8d7c6b5a4f3e2d1c0b9a8", "ws_a", 5, 1, 8, false,
		"https://example.com/hook", int64(1_764_000_000), int64(500), int16(0), 0.0123, 204, "", uint8(0), false)
	f.Add("e", "t", "f9e8d7c6b5a4f3e2d1c0b9a8", "ws", 1, 2, 8, true, "", int64(0), int64(0), int16(60), 1.5, 503,
		"HTTP 503 Service Unavailable: busy", uint8(1), true)
	f.Add("", "", "F9E8D7C6B5A4F3E2D1C0B9A8", strings.Repeat("w", 65), 0, 0, 0, false, strings.Repeat("ü", 2049),
		int64(-62_135_596_800), int64(0), int16(-60), -1.0, 99, strings.Repeat("\xff", 2049), uint8(6), true)
	f.Add("e", "t", "f9e8d7c6b5a4f3e2d1c0b9a8", "ws", 1, 1, 1, false, "", int64(253_402_300_800), int64(0), int16(0),
		math.Inf(1), 600, "", uint8(0), false)
	f.Add("a\"b\\c\b\f\n\r\t\x00\x1f\x7f<>&", "t\u2028\u2029é", "f9e8d7c6b5a4f3e2d1c0b9a8", "ws\xc3", 1, 1, 1, false,
		"http://x/\xff\xfe", int64(1_764_000_000), int64(999_999_999), int16(330), 1e-7, 200, "x\u2029", uint8(4), false)
	f.Add("e", "t", "f9e8d7c6b5a4f3e2d1c0b9a8", "ws", 1, 1, 1, false, "", int64(1_764_000_000), int64(1), int16(0),
		1e21, 200, "", uint8(3), false)
	f.Fuzz(func(t *testing.T, eventID, eventType, callID, ws string, seq, attempt, maxAttempts int, redelivery bool,
		url string, sec, nsec int64, offsetMin int16, dur float64, status int, errText string, result uint8, next bool) {
		zone := time.FixedZone("", int(offsetMin)*60)
		a := schemas.WebhookAttempt{EventID: eventID, EventType: eventType, CallID: callID, WorkspaceID: ws,
			Sequence: seq, Attempt: attempt, MaxAttempts: maxAttempts, Redelivery: redelivery, URL: url,
			AttemptedAt: time.Unix(sec, nsec).In(zone), DurationSeconds: dur, StatusCode: status, Error: errText,
			Result: results[int(result)%len(results)]}
		if next {
			at := a.AttemptedAt.Add(5 * time.Second)
			a.NextAttemptAt = &at
		}
		want, wantErr := schemas.NewRecord(schemas.TopicWebhookDeliveries, a.CallID, schemas.Meta{
			Type: schemas.TypeWebhookAttempt, Source: eventSource, Subject: a.CallID, Time: a.AttemptedAt}, &a)
		got, gotErr := attemptRecord(&a)
		if (wantErr == nil) != (gotErr == nil) {
			js, _ := json.Marshal(a)
			t.Fatalf("schema says %v, attemptRecord says %v, for %s", wantErr, gotErr, js)
		}
		if wantErr != nil {
			return
		}
		if string(got.Key) != string(want.Key) || got.Topic != want.Topic || string(got.Value) != string(want.Value) {
			t.Fatalf("record %s %s %s, NewRecord's %s %s %s", got.Topic, got.Key, got.Value, want.Topic, want.Key, want.Value)
		}
		if header(got, schemas.HeaderID) == "" {
			t.Fatal("no ce_id")
		}
		if len(got.Headers) != len(want.Headers) {
			t.Fatalf("headers %v, NewRecord's %v", got.Headers, want.Headers)
		}
		for i, h := range want.Headers {
			if h.Key != schemas.HeaderID && !reflect.DeepEqual(got.Headers[i], h) {
				t.Fatalf("header %d: %s=%q, NewRecord's %s=%q", i, got.Headers[i].Key, got.Headers[i].Value, h.Key, h.Value)
			}
		}
		if _, err := schemas.Decode(got); err != nil {
			t.Fatalf("the record does not decode: %v", err)
		}
	})
}

// BenchmarkAttemptRecord builds one delivery log record; the NewRecord
// variant is the run-time JSON Schema path it replaced.
func BenchmarkAttemptRecord(b *testing.B) {
	at := time.Unix(1_764_000_000, 5e8)
	a := &schemas.WebhookAttempt{EventID: "f9e8d7c6b5a4f3e2d1c0b9a8-5", EventType: schemas.TypeCallEnded,
		CallID: "f9e8d7c6b5a4f3e2d1c0b9a8", WorkspaceID: "ws_b", Sequence: 5, Attempt: 1, MaxAttempts: 8,
		URL: "https://example.com/hook", AttemptedAt: at, DurationSeconds: 0.0123, StatusCode: 204, Result: schemas.WebhookSuccess}
	b.Run("attemptRecord", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := attemptRecord(a); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("NewRecord", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := schemas.NewRecord(schemas.TopicWebhookDeliveries, a.CallID, schemas.Meta{
				Type: schemas.TypeWebhookAttempt, Source: eventSource, Subject: a.CallID, Time: a.AttemptedAt}, a); err != nil {
				b.Fatal(err)
			}
		}
	})
}
