package dialer

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/backoff"
	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/internal/obs"
	"github.com/dialstream/dialstream/schemas"
)

// CloudEvent types of the dialer's own records. The commands travel on
// schemas.TopicRequested next to the clients' call.requested and call.cancel,
// keyed by call id and written to the call's partition, so the partition's
// owner applies every change to a call in one order. Other consumers of that
// topic should skip these types.
const (
	TypeDialResult   = "dialstream.dialer.dial_result.v1"
	TypeLiveKitEvent = "dialstream.dialer.livekit_event.v1"
	TypeDecision     = "dialstream.dialer.decision.v1"
	// TypeState marks the records of schemas.TopicState.
	TypeState = "dialstream.dialer.state.v1"
)

// commandTypes are the types a record on schemas.TopicRequested may have.
var commandTypes = map[string]bool{
	schemas.TypeCallRequested: true, schemas.TypeCallCancel: true, schemas.TypeAgentReportReceived: true,
	TypeDialResult: true, TypeLiveKitEvent: true, TypeDecision: true,
}

const (
	schemaDialResult   = "dialer.dial_result.v1"
	schemaLiveKitEvent = "dialer.livekit_event.v1"
	schemaDecision     = "dialer.decision.v1"
	schemaState        = "dialer.state.v1"

	// ceSource is the ce_source of every record the dialer writes.
	ceSource = "/dialstream/dialer"
)

func init() {
	schemas.RegisterType(TypeDialResult, schemaDialResult)
	schemas.RegisterType(TypeLiveKitEvent, schemaLiveKitEvent)
	schemas.RegisterType(TypeDecision, schemaDecision)
	schemas.RegisterType(TypeState, schemaState)
}

type dialResultKind string

const (
	dialAnswered dialResultKind = "answered"
	dialFailed   dialResultKind = "failed"
	// dialInDoubt is what a recovery check reports for a dial that no
	// dialer is waiting on and whose callee is not in the room: the dialer
	// that placed it died, so nobody knows how it ended.
	dialInDoubt dialResultKind = "in_doubt"
	// dialSending is the dial's own record, acknowledged by Kafka before
	// CreateSIPParticipant is sent: from here on the dial may ring. A
	// claim without it was never sent (see recovery.go).
	dialSending dialResultKind = "sending"
	// dialNotSent says a claimed dial never sent its SIP request: written by
	// the dial itself when it could not record dialSending in time, or by
	// the watchdog when the claim's window passed without dialSending. The
	// call is dialed again, under a new claim.
	dialNotSent dialResultKind = "not_sent"
)

type dialSource string

const (
	sourceDial     dialSource = "dial"
	sourceRecovery dialSource = "recovery"
)

// dialResult is the data of a dialstream.dialer.dial_result.v1 command.
type dialResult struct {
	CallID              string         `json:"call_id"`
	WorkspaceID         string         `json:"workspace_id"`
	Result              dialResultKind `json:"result"`
	Source              dialSource     `json:"source"`
	SIPStatusCode       int            `json:"sip_status_code,omitempty"`
	SIPStatus           string         `json:"sip_status,omitempty"`
	Error               string         `json:"error,omitempty"`
	ParticipantIdentity string         `json:"participant_identity,omitempty"`
	SIPCallID           string         `json:"sip_call_id,omitempty"`
	StartedAt           time.Time      `json:"started_at,omitzero"`
	// ClaimedAt names the claim (the call's dialing_at) a sending or
	// not_sent record is about, so a record of an older claim changes
	// nothing.
	ClaimedAt  time.Time `json:"claimed_at,omitzero"`
	AnsweredAt time.Time `json:"answered_at,omitzero"`
	FinishedAt time.Time `json:"finished_at"`
}

// LiveKit webhook events the dialer acts on, plus roomGone, which the
// watchdog writes when LiveKit no longer has the callee of an answered call
// (the webhook that said so was dropped).
const (
	lkParticipantJoined  = "participant_joined"
	lkParticipantLeft    = "participant_left"
	lkConnectionAborted  = "participant_connection_aborted"
	lkRoomFinished       = "room_finished"
	lkRoomGone           = "room_gone"
	participantKindSIP   = "SIP"
	sipCallStatusActive  = "active"
	calleeIdentityPrefix = "callee-"
)

// livekitEvent is the data of a dialstream.dialer.livekit_event.v1 command.
type livekitEvent struct {
	CallID              string    `json:"call_id"`
	WorkspaceID         string    `json:"workspace_id"`
	Event               string    `json:"event"`
	WebhookID           string    `json:"webhook_id,omitempty"`
	RoomName            string    `json:"room_name,omitempty"`
	ParticipantIdentity string    `json:"participant_identity,omitempty"`
	ParticipantKind     string    `json:"participant_kind,omitempty"`
	SIPCallStatus       string    `json:"sip_call_status,omitempty"`
	DisconnectReason    string    `json:"disconnect_reason,omitempty"`
	RoomEndReason       string    `json:"room_end_reason,omitempty"`
	OccurredAt          time.Time `json:"occurred_at"`
}

type decisionKind string

const (
	decideAdmit       decisionKind = "admit"
	decideMaxDuration decisionKind = "max_duration"
	decideExpire      decisionKind = "expire"
	// decideRefuse: the compliance check refused the call right before its
	// dial (compliance.go); it ends with the refusal's outcome, never rung.
	decideRefuse decisionKind = "refuse"
	// decideTransferred: LiveKit moved the callee to the number the agent
	// asked for (report.go); the call ends transferred.
	decideTransferred decisionKind = "transferred"
	// decideTransferFailed: LiveKit refused the transfer; the call goes on
	// with the agent, and a later hang-up ends it as usual.
	decideTransferFailed decisionKind = "transfer_failed"
)

// decision is the data of a dialstream.dialer.decision.v1 command: what a
// timer decided, written to the log so that applying it is replayable.
type decision struct {
	CallID      string       `json:"call_id"`
	WorkspaceID string       `json:"workspace_id"`
	Decision    decisionKind `json:"decision"`
	// Outcome is, for decideRefuse, the compliance outcome the call ends with.
	Outcome   schemas.Outcome `json:"outcome,omitempty"`
	Reason    string          `json:"reason,omitempty"`
	DecidedAt time.Time       `json:"decided_at"`
}

// commandRecord builds one of the dialer's commands for the call's partition.
// The partition is explicit: a client's producer may not hash keys the way
// ours does, and the command must land where the call's request did.
func commandRecord(ceType, callID string, partition int32, at time.Time, data any) (*kgo.Record, error) {
	r, err := schemas.NewRecord(schemas.TopicRequested, callID, schemas.Meta{
		Type: ceType, Source: ceSource, Subject: callID, Time: at,
	}, data)
	if err != nil {
		return nil, err
	}
	r.Partition = partition
	r.Timestamp = at
	return r, nil
}

// writeAdmit writes an admission decision to the call's partition. The
// partition's owner makes the call dialing when it applies it. If it cannot
// be written, the attempt the compliance check reserved is released and the
// call stays queued.
func (d *dialer) writeAdmit(t admitTicket) {
	d.writeDecision(t, decision{
		CallID: t.CallID, WorkspaceID: t.WorkspaceID, Decision: decideAdmit, DecidedAt: t.At.UTC(),
	}, nil, func() {
		if d.gate != nil {
			d.gate.checker.Attempts.Release(t.WorkspaceID, t.To, t.CallID)
		}
	})
}

// writeDecision writes admission's decision about t's call to its partition;
// written runs once the broker has it, failed (then admission's failed, which
// queues the call again) if it cannot be written.
func (d *dialer) writeDecision(t admitTicket, dec decision, written, failed func()) {
	rec, err := commandRecord(TypeDecision, t.CallID, t.Partition, t.At, dec)
	tctx := obs.ContextWithTraceParent(context.Background(), t.TraceParent, t.TraceState)
	fail := func() {
		if failed != nil {
			failed()
		}
		d.adm.failed(t)
	}
	if err != nil {
		d.log.ErrorContext(tctx, "dialer: encode decision", "decision", dec.Decision, "call_id", t.CallID, "workspace_id", t.WorkspaceID, "err", err)
		fail()
		return
	}
	rec.Context = tctx
	d.prod.Produce(d.prodCtx, rec, func(_ *kgo.Record, err error) {
		if err != nil {
			d.log.WarnContext(tctx, "dialer: write decision failed; call stays queued", "decision", dec.Decision, "call_id", t.CallID, "workspace_id", t.WorkspaceID, "err", err)
			fail()
			return
		}
		if written != nil {
			written()
		}
	})
}

// writeCommand writes one of the dialer's commands about st's call,
// retrying until it is acknowledged or ctx ends.
func (d *dialer) writeCommand(ctx context.Context, rec *kgo.Record, st *callState) error {
	wait := backoff.Doubling{Next: 100 * time.Millisecond, Max: 5 * time.Second}
	for {
		err := d.prod.ProduceSync(ctx, rec).FirstErr()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || errors.Is(err, kgo.ErrClientClosed) {
			return err
		}
		d.log.WarnContext(ctxOf(rec), "dialer: write command failed; retrying", "call_id", st.CallID, "workspace_id", st.WorkspaceID,
			"type", kafkax.Header(rec, schemas.HeaderType), "err", err)
		if !wait.Wait(ctx) {
			return ctx.Err()
		}
	}
}
