package scheduler

import (
	"time"

	"github.com/dialstream/dialstream/internal/compliance"
	"github.com/dialstream/dialstream/schemas"
)

// Scheduled single calls: POST /v1/api/call with start_at, or deferred to
// the callee's calling hours. Each is its own small state machine, keyed by
// the call id, whose only output is the call's request (or its cancel) on
// the requested topic.

// applyScheduled takes a call.scheduled command; a second one for the same
// call id changes nothing.
func applyScheduled(st *schemas.ScheduledCallState, cmd schemas.CallScheduled) (*schemas.ScheduledCallState, bool) {
	if st != nil {
		return st, false
	}
	due := cmd.StartAt.UTC()
	return &schemas.ScheduledCallState{Kind: schemas.StateKindCall, Scheduled: cmd, Status: schemas.ScheduledCallWaiting,
		DueAt: &due, UpdatedAt: cmd.ScheduledAt.UTC()}, true
}

// cancelOutput is what a cancel of a scheduled call writes to the requested
// topic: the request itself, released already canceled, or the cancel,
// forwarded behind the request released earlier.
type cancelOutput struct {
	request *schemas.CallRequested
	cancel  *schemas.CallCancel
}

// applyScheduledCancel takes a call.cancel that ingest wrote for a call it
// scheduled. Before the release, the call is released at once with
// canceled_at, and the dialer ends it canceled without ringing: the call's
// history gets its ended event like any canceled call, and no later release
// can ring it. After the release, the cancel is forwarded to the requested
// topic: ingest's own copy may have reached the dialer before the request
// did, found no call, and been dropped. A second cancel, or one from another
// workspace, changes nothing.
func applyScheduledCancel(st *schemas.ScheduledCallState, c schemas.CallCancel) (cancelOutput, bool) {
	if st == nil || c.WorkspaceID != st.Scheduled.Request.WorkspaceID {
		return cancelOutput{}, false
	}
	at := c.RequestedAt.UTC()
	switch st.Status {
	case schemas.ScheduledCallWaiting:
		req := st.Scheduled.Request
		req.RequestedAt, req.CanceledAt = at, &at
		st.Status, st.ReleasedAt, st.DueAt, st.UpdatedAt = schemas.ScheduledCallCanceled, &at, nil, at
		return cancelOutput{request: &req}, true
	case schemas.ScheduledCallReleased:
		fwd := c
		return cancelOutput{cancel: &fwd}, true
	}
	return cancelOutput{}, false
}

// scheduledDue reports whether a scheduled call is to be released at now,
// and otherwise when to look again. With defer_to_calling_hours, a call whose
// callee is outside the workspace's calling hours at start_at moves to the
// next allowed instant (DueAt changes: the caller writes the state); when
// there is none, it is released anyway and the dialer ends it
// outside_calling_hours, which tells the client why.
func scheduledDue(st *schemas.ScheduledCallState, now time.Time, hours compliance.Hours) (release bool, next time.Time, moved bool) {
	if st.Status != schemas.ScheduledCallWaiting || st.DueAt == nil {
		return false, time.Time{}, false
	}
	if now.Before(*st.DueAt) {
		return false, *st.DueAt, false
	}
	if st.Scheduled.DeferToCallingHours {
		ok, at := hours.Allowed(st.Scheduled.Request.To, now)
		if !ok && !at.IsZero() {
			at = at.UTC()
			st.DueAt, st.UpdatedAt = &at, now.UTC()
			return false, at, true
		}
	}
	return true, time.Time{}, false
}

// releaseScheduled marks the call released and returns its request, as the
// client sent it but for requested_at: the release time, since the dialer
// refuses requests older than its memory of ended calls.
func releaseScheduled(st *schemas.ScheduledCallState, now time.Time) schemas.CallRequested {
	now = now.UTC()
	req := st.Scheduled.Request
	req.RequestedAt = now
	st.Status, st.ReleasedAt, st.DueAt, st.UpdatedAt = schemas.ScheduledCallReleased, &now, nil, now
	return req
}
