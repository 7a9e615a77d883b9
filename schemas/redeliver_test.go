package schemas

import (
	"bytes"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// A dead-lettered event becomes the original event again on the redelivery
// topic: same key, value, id and trace context, without the notifier's and
// the DLQ's bookkeeping, so the notifier treats it as a first attempt.
func TestRedeliveryRecord(t *testing.T) {
	id := "f9e8d7c6b5a4f3e2d1c0b9a8"
	ev := CallEvent{CallID: id, WorkspaceID: "ws_demo", Sequence: 5, Status: StatusEnded, OccurredAt: time.Now(),
		CallbackURL: "https://example.com/hook", Outcome: OutcomeCompleted, EndedBy: EndedByCallee}
	orig, err := NewRecord(TopicEvents, id, Meta{ID: EventID(id, 5), Type: TypeCallEnded, Source: "/dialstream/dialer", Subject: id}, ev)
	if err != nil {
		t.Fatal(err)
	}
	orig.Headers = append(orig.Headers, kgo.RecordHeader{Key: "traceparent", Value: []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")})
	dead := *orig
	dead.Topic = "dialstream.webhooks.dlq"
	dead.Headers = append(append([]kgo.RecordHeader{}, orig.Headers...),
		kgo.RecordHeader{Key: "notifier_attempt", Value: []byte("8")},
		kgo.RecordHeader{Key: "notifier_webhook_id", Value: []byte(EventID(id, 5))},
		kgo.RecordHeader{Key: "dlq_error_class", Value: []byte("exhausted")},
		kgo.RecordHeader{Key: "dlq_attempts", Value: []byte("8")})

	r := RedeliveryRecord(&dead)
	if r.Topic != TopicWebhookRedeliver || string(r.Key) != id || !bytes.Equal(r.Value, orig.Value) {
		t.Fatalf("topic %s key %s value %s", r.Topic, r.Key, r.Value)
	}
	if len(r.Headers) != len(orig.Headers) {
		t.Fatalf("headers %v, want the event's %v", r.Headers, orig.Headers)
	}
	for i, h := range orig.Headers {
		if r.Headers[i].Key != h.Key || !bytes.Equal(r.Headers[i].Value, h.Value) {
			t.Fatalf("header %d: %s=%s, want %s=%s", i, r.Headers[i].Key, r.Headers[i].Value, h.Key, h.Value)
		}
	}
	got, err := Decode(r)
	if err != nil || got.ID != EventID(id, 5) || got.Type != TypeCallEnded {
		t.Fatalf("decode: %+v %v", got, err)
	}
}
