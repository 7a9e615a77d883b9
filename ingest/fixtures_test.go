package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/callrecords"
	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/schemas"
)

// Fixtures: records as the pipeline writes them (requests as ingest does,
// lifecycle events as the dialer does, attempts as the notifier does), fed to
// the call state directly (unit tests) or produced to the broker (component
// tests).

// t0 is the fixtures' clock: requests at t0 and after, the store's "now" an
// hour later.
var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

type fixture struct {
	id, ws, agent, to, room, callback string
	at                                time.Time // requested_at
	vars                              map[string]string
	meta                              string
}

// demoCall is ws_demo's call number n, requested at at.
func demoCall(n int, at time.Time) fixture {
	return fixture{id: fmt.Sprintf("%024x", 0xca11000+n), ws: "ws_demo", agent: demoAgent, to: "+15550100001",
		room: demoAgent + fmt.Sprintf("-room%06d", n), callback: "https://example.com/hooks", at: at,
		vars: map[string]string{"firstName": "Ada"}, meta: `{"crm_id":"42"}`}
}

func (f fixture) requested() schemas.CallRequested {
	r := schemas.CallRequested{CallID: f.id, WorkspaceID: f.ws, To: f.to, CallAgentID: f.agent, RoomName: f.room,
		CallbackURL: f.callback, DynamicVariables: f.vars, RequestedAt: f.at}
	if f.meta != "" {
		r.Metadata = json.RawMessage(f.meta)
	}
	return r
}

func (f fixture) request(t testing.TB, partition int32, offset int64) *kgo.Record {
	t.Helper()
	r, err := schemas.NewRecord(schemas.TopicRequested, f.id, schemas.Meta{Type: schemas.TypeCallRequested, Source: EventSource, Subject: f.id}, f.requested())
	if err != nil {
		t.Fatal(err)
	}
	r.Partition, r.Offset = partition, offset
	return r
}

// event is the call's lifecycle event with sequence seq, as the dialer
// builds it (state.go: event, end).
func (f fixture) event(seq int, status schemas.Status, at time.Time) schemas.CallEvent {
	ra := f.at
	ev := schemas.CallEvent{CallID: f.id, WorkspaceID: f.ws, Sequence: seq, Status: status, OccurredAt: at,
		RequestedAt: &ra, To: f.to, CallAgentID: f.agent, RoomName: f.room, CallbackURL: f.callback}
	if f.meta != "" {
		ev.Metadata = json.RawMessage(f.meta)
	}
	return ev
}

func f64(v float64) *float64 { return &v }

// completed: answered after ringing 1s, talked 3s, the callee hung up.
func (f fixture) completed() []schemas.CallEvent {
	a := f.at
	end := f.event(5, schemas.StatusEnded, a.Add(5*time.Second))
	end.Outcome, end.EndedBy, end.Reason, end.DisconnectReason = schemas.OutcomeCompleted, schemas.EndedByCallee, "the callee left the call", "CLIENT_INITIATED"
	end.RingDurationSeconds, end.TalkDurationSeconds = f64(1), f64(3)
	return []schemas.CallEvent{
		f.event(1, schemas.StatusQueued, a.Add(10*time.Millisecond)),
		f.event(2, schemas.StatusDialing, a.Add(20*time.Millisecond)),
		f.event(3, schemas.StatusRinging, a.Add(time.Second)),
		f.event(4, schemas.StatusAnswered, a.Add(2*time.Second)),
		end,
	}
}

// busy: SIP 486 after ringing.
func (f fixture) busy() []schemas.CallEvent {
	a := f.at
	end := f.event(4, schemas.StatusEnded, a.Add(2*time.Second))
	end.Outcome, end.EndedBy, end.Reason = schemas.OutcomeBusy, schemas.EndedByCallee, "sip status 486: Busy Here"
	end.SIPStatusCode, end.SIPStatus, end.RingDurationSeconds = 486, "Busy Here", f64(1.5)
	return []schemas.CallEvent{
		f.event(1, schemas.StatusQueued, a.Add(10*time.Millisecond)),
		f.event(2, schemas.StatusDialing, a.Add(20*time.Millisecond)),
		f.event(3, schemas.StatusRinging, a.Add(500*time.Millisecond)),
		end,
	}
}

// dialing: queued, then dialing (a live call).
func (f fixture) dialing() []schemas.CallEvent {
	return []schemas.CallEvent{
		f.event(1, schemas.StatusQueued, f.at.Add(10*time.Millisecond)),
		f.event(2, schemas.StatusDialing, f.at.Add(20*time.Millisecond)),
	}
}

// eventRecord encodes ev as the dialer does.
func eventRecord(t testing.TB, ev schemas.CallEvent) *kgo.Record {
	t.Helper()
	r, err := schemas.NewRecord(schemas.TopicEvents, ev.CallID, schemas.Meta{
		ID: schemas.EventID(ev.CallID, ev.Sequence), Type: ev.Status.Type(), Source: "/dialstream/dialer",
		Subject: ev.CallID, Time: ev.OccurredAt,
	}, ev)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func eventRecords(t testing.TB, evs []schemas.CallEvent) []*kgo.Record {
	out := make([]*kgo.Record, len(evs))
	for i, ev := range evs {
		out[i] = eventRecord(t, ev)
	}
	return out
}

// attempt is a delivery attempt of the call's event seq, as the notifier
// logs it.
func (f fixture) attempt(seq int, status schemas.Status, n int, at time.Time, code int, errText string, res schemas.WebhookResult) schemas.WebhookAttempt {
	a := schemas.WebhookAttempt{EventID: schemas.EventID(f.id, seq), EventType: status.Type(), CallID: f.id, WorkspaceID: f.ws,
		Sequence: seq, Attempt: n, MaxAttempts: 8, URL: f.callback, AttemptedAt: at, DurationSeconds: 0.25,
		StatusCode: code, Error: errText, Result: res}
	if res == schemas.WebhookRetry {
		next := at.Add(5 * time.Second)
		a.NextAttemptAt = &next
	}
	return a
}

func attemptRecord(t testing.TB, a schemas.WebhookAttempt) *kgo.Record {
	t.Helper()
	r, err := schemas.NewRecord(schemas.TopicWebhookDeliveries, a.CallID, schemas.Meta{
		Type: schemas.TypeWebhookAttempt, Source: "/dialstream/notifier", Subject: a.CallID, Time: a.AttemptedAt}, a)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// feed writes records into the call records as the recorder does (one
// transaction per record), failing the test when one changes nothing.
func (e *testEnv) feed(t testing.TB, recs ...*kgo.Record) {
	t.Helper()
	for _, r := range recs {
		if !e.write(t, r) {
			t.Fatalf("record %s %s not taken", r.Topic, r.Key)
		}
	}
}

// write writes one record as the recorder does (recorder/apply.go; ingest
// does not import the recorder) and reports whether it changed anything.
func (e *testEnv) write(t testing.TB, r *kgo.Record) bool {
	t.Helper()
	ctx := context.Background()
	var changed bool
	err := e.st.Write(ctx, func(w *callrecords.Writer) error {
		var err error
		switch r.Topic {
		case schemas.TopicRequested:
			ev, derr := schemas.Decode(r)
			if derr != nil {
				t.Fatalf("fixture request: %v", derr)
			}
			if ev.Type == schemas.TypeCallCancel {
				var c schemas.CallCancel
				mustUnmarshal(t, ev.Data, &c)
				changed, err = w.PutCancel(ctx, &c, ev.Data)
				return err
			}
			var req schemas.CallRequested
			mustUnmarshal(t, ev.Data, &req)
			changed, err = w.PutRequest(ctx, &req, ev.Data, r.Partition, r.Offset, false)
		case schemas.TopicEvents:
			var ev schemas.CallEvent
			mustUnmarshal(t, r.Value, &ev)
			changed, err = w.PutEvent(ctx, &ev, kafkax.Header(r, schemas.HeaderID), r.Value, r.Headers)
		case schemas.TopicWebhookDeliveries:
			// An attempt is identified by its place in the deliveries
			// topic: fixtures that did not set one get the next.
			if r.Offset == 0 {
				r.Offset = e.attempts.Add(1)
			}
			var a schemas.WebhookAttempt
			mustUnmarshal(t, r.Value, &a)
			changed, err = w.PutAttempt(ctx, &a, r.Value, r.Partition, r.Offset)
		default:
			t.Fatalf("fixture on topic %s", r.Topic)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return changed
}

func mustUnmarshal(t testing.TB, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// clock fixes the call records' clock at now.
func (e *testEnv) clock(now time.Time) { e.now.Store(&now) }

func (e *testEnv) get(t testing.TB, path string) (int, string) {
	t.Helper()
	w := e.do(t, req{method: "GET", path: path})
	return w.Code, w.Body.String()
}
