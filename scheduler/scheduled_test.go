package scheduler

import (
	"testing"
	"time"

	"github.com/dialstream/dialstream/internal/compliance"
	"github.com/dialstream/dialstream/schemas"
)

func scheduledCmd(startAt time.Time, deferHours bool) schemas.CallScheduled {
	return schemas.CallScheduled{
		Request: schemas.CallRequested{CallID: "f9e8d7c6b5a4f3e2d1c0b9a8", WorkspaceID: "ws_a", To: "+12025550123",
			CallAgentID: "agent_a", Metadata: []byte(`{"order":7}`), RequestedAt: t0},
		StartAt: startAt, DeferToCallingHours: deferHours, ScheduledAt: t0,
	}
}

func mustValidCall(t *testing.T, st *schemas.ScheduledCallState) {
	t.Helper()
	if _, err := schemas.ValidateValue(schemas.SchemaSchedulerState, st); err != nil {
		t.Fatalf("call state: %v", err)
	}
}

// A call for 14:00 is not released at 13:59 and is at 14:00, unchanged but
// for requested_at; a replayed call.scheduled changes nothing.
func TestScheduledCallReleasedAtStartAt(t *testing.T) {
	start := t0.Add(5 * time.Hour)
	st, ok := applyScheduled(nil, scheduledCmd(start, false))
	mustValidCall(t, st)
	if !ok || st.Status != schemas.ScheduledCallWaiting {
		t.Fatalf("%+v", st)
	}
	if _, again := applyScheduled(st, scheduledCmd(start.Add(time.Hour), false)); again || !st.DueAt.Equal(start) {
		t.Fatal("a replayed call.scheduled changed the call")
	}
	if rel, next, _ := scheduledDue(st, start.Add(-time.Minute), compliance.DefaultHours()); rel || !next.Equal(start) {
		t.Fatalf("before start_at: release %v next %s", rel, next)
	}
	rel, _, _ := scheduledDue(st, start, compliance.DefaultHours())
	if !rel {
		t.Fatal("not released at start_at")
	}
	req := releaseScheduled(st, start)
	mustValidCall(t, st)
	if req.CallID != st.Scheduled.Request.CallID || string(req.Metadata) != `{"order":7}` || !req.RequestedAt.Equal(start) || req.CanceledAt != nil {
		t.Fatalf("request %+v", req)
	}
	if rel, _, _ := scheduledDue(st, start.Add(time.Hour), compliance.DefaultHours()); rel {
		t.Fatal("released twice")
	}
}

// Deferred to calling hours: due at 06:00 in Washington, the call moves to
// 08:00 there; without the deferral it goes at 06:00 and the dialer refuses
// it with the reason.
func TestScheduledCallDeferredToCallingHours(t *testing.T) {
	dc, _ := time.LoadLocation("America/New_York")
	start := time.Date(2026, 12, 9, 6, 0, 0, 0, dc)
	st, _ := applyScheduled(nil, scheduledCmd(start, true))
	rel, next, moved := scheduledDue(st, start, compliance.DefaultHours())
	if want := time.Date(2026, 12, 9, 8, 0, 0, 0, dc); rel || !moved || !next.Equal(want) || !st.DueAt.Equal(want) {
		t.Fatalf("release %v moved %v next %s, want %s", rel, moved, next, want)
	}
	mustValidCall(t, st)
	if rel, _, _ := scheduledDue(st, next, compliance.DefaultHours()); !rel {
		t.Fatal("not released when the hours opened")
	}
	plain, _ := applyScheduled(nil, scheduledCmd(start, false))
	if rel, _, _ := scheduledDue(plain, start, compliance.DefaultHours()); !rel {
		t.Fatal("a call without deferral was held")
	}
}

// A cancel before the release releases the call canceled (the dialer ends
// it without ringing) and nothing is released later; a cancel after the
// release is forwarded behind it; another workspace's cancel, or a second
// one, changes nothing.
func TestScheduledCallCanceled(t *testing.T) {
	start := t0.Add(5 * time.Hour)
	cancel := schemas.CallCancel{CallID: "f9e8d7c6b5a4f3e2d1c0b9a8", WorkspaceID: "ws_a", RequestedAt: t0.Add(time.Hour)}

	st, _ := applyScheduled(nil, scheduledCmd(start, false))
	other := cancel
	other.WorkspaceID = "ws_b"
	if _, ok := applyScheduledCancel(st, other); ok || st.Status != schemas.ScheduledCallWaiting {
		t.Fatal("another workspace canceled the call")
	}
	out, ok := applyScheduledCancel(st, cancel)
	mustValidCall(t, st)
	if !ok || out.request == nil || out.request.CanceledAt == nil || !out.request.CanceledAt.Equal(cancel.RequestedAt) || out.cancel != nil {
		t.Fatalf("cancel before release: %+v", out)
	}
	if _, err := schemas.ValidateValue(schemas.SchemaCallRequested, *out.request); err != nil {
		t.Fatal(err)
	}
	if rel, _, _ := scheduledDue(st, start, compliance.DefaultHours()); rel {
		t.Fatal("a canceled call was released at its time")
	}
	if _, ok := applyScheduledCancel(st, cancel); ok {
		t.Fatal("a second cancel changed the call")
	}

	st, _ = applyScheduled(nil, scheduledCmd(start, false))
	releaseScheduled(st, start)
	out, ok = applyScheduledCancel(st, cancel)
	if !ok || out.cancel == nil || out.request != nil || out.cancel.CallID != cancel.CallID {
		t.Fatalf("cancel after release: %+v", out)
	}
}
