package dialer

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/dialstream/dialstream/internal/registry"
	"github.com/dialstream/dialstream/schemas"
)

// The call state machine. apply is a pure function of (state, command): every
// time it reads comes from the command (its record timestamp or its data),
// never from the clock. That is what makes a replay safe: after a crash
// between writing a transition's events and its state, the next owner applies
// the same command to the same state and writes the same events, with the
// same sequence numbers and the same CloudEvent ids.

type inputKind uint8

const (
	inRequested inputKind = iota + 1
	inRejected
	inCancel
	inDialResult
	inLiveKit
	inDecision
	inReport
)

// input is one decoded command for one call.
type input struct {
	kind   inputKind
	offset int64
	at     time.Time // the record's timestamp
	callID string
	// maxAge is how old (record time minus requested_at) a call request may
	// be and still be dialed: the dialer remembers ended calls only that long
	// (DIALER_ENDED_RETENTION), so an older request could be a late duplicate
	// of a call it has forgotten. Zero disables the check.
	maxAge time.Duration

	req    *schemas.CallRequested
	agent  *registry.Agent
	rej    *rejection
	cancel *schemas.CallCancel
	dial   *dialResult
	lk     *livekitEvent
	dec    *decision
	report *schemas.AgentReportReceived
	// reportWindow is how long after its end a call takes agent reports
	// (DIALER_AGENT_REPORT_WINDOW).
	reportWindow time.Duration
}

// rejection describes a record that cannot become a call.
type rejection struct {
	class       string // bounded: see rejectClasses
	reason      string
	fields      []schemas.FieldError
	workspaceID string
	callbackURL string
	metadata    json.RawMessage
}

// effect is work a transition asks for once it is durable.
type effect uint8

const (
	// effDial places the call through LiveKit.
	effDial effect = 1 << iota
	// effHangup stops a dial in progress in this process and deletes the
	// call's room, which disconnects the callee and the agent.
	effHangup
	// effTransfer asks LiveKit to move the callee to the state's TransferTo
	// (a SIP REFER); the outcome comes back as a decision.
	effTransfer
	// effOptOut puts the callee's number on the workspace's do-not-call
	// list: the agent reported that the callee asked not to be called.
	effOptOut
)

// ignoreReason says why a command changed nothing (a bounded metric label).
type ignoreReason string

const (
	ignoreReplay         ignoreReason = "replay"
	ignoreDuplicate      ignoreReason = "duplicate_request"
	ignoreUnknownCall    ignoreReason = "unknown_call"
	ignoreWrongWorkspace ignoreReason = "wrong_workspace"
	ignoreAfterEnd       ignoreReason = "after_end"
	ignoreStale          ignoreReason = "stale"
	ignoreNotCallee      ignoreReason = "not_callee"
	ignoreReportReplay   ignoreReason = "report_replay"
	ignoreTooManyReports ignoreReason = "too_many_reports"
)

var ignoreReasons = []ignoreReason{ignoreReplay, ignoreDuplicate, ignoreUnknownCall, ignoreWrongWorkspace,
	ignoreAfterEnd, ignoreStale, ignoreNotCallee, ignoreReportReplay, ignoreTooManyReports}

type transition struct {
	next    *callState // nil when nothing changed
	events  []schemas.CallEvent
	effects effect
	ignored ignoreReason
}

func apply(st *callState, in input) transition {
	if st != nil && in.offset <= st.AppliedOffset {
		return transition{ignored: ignoreReplay}
	}
	switch in.kind {
	case inRequested:
		return applyRequested(st, in)
	case inRejected:
		return applyRejected(st, in)
	case inCancel:
		return applyCancel(st, in)
	case inDecision:
		return applyDecision(st, in)
	case inDialResult:
		return applyDialResult(st, in)
	case inLiveKit:
		return applyLiveKit(st, in)
	case inReport:
		return applyReport(st, in)
	}
	return transition{ignored: ignoreStale}
}

func applyRequested(st *callState, in input) transition {
	if st != nil {
		return transition{ignored: ignoreDuplicate}
	}
	r := in.req
	room := r.RoomName
	if room == "" {
		room = roomNameFor(r.CallAgentID, r.CallID)
	}
	next := &callState{
		CallID: r.CallID, WorkspaceID: r.WorkspaceID, Phase: schemas.StatusQueued, Sequence: 1,
		AppliedOffset: in.offset, To: r.To, CallAgentID: r.CallAgentID, RoomName: room,
		CallbackURL: r.CallbackURL, Metadata: r.Metadata, DynamicVariables: r.DynamicVariables,
		RequestedAt: r.RequestedAt, Agent: snapshotAgent(in.agent), QueuedAt: in.at, Campaign: r.Campaign,
	}
	if r.CanceledAt != nil {
		// The scheduler released a scheduled call that was canceled before
		// its time: it ends canceled, never rung, as its first event.
		next.Sequence = 0
		ev := next.end(in.at, schemas.OutcomeCanceled, schemas.EndedByClient, "canceled before its scheduled time")
		return transition{next: next, events: []schemas.CallEvent{ev}}
	}
	if in.maxAge > 0 && in.at.Sub(r.RequestedAt) > in.maxAge {
		// Never dial what may be a late duplicate of a forgotten call. The
		// call goes straight to ended, which is its first event.
		next.Sequence = 0
		ev := next.end(in.at, schemas.OutcomeExpired, schemas.EndedBySystem, fmt.Sprintf(
			"requested_at is more than %s before the dialer read the request; it may duplicate a call already placed, so it is not dialed", in.maxAge))
		return transition{next: next, events: []schemas.CallEvent{ev}}
	}
	return transition{next: next, events: []schemas.CallEvent{next.event(schemas.StatusQueued, in.at)}}
}

func applyRejected(st *callState, in input) transition {
	if st != nil {
		// The id belongs to a call we know: the bad record must not touch it.
		return transition{ignored: ignoreDuplicate}
	}
	rj := in.rej
	next := &callState{
		CallID: in.callID, WorkspaceID: rj.workspaceID, AppliedOffset: in.offset,
		CallbackURL: rj.callbackURL, Metadata: rj.metadata,
	}
	ev := next.end(in.at, schemas.OutcomeRejected, schemas.EndedByDialer, rj.reason)
	ev.Errors = rj.fields
	return transition{next: next, events: []schemas.CallEvent{ev}}
}

func applyCancel(st *callState, in input) transition {
	switch {
	case st == nil:
		return transition{ignored: ignoreUnknownCall}
	case in.cancel.WorkspaceID != st.WorkspaceID:
		return transition{ignored: ignoreWrongWorkspace}
	case st.Phase == schemas.StatusEnded:
		return transition{ignored: ignoreAfterEnd}
	}
	next := st.clone()
	next.AppliedOffset = in.offset
	var eff effect
	if st.live() {
		eff = effHangup
	}
	reason := in.cancel.Reason
	if reason == "" {
		reason = "canceled by the client"
	}
	ev := next.end(in.at, schemas.OutcomeCanceled, schemas.EndedByClient, reason)
	return transition{next: next, events: []schemas.CallEvent{ev}, effects: eff}
}

func applyDecision(st *callState, in input) transition {
	if st == nil {
		return transition{ignored: ignoreUnknownCall}
	}
	d := in.dec
	next := st.clone()
	next.AppliedOffset = in.offset
	switch {
	case d.Decision == decideAdmit && st.Phase == schemas.StatusQueued:
		next.Phase, next.DialingAt = schemas.StatusDialing, d.DecidedAt
		next.Sequence++
		return transition{next: next, events: []schemas.CallEvent{next.event(schemas.StatusDialing, d.DecidedAt)}, effects: effDial}
	case d.Decision == decideMaxDuration && st.Phase == schemas.StatusAnswered:
		ev := next.end(d.DecidedAt, schemas.OutcomeMaxDuration, schemas.EndedByWatchdog, d.Reason)
		return transition{next: next, events: []schemas.CallEvent{ev}, effects: effHangup}
	case d.Decision == decideRefuse && st.Phase == schemas.StatusQueued:
		ev := next.end(d.DecidedAt, d.Outcome, schemas.EndedByDialer, d.Reason)
		return transition{next: next, events: []schemas.CallEvent{ev}}
	case d.Decision == decideTransferred && st.Phase == schemas.StatusAnswered:
		ev := next.end(d.DecidedAt, schemas.OutcomeTransferred, schemas.EndedByAgent, transferReason(st.TransferTo))
		return transition{next: next, events: []schemas.CallEvent{ev}, effects: effHangup}
	case d.Decision == decideTransferFailed && st.Phase == schemas.StatusAnswered && st.TransferTo != "":
		next.TransferTo = ""
		return transition{next: next}
	case d.Decision == decideExpire && st.Phase == schemas.StatusQueued:
		ev := next.end(d.DecidedAt, schemas.OutcomeExpired, schemas.EndedBySystem, d.Reason)
		return transition{next: next, events: []schemas.CallEvent{ev}}
	case st.Phase == schemas.StatusEnded:
		return transition{ignored: ignoreAfterEnd}
	}
	return transition{ignored: ignoreStale}
}

func applyDialResult(st *callState, in input) transition {
	if st == nil {
		return transition{ignored: ignoreUnknownCall}
	}
	d := in.dial
	if d.Result == dialSending || d.Result == dialNotSent {
		return applyDialStart(st, in)
	}
	switch st.Phase {
	case schemas.StatusEnded:
		// The call ended while it was being dialed (a cancel won the race):
		// make sure nothing of it is left in LiveKit, a callee who picked up
		// included.
		return transition{ignored: ignoreAfterEnd, effects: effHangup}
	case schemas.StatusDialing, schemas.StatusRinging:
	default:
		return transition{ignored: ignoreStale}
	}
	next := st.clone()
	next.AppliedOffset = in.offset
	switch d.Result {
	case dialAnswered:
		var evs []schemas.CallEvent
		if st.Phase == schemas.StatusDialing {
			ringAt := d.StartedAt
			if ringAt.IsZero() || ringAt.After(d.AnsweredAt) {
				ringAt = d.AnsweredAt
			}
			next.Phase, next.RingingAt = schemas.StatusRinging, ringAt
			next.Sequence++
			evs = append(evs, next.event(schemas.StatusRinging, ringAt))
		}
		next.Phase, next.AnsweredAt = schemas.StatusAnswered, d.AnsweredAt
		if d.ParticipantIdentity != "" {
			next.ParticipantIdentity = d.ParticipantIdentity
		}
		next.Sequence++
		evs = append(evs, next.event(schemas.StatusAnswered, d.AnsweredAt))
		return transition{next: next, events: evs}
	case dialFailed:
		o := outcomeForSIP(d.SIPStatusCode)
		next.SIPStatusCode, next.SIPStatus = d.SIPStatusCode, d.SIPStatus
		reason := d.Error
		if d.SIPStatusCode != 0 {
			// The SIP answer is what a client can act on; the API error
			// wrapping it stays in the dial_result command.
			reason = fmt.Sprintf("sip status %d: %s", d.SIPStatusCode, d.SIPStatus)
		}
		ev := next.end(d.FinishedAt, o, endedByForSIP(o), reason)
		return transition{next: next, events: []schemas.CallEvent{ev}, effects: effHangup}
	default: // dialInDoubt
		reason := inDoubtReason
		if d.Source == sourceDial {
			reason = lostReason
		}
		ev := next.end(d.FinishedAt, schemas.OutcomeFailed, schemas.EndedByDialer, reason)
		return transition{next: next, events: []schemas.CallEvent{ev}, effects: effHangup}
	}
}

func applyLiveKit(st *callState, in input) transition {
	if st == nil {
		return transition{ignored: ignoreUnknownCall}
	}
	if st.Phase == schemas.StatusEnded {
		return transition{ignored: ignoreAfterEnd}
	}
	e := in.lk
	isCallee := e.ParticipantIdentity == calleeIdentity(st.CallID)
	next := st.clone()
	next.AppliedOffset = in.offset
	switch e.Event {
	case lkParticipantJoined:
		if !isCallee {
			return transition{ignored: ignoreNotCallee}
		}
		if st.Phase != schemas.StatusDialing {
			return transition{ignored: ignoreStale}
		}
		// LiveKit's SIP bridge joins the callee to the room when it sends
		// the INVITE, so this is the phone ringing, not an answer.
		next.Phase, next.RingingAt = schemas.StatusRinging, e.OccurredAt
		next.Sequence++
		return transition{next: next, events: []schemas.CallEvent{next.event(schemas.StatusRinging, e.OccurredAt)}}
	case lkParticipantLeft, lkConnectionAborted:
		if !isCallee {
			return transition{ignored: ignoreNotCallee}
		}
		next.DisconnectReason = schemas.Clip(e.DisconnectReason, 128)
		if st.Phase != schemas.StatusAnswered {
			// An unanswered dial ends with its SIP status, which the dial
			// result carries; keep the reason for that event.
			return transition{next: next}
		}
		outcome, by := schemas.OutcomeCompleted, endedByForDisconnect(e.DisconnectReason)
		reason := "the callee left the call"
		if st.TransferTo != "" {
			// LiveKit's SIP bridge takes the callee out of the room once
			// the REFER is accepted; the transfer's own decision may come
			// after this and then changes nothing.
			outcome, by, reason = schemas.OutcomeTransferred, schemas.EndedByAgent, transferReason(st.TransferTo)
		}
		// LiveKit's SIP bridge hangs up at max_call_duration counted from
		// the dial (ringing included), with no reason of its own.
		if st.Agent != nil && e.OccurredAt.Sub(st.DialingAt) >= st.Agent.maxCallDuration()-time.Second {
			outcome, by = schemas.OutcomeMaxDuration, schemas.EndedBySystem
			reason = "the call reached the agent's max_call_duration"
		}
		ev := next.end(e.OccurredAt, outcome, by, reason)
		return transition{next: next, events: []schemas.CallEvent{ev}, effects: effHangup}
	case lkRoomFinished, lkRoomGone:
		if st.Phase != schemas.StatusAnswered {
			// The dial result will say how the dial ended; a dial nobody
			// waits on is the watchdog's.
			return transition{ignored: ignoreStale}
		}
		by, reason := endedByForRoomEnd(e.RoomEndReason), "the call's room finished"
		if e.Event == lkRoomGone {
			by, reason = schemas.EndedBySystem, "LiveKit no longer has the call's callee and no webhook said why"
			if e.RoomEndReason == roomEndUnhosted {
				reason = "no LiveKit node hosts the call's room any more (its livekit-server stopped); the call ended with it"
			}
		}
		ev := next.end(e.OccurredAt, schemas.OutcomeCompleted, by, reason)
		return transition{next: next, events: []schemas.CallEvent{ev}, effects: effHangup}
	}
	return transition{ignored: ignoreStale}
}

// end moves the call to ended and returns its ended event. The event is built
// before the state drops what an ended call no longer needs.
func (s *callState) end(at time.Time, o schemas.Outcome, by schemas.EndedBy, reason string) schemas.CallEvent {
	s.Phase, s.EndedAt, s.Outcome, s.EndedBy, s.Reason = schemas.StatusEnded, at, o, by, schemas.Clip(reason, 2048)
	s.Sequence++
	ev := s.event(schemas.StatusEnded, at)
	ev.Outcome, ev.EndedBy, ev.Reason = o, by, s.Reason
	ev.AnsweredBy = s.AnsweredBy
	ev.SIPStatusCode, ev.SIPStatus, ev.DisconnectReason = s.SIPStatusCode, schemas.Clip(s.SIPStatus, 256), s.DisconnectReason
	if !s.DialingAt.IsZero() {
		start := s.RingingAt
		if start.IsZero() {
			start = s.DialingAt
		}
		stop := s.AnsweredAt
		if stop.IsZero() {
			stop = at
		}
		ring := max(0, stop.Sub(start).Seconds())
		ev.RingDurationSeconds = &ring
	}
	if !s.AnsweredAt.IsZero() {
		talk := max(0, at.Sub(s.AnsweredAt).Seconds())
		ev.TalkDurationSeconds = &talk
	}
	s.strip()
	return ev
}

// maxRedials bounds the claims of one call that never send their SIP
// request: past it the call ends failed, never rung, instead of waiting on a
// LiveKit or a broker that cannot start a dial.
const maxRedials = 5

// applyDialStart applies a claim's sending and not_sent records (recovery.go).
// Both name their claim: a record of an older claim changes nothing.
func applyDialStart(st *callState, in input) transition {
	d := in.dial
	if !d.ClaimedAt.Equal(st.DialingAt) || (st.Phase != schemas.StatusDialing && st.Phase != schemas.StatusRinging) {
		return transition{ignored: ignoreStale}
	}
	next := st.clone()
	next.AppliedOffset = in.offset
	if d.Result == dialSending {
		if !st.SIPSendingAt.IsZero() {
			return transition{ignored: ignoreReplay}
		}
		next.SIPSendingAt = d.StartedAt
		return transition{next: next}
	}
	// not_sent. From the dial itself it is certain. From the watchdog it
	// holds only if no sending record of the claim came first in the log:
	// the dial writes its sending record before the claim's window ends and
	// the watchdog its not_sent after, so the log orders them.
	if st.Phase != schemas.StatusDialing || (d.Source == sourceRecovery && !st.SIPSendingAt.IsZero()) {
		return transition{ignored: ignoreStale}
	}
	if st.Redials >= maxRedials {
		ev := next.end(d.FinishedAt, schemas.OutcomeFailed, schemas.EndedByDialer, fmt.Sprintf(
			"the dial could not be started %d times (LiveKit or Kafka unavailable); never rung", st.Redials+1))
		return transition{next: next, events: []schemas.CallEvent{ev}, effects: effHangup}
	}
	next.DialingAt, next.SIPSendingAt = d.FinishedAt, time.Time{}
	next.Redials++
	if d.Source == sourceDial {
		// The dial could not start (LiveKit unreachable, Kafka too slow):
		// dialing again at once would fail the same way. The new claim
		// sends nothing; past its window the watchdog's not_sent dials it.
		return transition{next: next}
	}
	return transition{next: next, effects: effDial}
}
