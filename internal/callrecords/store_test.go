package callrecords_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/callrecords"
	"github.com/dialstream/dialstream/internal/callrecords/dbtest"
	"github.com/dialstream/dialstream/schemas"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func callID(n int) string { return fmt.Sprintf("%024x", n) }

func request(id, ws string, at time.Time) (*schemas.CallRequested, []byte) {
	r := &schemas.CallRequested{CallID: id, WorkspaceID: ws, To: "+15550001234", CallAgentID: "agent_a",
		RoomName: "agent_a-abc", RequestedAt: at,
		Metadata: json.RawMessage(`{"z":1,  "a":{"y":[1,2]},"z2":"é"}`)}
	b, _ := json.Marshal(r)
	// The stored bytes are the record's, whatever they are: keep some
	// whitespace that a re-encoding would drop.
	return r, append(b, ' ', '\n')
}

func event(id, ws string, seq int, st schemas.Status, reqAt time.Time) (*schemas.CallEvent, []byte, []kgo.RecordHeader) {
	ev := &schemas.CallEvent{CallID: id, WorkspaceID: ws, Sequence: seq, Status: st,
		OccurredAt: reqAt.Add(time.Duration(seq) * time.Second), RequestedAt: &reqAt, To: "+15550001234", CallAgentID: "agent_a"}
	if st == schemas.StatusEnded {
		talk := 12.5
		ev.Outcome, ev.TalkDurationSeconds = schemas.OutcomeCompleted, &talk
	}
	b, _ := json.Marshal(ev)
	hs := []kgo.RecordHeader{{Key: "ce_id", Value: []byte(schemas.EventID(id, seq))}, {Key: "ce_type", Value: []byte(st.Type())},
		{Key: "bin", Value: []byte{0xff, 0x00, 0x01}}}
	return ev, b, hs
}

var lifecycle = []schemas.Status{schemas.StatusQueued, schemas.StatusDialing, schemas.StatusRinging, schemas.StatusAnswered, schemas.StatusEnded}

// putCall writes a call's request and its first n lifecycle events.
func putCall(t *testing.T, s *callrecords.Store, id, ws string, at time.Time, n int) {
	t.Helper()
	ctx := context.Background()
	err := s.Write(ctx, func(w *callrecords.Writer) error {
		r, data := request(id, ws, at)
		if _, err := w.PutRequest(ctx, r, data, 0, at.UnixNano()%1_000_000, false); err != nil {
			return err
		}
		for i := range n {
			ev, v, hs := event(id, ws, i+1, lifecycle[i], at)
			if _, err := w.PutEvent(ctx, ev, schemas.EventID(id, i+1), v, hs); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, s *callrecords.Store, ws, id string) *callrecords.Call {
	t.Helper()
	c, ok, err := s.Get(context.Background(), ws, id)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return nil
	}
	return c
}

func write(t *testing.T, s *callrecords.Store, fn func(ctx context.Context, w *callrecords.Writer) (bool, error)) bool {
	t.Helper()
	var changed bool
	ctx := context.Background()
	if err := s.Write(ctx, func(w *callrecords.Writer) error {
		var err error
		changed, err = fn(ctx, w)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return changed
}

// A call's request, events and attempts come back as written: the same
// bytes, the events in sequence order whatever order they came in, each
// once, the attempts in log order.
func TestRoundTrip(t *testing.T) {
	dbtest.ForEach(t, callrecords.Options{}, func(t *testing.T, s *callrecords.Store) {
		id, ws := callID(1), "ws_a"
		r, rdata := request(id, ws, t0)
		for _, seq := range []int{2, 1, 3, 5, 4, 3, 5} { // out of order, and replays
			ev, v, hs := event(id, ws, seq, lifecycle[seq-1], t0)
			write(t, s, func(ctx context.Context, w *callrecords.Writer) (bool, error) {
				return w.PutEvent(ctx, ev, schemas.EventID(id, seq), v, hs)
			})
		}
		if !write(t, s, func(ctx context.Context, w *callrecords.Writer) (bool, error) {
			return w.PutRequest(ctx, r, rdata, 3, 42, false)
		}) {
			t.Fatal("request not taken")
		}
		if write(t, s, func(ctx context.Context, w *callrecords.Writer) (bool, error) {
			return w.PutRequest(ctx, r, rdata, 3, 42, false)
		}) {
			t.Fatal("a replayed request changed the store")
		}
		for i, off := range []int64{7, 9, 7} {
			a := &schemas.WebhookAttempt{EventID: schemas.EventID(id, 1), CallID: id, WorkspaceID: ws, Sequence: 1,
				Attempt: i + 1, URL: "https://example.test/hook", AttemptedAt: t0.Add(time.Minute), Result: schemas.WebhookRetry}
			data, _ := json.Marshal(a)
			changed := write(t, s, func(ctx context.Context, w *callrecords.Writer) (bool, error) {
				return w.PutAttempt(ctx, a, data, 3, off)
			})
			if changed != (i < 2) {
				t.Fatalf("attempt at offset %d: changed=%v", off, changed)
			}
		}

		c := get(t, s, ws, id)
		if c == nil {
			t.Fatal("call not found")
		}
		if c.Request == nil || !bytes.Equal(c.Request.Data, rdata) || c.Request.Partition != 3 || c.Request.Offset != 42 || c.Request.Local {
			t.Fatalf("request = %+v", c.Request)
		}
		if c.Status != schemas.StatusEnded || c.Outcome != schemas.OutcomeCompleted || c.Agent != "agent_a" {
			t.Fatalf("summary = %s %s %s", c.Status, c.Outcome, c.Agent)
		}
		if c.Key != (callrecords.Key{At: t0.UnixNano(), ID: id}) {
			t.Fatalf("key = %+v", c.Key)
		}
		if len(c.Events) != 5 {
			t.Fatalf("%d events, want 5", len(c.Events))
		}
		for i, e := range c.Events {
			ev, v, hs := event(id, ws, i+1, lifecycle[i], t0)
			if e.Sequence != i+1 || e.ID != schemas.EventID(id, i+1) || e.Status != ev.Status || !bytes.Equal(e.Value, v) {
				t.Fatalf("event %d = %+v", i, e)
			}
			rec := e.Record(id)
			if rec.Topic != schemas.TopicEvents || string(rec.Key) != id || len(rec.Headers) != len(hs) {
				t.Fatalf("record = %+v", rec)
			}
			for j := range hs {
				if rec.Headers[j].Key != hs[j].Key || !bytes.Equal(rec.Headers[j].Value, hs[j].Value) {
					t.Fatalf("header %d = %+v, want %+v", j, rec.Headers[j], hs[j])
				}
			}
		}
		ds, ok, err := s.Deliveries(context.Background(), ws, id)
		if err != nil || !ok {
			t.Fatal(ok, err)
		}
		if len(ds) != 2 || ds[0].Offset != 7 || ds[1].Offset != 9 {
			t.Fatalf("deliveries = %+v", ds)
		}
	})
}

// A call is one workspace's: records naming its id from another workspace
// change nothing, and every read from another workspace finds nothing.
func TestWorkspaceIsolation(t *testing.T) {
	dbtest.ForEach(t, callrecords.Options{}, func(t *testing.T, s *callrecords.Store) {
		id := callID(2)
		putCall(t, s, id, "ws_a", t0, 2)
		r, data := request(id, "ws_b", t0.Add(-time.Hour))
		ev, v, hs := event(id, "ws_b", 3, schemas.StatusRinging, t0)
		a := &schemas.WebhookAttempt{EventID: "x", CallID: id, WorkspaceID: "ws_b", AttemptedAt: t0, Result: schemas.WebhookSuccess}
		ad, _ := json.Marshal(a)
		cc := &schemas.CallCancel{CallID: id, WorkspaceID: "ws_b", RequestedAt: t0}
		for what, fn := range map[string]func(ctx context.Context, w *callrecords.Writer) (bool, error){
			"request": func(ctx context.Context, w *callrecords.Writer) (bool, error) {
				return w.PutRequest(ctx, r, data, 0, 1, false)
			},
			"event":   func(ctx context.Context, w *callrecords.Writer) (bool, error) { return w.PutEvent(ctx, ev, "x", v, hs) },
			"attempt": func(ctx context.Context, w *callrecords.Writer) (bool, error) { return w.PutAttempt(ctx, a, ad, 0, 5) },
			"cancel": func(ctx context.Context, w *callrecords.Writer) (bool, error) {
				return w.PutCancel(ctx, cc, []byte(`{}`))
			},
		} {
			if write(t, s, fn) {
				t.Errorf("a %s of another workspace changed the call", what)
			}
		}
		c := get(t, s, "ws_a", id)
		if c == nil || len(c.Events) != 2 || c.Cancel != nil || c.Key.At != t0.UnixNano() {
			t.Fatalf("call after foreign records = %+v", c)
		}
		if get(t, s, "ws_b", id) != nil {
			t.Fatal("ws_b sees ws_a's call")
		}
		if _, ok, _ := s.Deliveries(context.Background(), "ws_b", id); ok {
			t.Fatal("ws_b sees ws_a's deliveries")
		}
		calls, _, err := s.List(context.Background(), "ws_b", callrecords.Filter{}, 10)
		if err != nil || len(calls) != 0 {
			t.Fatalf("ws_b lists %d calls (%v)", len(calls), err)
		}
		var n int
		if err := s.Export(context.Background(), "ws_b", time.Time{}, time.Time{}, func(*callrecords.Call) error { n++; return nil }); err != nil || n != 0 {
			t.Fatalf("ws_b exports %d calls (%v)", n, err)
		}
		if n, err := s.PurgeWorkspace(context.Background(), "ws_b", 10); err != nil || n != 0 {
			t.Fatalf("purging ws_b deleted %d calls (%v)", n, err)
		}
		if get(t, s, "ws_a", id) == nil {
			t.Fatal("purging ws_b deleted ws_a's call")
		}
	})
}

// The request the dialer acts on is the first in its partition: a later
// copy changes nothing, an earlier one replaces it, and a replica's own
// write gives way to the same record read back. The list key follows the
// rank: a guess from an attempt, then the request, then the dialer's.
func TestRequestAndKeyRules(t *testing.T) {
	dbtest.ForEach(t, callrecords.Options{}, func(t *testing.T, s *callrecords.Store) {
		id, ws := callID(3), "ws_a"
		a := &schemas.WebhookAttempt{EventID: "e", CallID: id, WorkspaceID: ws, AttemptedAt: t0.Add(time.Hour), Result: schemas.WebhookSuccess}
		ad, _ := json.Marshal(a)
		write(t, s, func(ctx context.Context, w *callrecords.Writer) (bool, error) { return w.PutAttempt(ctx, a, ad, 1, 1) })
		if get(t, s, ws, id) != nil {
			t.Fatal("a call known only from a delivery attempt is visible")
		}
		if _, ok, _ := s.Deliveries(context.Background(), ws, id); ok {
			t.Fatal("deliveries of an invisible call")
		}

		r, data := request(id, ws, t0)
		steps := []struct {
			part    int32
			off     int64
			local   bool
			changed bool
		}{
			{1, 10, true, true},   // the replica's own acknowledgement
			{1, 10, false, true},  // the same record read back
			{1, 10, true, false},  // its acknowledgement again: read back wins
			{1, 12, false, false}, // a later duplicate
			{2, 3, false, false},  // another partition
			{1, 8, false, true},   // an earlier one in the same partition
		}
		for i, st := range steps {
			got := write(t, s, func(ctx context.Context, w *callrecords.Writer) (bool, error) {
				return w.PutRequest(ctx, r, data, st.part, st.off, st.local)
			})
			if got != st.changed {
				t.Fatalf("step %d: changed=%v, want %v", i, got, st.changed)
			}
		}
		c := get(t, s, ws, id)
		if c.Request.Partition != 1 || c.Request.Offset != 8 || c.Request.Local {
			t.Fatalf("request = %+v", c.Request)
		}
		if c.Key.At != t0.UnixNano() || c.Status != schemas.StatusQueued {
			t.Fatalf("key %d status %s", c.Key.At, c.Status)
		}
		dialerAt := t0.Add(time.Second)
		ev, v, hs := event(id, ws, 1, schemas.StatusQueued, dialerAt)
		write(t, s, func(ctx context.Context, w *callrecords.Writer) (bool, error) { return w.PutEvent(ctx, ev, "q", v, hs) })
		if c := get(t, s, ws, id); c.Key.At != dialerAt.UnixNano() {
			t.Fatalf("key after the dialer's event = %d, want its requested_at %d", c.Key.At, dialerAt.UnixNano())
		}
		// A lower rank never moves it back.
		r2, data2 := request(id, ws, t0.Add(-time.Hour))
		write(t, s, func(ctx context.Context, w *callrecords.Writer) (bool, error) {
			return w.PutRequest(ctx, r2, data2, 1, 2, false)
		})
		if c := get(t, s, ws, id); c.Key.At != dialerAt.UnixNano() {
			t.Fatalf("key moved back to %d", c.Key.At)
		}

		cc := &schemas.CallCancel{CallID: id, WorkspaceID: ws, RequestedAt: t0}
		for i, want := range []bool{true, false} {
			got, err := s.PutCancel(context.Background(), cc, []byte(fmt.Sprintf(`{"n":%d}`, i)))
			if err != nil || got != want {
				t.Fatalf("cancel %d: changed=%v err=%v", i, got, err)
			}
		}
		if c := get(t, s, ws, id); string(c.Cancel) != `{"n":0}` {
			t.Fatalf("cancel = %s, want the first", c.Cancel)
		}
	})
}

// The list: newest first, every filter, and a cursor that pages through
// all matching calls once each, even while new calls arrive.
func TestListFiltersAndCursor(t *testing.T) {
	dbtest.ForEach(t, callrecords.Options{}, func(t *testing.T, s *callrecords.Store) {
		ctx := context.Background()
		type want struct {
			key     callrecords.Key
			status  schemas.Status
			outcome schemas.Outcome
			agent   string
		}
		var all []want
		for i := range 60 {
			id, at := callID(100+i), t0.Add(time.Duration(i%20)*time.Minute) // equal times: the id breaks ties
			n := i%5 + 1
			putCall(t, s, id, "ws_a", at, n)
			agent := "agent_a"
			if i%3 == 0 {
				agent = "agent_b"
				write(t, s, func(ctx context.Context, w *callrecords.Writer) (bool, error) {
					r, d := request(id, "ws_a", at)
					r.CallAgentID = agent
					return w.PutRequest(ctx, r, d, 0, 0, false) // earlier offset: replaces, but the agent stays the first seen
				})
				agent = "agent_a"
			}
			w := want{key: callrecords.Key{At: at.UnixNano(), ID: id}, status: lifecycle[n-1], agent: agent}
			if n == 5 {
				w.outcome = schemas.OutcomeCompleted
			}
			all = append(all, w)
			putCall(t, s, callID(500+i), "ws_other", at, n)
		}
		slices.SortFunc(all, func(a, b want) int {
			if b.key.Less(a.key) {
				return -1
			}
			return 1
		})
		var arrived []want
		from, to := t0.Add(5*time.Minute), t0.Add(15*time.Minute)
		filters := []callrecords.Filter{
			{}, {Status: schemas.StatusEnded}, {Status: schemas.StatusRinging}, {Outcome: schemas.OutcomeCompleted},
			{Outcome: schemas.OutcomeBusy}, {Agent: "agent_a"}, {Agent: "nobody"}, {From: from}, {To: to}, {From: from, To: to},
			{Status: schemas.StatusQueued, From: from},
		}
		for _, f := range filters {
			var expect []callrecords.Key
			for _, w := range all {
				if (f.Status == "" || w.status == f.Status) && (f.Outcome == "" || w.outcome == f.Outcome) &&
					(f.Agent == "" || w.agent == f.Agent) && (f.From.IsZero() || w.key.At >= f.From.UnixNano()) &&
					(f.To.IsZero() || w.key.At < f.To.UnixNano()) {
					expect = append(expect, w.key)
				}
			}
			var got []callrecords.Key
			cur := f
			for pages := 0; ; pages++ {
				if pages > 100 {
					t.Fatal("the cursor does not end")
				}
				calls, next, err := s.List(ctx, "ws_a", cur, 7)
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range calls {
					got = append(got, c.Key)
					if len(c.Events) != int(slices.Index(lifecycle, c.Status))+1 {
						t.Fatalf("call %s: %d events with status %s", c.ID, len(c.Events), c.Status)
					}
				}
				if next == nil {
					break
				}
				if pages == 0 { // a call arriving mid-paging, newer than the cursor, does not show
					id := callID(900 + len(all))
					putCall(t, s, id, "ws_a", t0.Add(24*time.Hour), 5)
					arrived = append(arrived, want{key: callrecords.Key{At: t0.Add(24 * time.Hour).UnixNano(), ID: id},
						status: schemas.StatusEnded, outcome: schemas.OutcomeCompleted, agent: "agent_a"})
				}
				cur.After = next
			}
			if !slices.Equal(got, expect) {
				t.Fatalf("filter %+v:\n got %v\nwant %v", f, got, expect)
			}
			all = append(arrived, all...) // newest, so first
			arrived = nil
		}
	})
}

// The recorder's offsets: first stored, then advanced from where the
// writer believed they were; any other value rolls back the rows written
// with it.
func TestOffsetsFenceTheWriter(t *testing.T) {
	dbtest.ForEach(t, callrecords.Options{}, func(t *testing.T, s *callrecords.Store) {
		ctx := context.Background()
		id := callID(7)
		write := func(from, next int64) error {
			return s.Write(ctx, func(w *callrecords.Writer) error {
				r, d := request(id, "ws_a", t0)
				if _, err := w.PutRequest(ctx, r, d, 0, next-1, false); err != nil {
					return err
				}
				return w.Advance(ctx, "g", schemas.TopicRequested, 0, from, next)
			})
		}
		if err := write(callrecords.NoOffset, 5); err != nil {
			t.Fatal(err)
		}
		if err := write(callrecords.NoOffset, 9); !errors.Is(err, callrecords.ErrOffsetMoved) {
			t.Fatalf("second first write: %v, want ErrOffsetMoved", err)
		}
		if err := write(3, 9); !errors.Is(err, callrecords.ErrOffsetMoved) {
			t.Fatalf("stale write: %v, want ErrOffsetMoved", err)
		}
		if c := get(t, s, "ws_a", id); c.Request.Offset != 4 {
			t.Fatalf("a fenced write's row was kept: request offset %d", c.Request.Offset)
		}
		if err := write(5, 9); err != nil {
			t.Fatal(err)
		}
		offs, err := s.Offsets(ctx, "g")
		if err != nil || offs[schemas.TopicRequested][0] != 9 || len(offs) != 1 {
			t.Fatalf("offsets = %v (%v)", offs, err)
		}
		if offs, _ := s.Offsets(ctx, "other"); len(offs) != 0 {
			t.Fatalf("another group's offsets = %v", offs)
		}
	})
}

// RequestsAt names the offsets of a partition whose request record the
// calls hold: not a call known only from its events, not another
// partition's, not outside the range.
func TestRequestsAt(t *testing.T) {
	dbtest.ForEach(t, callrecords.Options{}, func(t *testing.T, s *callrecords.Store) {
		ctx := context.Background()
		if err := s.Write(ctx, func(w *callrecords.Writer) error {
			r, d := request(callID(1), "ws_a", t0)
			if _, err := w.PutRequest(ctx, r, d, 0, 1, false); err != nil {
				return err
			}
			r, d = request(callID(2), "ws_a", t0)
			if _, err := w.PutRequest(ctx, r, d, 1, 5, true); err != nil { // ingest's own write counts too
				return err
			}
			for i := range 600 {
				r, d := request(callID(1000+i), "ws_a", t0)
				if _, err := w.PutRequest(ctx, r, d, 2, int64(100+i), false); err != nil {
					return err
				}
			}
			ev, b, hs := event(callID(3), "ws_a", 1, schemas.StatusQueued, t0)
			_, err := w.PutEvent(ctx, ev, schemas.EventID(callID(3), 1), b, hs)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			partition int32
			from, to  int64
			want      []int64
		}{
			{0, 0, 10, []int64{1}},
			{0, 2, 10, nil},
			{1, 0, 4, nil},
			{1, 5, 5, []int64{5}},
			{2, 150, 160, []int64{150, 151, 152, 153, 154, 155, 156, 157, 158, 159, 160}},
			{2, 690, 9000, []int64{690, 691, 692, 693, 694, 695, 696, 697, 698, 699}},
			{3, 0, 1 << 40, nil},
		} {
			got, err := s.RequestsAt(ctx, c.partition, c.from, c.to)
			if err != nil {
				t.Fatal(err)
			}
			var offs []int64
			for o := range got {
				offs = append(offs, o)
			}
			slices.Sort(offs)
			if !slices.Equal(offs, c.want) {
				t.Fatalf("RequestsAt(%d, %d, %d) = %v, want %v", c.partition, c.from, c.to, offs, c.want)
			}
		}
	})
}

// Retention: calls requested before the bound go with their events and
// attempts, in batches; newer ones stay whole; and a record of a call past
// the retention does not bring it back.
func TestRetention(t *testing.T) {
	var now time.Time
	opts := callrecords.Options{Retention: 400 * 24 * time.Hour, Now: func() time.Time { return now }}
	dbtest.ForEach(t, opts, func(t *testing.T, s *callrecords.Store) {
		ctx := context.Background()
		now = t0.Add(400 * 24 * time.Hour)
		for i := range 25 {
			putCall(t, s, callID(i), "ws_a", t0.Add(time.Duration(i)*time.Minute), 5) // within the retention when written
		}
		for i := range 5 {
			putCall(t, s, callID(100+i), "ws_a", now.Add(-time.Hour), 5)
		}
		now = now.Add(12 * time.Minute) // calls 0..11 are now past it
		n, err := s.DeleteRequestedBefore(ctx, now.Add(-opts.Retention), 5)
		if err != nil || n != 12 {
			t.Fatalf("deleted %d (%v), want 12", n, err)
		}
		for i := range 25 {
			if c := get(t, s, "ws_a", callID(i)); (c == nil) != (i < 12) || (c != nil && len(c.Events) != 5) {
				t.Fatalf("call %d after the delete: %+v", i, c)
			}
		}
		for i := range 5 {
			if c := get(t, s, "ws_a", callID(100+i)); c == nil || len(c.Events) != 5 {
				t.Fatalf("new call %d touched: %+v", i, c)
			}
		}
		var orphans int
		if err := s.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM call_events WHERE call_id NOT IN (SELECT call_id FROM calls)`).Scan(&orphans); err != nil || orphans != 0 {
			t.Fatalf("%d events left of deleted calls (%v)", orphans, err)
		}
		// A replay of a deleted call's records takes nothing in.
		putCall(t, s, callID(0), "ws_a", t0, 5)
		if get(t, s, "ws_a", callID(0)) != nil {
			t.Fatal("a replay past the retention brought a deleted call back")
		}

		n, err = s.PurgeWorkspace(ctx, "ws_a", 4)
		if err != nil || n != 18 {
			t.Fatalf("purged %d (%v), want 18", n, err)
		}
		calls, _, _ := s.List(ctx, "ws_a", callrecords.Filter{}, 100)
		if len(calls) != 0 {
			t.Fatalf("%d calls left after the purge", len(calls))
		}
	})
}

// The export streams a time range oldest first, across its batches.
func TestExport(t *testing.T) {
	dbtest.ForEach(t, callrecords.Options{}, func(t *testing.T, s *callrecords.Store) {
		ctx := context.Background()
		const n = callrecords.ExportBatch*2 + 37
		err := s.Write(ctx, func(w *callrecords.Writer) error {
			for i := range n {
				id := callID(i)
				r, d := request(id, "ws_a", t0.Add(time.Duration(i/2)*time.Second))
				if _, err := w.PutRequest(ctx, r, d, 0, int64(i), false); err != nil {
					return err
				}
				ev, v, hs := event(id, "ws_a", 1, schemas.StatusQueued, r.RequestedAt)
				if _, err := w.PutEvent(ctx, ev, "q", v, hs); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		from, to := t0.Add(10*time.Second), t0.Add(time.Duration(n/2-3)*time.Second)
		var got []callrecords.Key
		err = s.Export(ctx, "ws_a", from, to, func(c *callrecords.Call) error {
			if len(c.Events) != 1 {
				return fmt.Errorf("call %s has %d events", c.ID, len(c.Events))
			}
			got = append(got, c.Key)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		want := (n/2 - 3 - 10) * 2
		if len(got) != want || got[0].At != from.UnixNano() || !slices.IsSortedFunc(got, func(a, b callrecords.Key) int {
			if a.Less(b) {
				return -1
			}
			return 1
		}) {
			t.Fatalf("exported %d calls, want %d, oldest first from %v", len(got), want, from)
		}
		stop := errors.New("stop")
		var seen int
		if err := s.Export(ctx, "ws_a", time.Time{}, time.Time{}, func(*callrecords.Call) error { seen++; return stop }); !errors.Is(err, stop) || seen != 1 {
			t.Fatalf("export did not stop at fn's error: %v after %d", err, seen)
		}
	})
}

// Writers of several processes at once (recorder batches, ingest's own
// requests) neither fail nor lose a row.
func TestConcurrentWriters(t *testing.T) {
	dbtest.ForEach(t, callrecords.Options{}, func(t *testing.T, s *callrecords.Store) {
		ctx := context.Background()
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for g := range 4 {
			wg.Add(2)
			go func() { // a recorder: batches of events
				defer wg.Done()
				for b := range 10 {
					errs <- s.Write(ctx, func(w *callrecords.Writer) error {
						for i := range 10 {
							id := callID(g*1000 + b*10 + i)
							for seq := 1; seq <= 5; seq++ {
								ev, v, hs := event(id, "ws_a", seq, lifecycle[seq-1], t0)
								if _, err := w.PutEvent(ctx, ev, schemas.EventID(id, seq), v, hs); err != nil {
									return err
								}
							}
						}
						return nil
					})
				}
			}()
			go func() { // an ingest replica: its own requests, the same calls
				defer wg.Done()
				for i := range 100 {
					id := callID(g*1000 + i)
					r, d := request(id, "ws_a", t0)
					if _, err := s.PutRequest(ctx, r, d, 0, int64(i), true); err != nil {
						errs <- err
					}
				}
			}()
		}
		go func() { wg.Wait(); close(errs) }()
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		for g := range 4 {
			for i := range 100 {
				c := get(t, s, "ws_a", callID(g*1000+i))
				if c == nil || len(c.Events) != 5 || c.Request == nil || c.Status != schemas.StatusEnded {
					t.Fatalf("call %d/%d = %+v", g, i, c)
				}
			}
		}
	})
}

// DATABASE_URL forms.
func TestOpenURLs(t *testing.T) {
	ctx := context.Background()
	for _, bad := range []string{"", "mysql://x", "sqlite://", "sqlite://:memory:", "sqlite://a.db?x=1", "postgres://u:secret@%zz/db"} {
		_, err := callrecords.Open(ctx, bad, callrecords.Options{})
		if err == nil {
			t.Errorf("Open(%q) succeeded", bad)
		} else if bytes.Contains([]byte(err.Error()), []byte("secret")) {
			t.Errorf("Open(%q) error shows the password: %v", bad, err)
		}
	}
	dir := t.TempDir()
	s, err := callrecords.Open(ctx, "sqlite://"+dir+"/nested/dir/records.db", callrecords.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	// Opening again migrates nothing and keeps what is there.
	s, err = callrecords.Open(ctx, "sqlite://"+dir+"/nested/dir/records.db", callrecords.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
}

// Text that PostgreSQL refuses (NUL, invalid UTF-8), from a record or a
// request path, neither fails a write (which would fail its whole batch at
// every retry) nor a read.
func TestHostileText(t *testing.T) {
	dbtest.ForEach(t, callrecords.Options{}, func(t *testing.T, s *callrecords.Store) {
		ctx := context.Background()
		id := callID(9)
		ev, v, hs := event(id, "ws_a", 1, schemas.StatusQueued, t0)
		ev.CallAgentID, ev.To = "a\x00b", "\xff\xfe"
		if !write(t, s, func(ctx context.Context, w *callrecords.Writer) (bool, error) {
			return w.PutEvent(ctx, ev, "id\x00\xff", v, hs)
		}) {
			t.Fatal("event not taken")
		}
		c := get(t, s, "ws_a", id)
		if c == nil || len(c.Events) != 1 || !bytes.Equal(c.Events[0].Headers[2].Value, []byte{0xff, 0x00, 0x01}) {
			t.Fatalf("call = %+v", c)
		}
		for _, bad := range []string{"\x00", "\xff", id + "\x00"} {
			if _, ok, err := s.Get(ctx, "ws_a", bad); ok || err != nil {
				t.Fatalf("Get(%q) = %v, %v", bad, ok, err)
			}
			if _, ok, err := s.Deliveries(ctx, bad, id); ok || err != nil {
				t.Fatalf("Deliveries(%q) = %v, %v", bad, ok, err)
			}
			if _, _, err := s.List(ctx, bad, callrecords.Filter{Agent: bad, After: &callrecords.Key{ID: bad}}, 5); err != nil {
				t.Fatalf("List(%q): %v", bad, err)
			}
		}
	})
}
