package notifier

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/schemas"
)

// pick returns set[i mod len(set)].
func pick[T any](set []T, i uint8) T { return set[int(i)%len(set)] }

var (
	fuzzStatuses   = []schemas.Status{"queued", "dialing", "ringing", "answered", "ended", "agent_report", "", "Ended"}
	fuzzOutcomes   = []schemas.Outcome{"", "completed", "busy", "destination_not_allowed", "voicemail", "hung_up"}
	fuzzEndedBy    = []schemas.EndedBy{"", "callee", "watchdog", "system", "nobody"}
	fuzzAnsweredBy = []schemas.AnsweredBy{"", "human", "machine", "ivr", "unknown", "robot"}
	fuzzMetadata   = []string{"", `{}`, `{"crm_id":"42","tags":["<vip>"]}`, `[1]`, `null`, `"s"`}
)

// callEventRecord is the record schemas.NewRecord would write for ev, written
// whether or not ev is valid.
func callEventRecord(ev *schemas.CallEvent) *kgo.Record {
	b, _ := encodeBody(ev)
	return &kgo.Record{Topic: schemas.TopicEvents, Key: []byte(ev.CallID), Value: b, Headers: []kgo.RecordHeader{
		{Key: schemas.HeaderSpecVersion, Value: []byte(schemas.SpecVersion)},
		{Key: schemas.HeaderID, Value: []byte(schemas.EventID(ev.CallID, ev.Sequence))},
		{Key: schemas.HeaderType, Value: []byte(ev.Status.Type())},
		{Key: schemas.HeaderSource, Value: []byte("/dialstream/dialer")},
		{Key: schemas.HeaderTime, Value: []byte(ev.OccurredAt.UTC().Format(time.RFC3339Nano))},
		{Key: schemas.HeaderContentType, Value: []byte(schemas.ContentTypeJSON)},
		{Key: schemas.HeaderDataSchema, Value: []byte(schemas.SchemaCallEvent)},
		{Key: schemas.HeaderSubject, Value: []byte(ev.CallID)},
	}}
}

// sameAsDecode fails t unless schemas.Decode accepts rec as the fast path
// did: the same Event, and data that decodes to the same CallEvent.
func sameAsDecode(t *testing.T, rec *kgo.Record, fast *schemas.Event, fastCall *schemas.CallEvent) {
	t.Helper()
	slow, err := schemas.Decode(rec)
	if err != nil {
		t.Fatalf("decodeCallEvent vouched for a record schemas.Decode refuses (%v): %s", err, rec.Value)
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("event %+v, schemas.Decode's %+v", fast, slow)
	}
	var call schemas.CallEvent
	if err := json.Unmarshal(slow.Data, &call); err != nil || !reflect.DeepEqual(&call, fastCall) {
		t.Fatalf("call event %+v, from schemas.Decode's data %+v (%v)", fastCall, call, err)
	}
}

// FuzzDecodeCallEvent shows that the fast path of parseJob and the schema
// accept and refuse exactly the same lifecycle events, as the dialer writes
// them (schemas.NewRecord's headers and encoding): for any event the fuzzer
// builds, decodeCallEvent vouches for it exactly when call.event.v1 accepts
// it, and then comes to what schemas.Decode comes to. Two kinds of valid
// events always take the schema's path: agent reports, and events whose
// strings held invalid UTF-8 (readsBack). FuzzParseJob checks the same
// agreement on arbitrary bytes, where the fast path must never vouch for a
// record the schema refuses.
//
//	go test ./notifier -run='^$' -fuzz='^FuzzDecodeCallEvent$' -fuzztime=60s -parallel=1
func FuzzDecodeCallEvent(f *testing.F) {
	f.Add("f9e8d7c6b5a4f3e2d1c0b9a8", "ws_a", 1, uint8(0), int64(1_764_000_000), int64(5e8), int16(0), false,
		"+15550100001", "a1b2c3d4e5f6a7b8c9d0e1f2", "a1b2c3d4e5f6a7b8c9d0e1f2-x7k2m9p4q1", "https://example.com/h",
		uint8(2), uint8(0), "", 0, "", "", uint8(0), 0.0, false, uint8(0), "", "", 0)
	f.Add("f9e8d7c6b5a4f3e2d1c0b9a8", "ws_a", 5, uint8(4), int64(1_764_000_000), int64(0), int16(90), true,
		"+15550100001", "", "", "http://x/\u2028<>", uint8(1), uint8(1), "busy\n", 486, "Busy Here", "", uint8(1),
		3.5, true, uint8(1), "0123456789abcdef01234567", "c-1@x.y:z+q", 2)
	f.Add("F9E8D7C6B5A4F3E2D1C0B9A8", "", 0, uint8(5), int64(-62_135_596_800), int64(0), int16(0), false,
		"+155501000011111111111111111111111", "", "", "", uint8(3), uint8(5), "", 99, "", "", uint8(4),
		-1.0, true, uint8(5), "x", "", -1)
	f.Fuzz(func(t *testing.T, callID, ws string, seq int, status uint8, sec, nsec int64, offsetMin int16, requested bool,
		to, agent, room, url string, metadata, outcome uint8, reason string, sipCode int, sipStatus, disconnect string,
		endedBy uint8, dur float64, hasDur bool, answeredBy uint8, campaign, contact string, attempt int) {
		at := time.Unix(sec, nsec).In(time.FixedZone("", int(offsetMin)*60))
		ev := schemas.CallEvent{CallID: callID, WorkspaceID: ws, Sequence: seq, Status: pick(fuzzStatuses, status),
			OccurredAt: at, To: to, CallAgentID: agent, RoomName: room, CallbackURL: url,
			Metadata: json.RawMessage(pick(fuzzMetadata, metadata)), Outcome: pick(fuzzOutcomes, outcome), Reason: reason,
			SIPStatusCode: sipCode, SIPStatus: sipStatus, DisconnectReason: disconnect, EndedBy: pick(fuzzEndedBy, endedBy),
			AnsweredBy: pick(fuzzAnsweredBy, answeredBy), CampaignID: campaign, ContactID: contact, Attempt: attempt}
		if requested {
			r := at.Add(-time.Second)
			ev.RequestedAt = &r
		}
		if hasDur {
			ev.RingDurationSeconds, ev.TalkDurationSeconds = &dur, &dur
		}
		rec := callEventRecord(&ev)
		var call schemas.CallEvent
		fast, ok := decodeCallEvent(rec, &call)
		_, schemaErr := schemas.Decode(rec)
		switch {
		case ok:
			sameAsDecode(t, rec, fast, &call)
		case schemaErr == nil && ev.Status != schemas.StatusAgentReport && readsBack(rec.Value):
			t.Fatalf("call.event.v1 accepts what decodeCallEvent does not vouch for: %s", rec.Value)
		}
	})
}

// readsBack reports whether an encoded event is written again as the same
// bytes once read: not so when a string held invalid UTF-8, which the
// encoder wrote as \ufffd and which reads back as U+FFFD, written raw. The
// fast path leaves such a record to the schema.
func readsBack(value []byte) bool {
	var ev schemas.CallEvent
	if json.Unmarshal(value, &ev) != nil {
		return false
	}
	b, err := encodeBody(&ev)
	return err == nil && string(b) == string(value)
}

// BenchmarkDecodeCallEvent decodes one ended event as the dialer writes it,
// by the fast path and by schemas.Decode (the schema validator) and
// json.Unmarshal, the path it saves.
func BenchmarkDecodeCallEvent(b *testing.B) {
	rec := callEventRecord(benchEvent())
	b.Run("decodeCallEvent", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var call schemas.CallEvent
			if _, ok := decodeCallEvent(rec, &call); !ok {
				b.Fatal("not vouched for")
			}
		}
	})
	b.Run("schemas.Decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var call schemas.CallEvent
			ev, err := schemas.Decode(rec)
			if err != nil {
				b.Fatal(err)
			}
			if err := json.Unmarshal(ev.Data, &call); err != nil {
				b.Fatal(err)
			}
		}
	})
}
