package notifier

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/schemas"
)

// fuzzTopics are the topics whose records parseJob decodes.
var fuzzTopics = []string{schemas.TopicEvents, schemas.TopicWebhookRedeliver, "dialstream.webhooks.retry.1"}

// FuzzParseJob feeds arbitrary records to the decoder of everything the
// notifier consumes for delivery (lifecycle events, their retries and
// redeliveries): type, time, data and the retry headers are the fuzzer's.
// Whatever arrives: no panic; a record is bad (to the DLQ), skipped, or a
// job whose event satisfies call.event.v1 when written again and reads
// back unchanged, whose callback URL is an absolute http(s) URL with a
// host, and whose webhook body renders as JSON carrying the event id and
// the event's metadata.
//
//	go test ./notifier -run='^$' -fuzz='^FuzzParseJob$' -fuzztime=60s -parallel=1
func FuzzParseJob(f *testing.F) {
	files, err := filepath.Glob("../schemas/testdata/*/call.event.v1--*.json")
	if err != nil || len(files) == 0 {
		f.Fatalf("no call.event.v1 testdata: %v", err)
	}
	for i, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		typ := schemas.TypeCallQueued
		if strings.Contains(p, "ended") {
			typ = schemas.TypeCallEnded
		}
		f.Add(uint8(i), typ, "2026-11-26T10:00:05Z", "", "", b)
		// The same event with a callback and metadata, as a retry.
		var m map[string]any
		if json.Unmarshal(b, &m) == nil {
			m["callback_url"] = "https://example.com/hooks?x=1"
			m["metadata"] = map[string]any{"crm": []any{1, "a", nil}}
			b2, _ := json.Marshal(m)
			f.Add(uint8(i), typ, "", "2", "2026-11-26T10:00:06Z", b2)
		}
	}
	f.Add(uint8(0), schemas.TypeCallQueued, "", "0", "x", []byte(`{"call_id":"f9e8d7c6b5a4f3e2d1c0b9a8","workspace_id":"ws_demo","sequence":1,"status":"queued","occurred_at":"2026-11-26T10:00:05Z","callback_url":"http://[::1"}`))
	f.Add(uint8(1), schemas.TypeWebhookAttempt, "", "", "", []byte(`{}`))
	f.Add(uint8(2), "nope", "", "-1", "", []byte(`null`))

	f.Fuzz(func(t *testing.T, topic uint8, ceType, ceTime, attempt, due string, value []byte) {
		rec := &kgo.Record{Topic: fuzzTopics[int(topic)%len(fuzzTopics)], Key: []byte("k"), Value: value,
			Headers: []kgo.RecordHeader{
				{Key: schemas.HeaderSpecVersion, Value: []byte(schemas.SpecVersion)},
				{Key: schemas.HeaderID, Value: []byte("ev-1")},
				{Key: schemas.HeaderSource, Value: []byte("/fuzz")},
				{Key: schemas.HeaderType, Value: []byte(ceType)},
				{Key: schemas.HeaderTime, Value: []byte(ceTime)},
				{Key: HeaderAttempt, Value: []byte(attempt)},
				{Key: HeaderDue, Value: []byte(due)},
			}}
		var fastCall schemas.CallEvent
		if fast, ok := decodeCallEvent(rec, &fastCall); ok {
			sameAsDecode(t, rec, fast, &fastCall)
		}
		j := parseJob(rec)
		if j.attempt < 1 {
			t.Fatalf("attempt %d from header %q", j.attempt, attempt)
		}
		if j.bad != nil || j.skip {
			if j.bad != nil && j.skip {
				t.Fatal("a record both bad and skipped")
			}
			return
		}
		out, err := schemas.NewRecord(schemas.TopicEvents, "k", schemas.Meta{Type: j.ev.Type, Source: "/fuzz"}, j.call)
		if err != nil {
			t.Fatalf("accepted event %q no longer satisfies call.event.v1: %v", value, err)
		}
		// Compared as written: an empty list and none are the same event.
		var back schemas.CallEvent
		if err := json.Unmarshal(out.Value, &back); err != nil {
			t.Fatal(err)
		}
		if again, err := json.Marshal(back); err != nil || !bytes.Equal(again, out.Value) {
			t.Fatalf("event does not round-trip (%v):\n%s\n%s", err, again, out.Value)
		}
		if j.urlErr != nil {
			return
		}
		if (j.url.Scheme != "http" && j.url.Scheme != "https") || j.host == "" {
			t.Fatalf("callback %q parsed to scheme %q host %q", j.call.CallbackURL, j.url.Scheme, j.host)
		}
		body, err := buildBody(j.ev.ID, j.ev.Type, &j.call, topic%2 == 0)
		if err != nil {
			return // refused as undeliverable, with the reason
		}
		var p Payload
		if err := json.Unmarshal(body, &p); err != nil || p.Data.EventID != j.ev.ID {
			t.Fatalf("webhook body %s (%v)", body, err)
		}
		if len(j.call.Metadata) > 0 && !jsonEqual(p.Data.Metadata, j.call.Metadata) {
			t.Fatalf("webhook metadata %s, event's %s", p.Data.Metadata, j.call.Metadata)
		}
	})
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}

// FuzzEndpointRecord feeds arbitrary records of the endpoints topic (which
// any producer with access could write) to the notifier's follower: no
// panic, and only a valid webhook.endpoint.v1 record marks a URL gone.
//
//	go test ./notifier -run='^$' -fuzz='^FuzzEndpointRecord$' -fuzztime=60s -parallel=1
func FuzzEndpointRecord(f *testing.F) {
	for _, p := range []string{"valid/webhook.endpoint.v1--gone.json", "invalid/webhook.endpoint.v1--bad-state.json"} {
		b, err := os.ReadFile(filepath.Join("../schemas/testdata", p))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(schemas.TypeWebhookEndpoint, b)
	}
	f.Add(schemas.TypeCallEnded, []byte(`{}`))
	f.Add("", []byte(nil))
	log := slog.New(slog.DiscardHandler)
	f.Fuzz(func(t *testing.T, ceType string, value []byte) {
		e := newEndpoints(prometheus.NewGauge(prometheus.GaugeOpts{Name: "g"}))
		e.apply(&kgo.Record{Key: []byte("k"), Value: value, Headers: []kgo.RecordHeader{
			{Key: schemas.HeaderSpecVersion, Value: []byte(schemas.SpecVersion)},
			{Key: schemas.HeaderID, Value: []byte("ev-1")},
			{Key: schemas.HeaderSource, Value: []byte("/fuzz")},
			{Key: schemas.HeaderType, Value: []byte(ceType)},
		}}, log)
		if len(e.gone) == 0 {
			return
		}
		ev, err := schemas.Decode(&kgo.Record{Value: value, Headers: []kgo.RecordHeader{
			{Key: schemas.HeaderSpecVersion, Value: []byte(schemas.SpecVersion)}, {Key: schemas.HeaderID, Value: []byte("x")},
			{Key: schemas.HeaderSource, Value: []byte("/x")}, {Key: schemas.HeaderType, Value: []byte(ceType)}}})
		var ep schemas.WebhookEndpoint
		if err != nil || ev.Type != schemas.TypeWebhookEndpoint || json.Unmarshal(value, &ep) != nil || ep.State != schemas.EndpointGone {
			t.Fatalf("record %q of type %q marked a URL gone", value, ceType)
		}
		if _, ok := e.goneSince(ep.WorkspaceID, ep.URL); !ok || strings.TrimSpace(ep.URL) == "" {
			t.Fatalf("gone mark not under the record's workspace and URL: %+v", ep)
		}
	})
}
