package dialer

import (
	"context"
	"time"

	"github.com/livekit/protocol/livekit"
	"go.opentelemetry.io/otel/trace"

	"github.com/dialstream/dialstream/internal/backoff"
	"github.com/dialstream/dialstream/internal/obs"
	"github.com/dialstream/dialstream/schemas"
)

// In-doubt recovery: what becomes of a call whose dial nobody waits on any
// more. See docs/architecture.md, "In-doubt recovery".
//
// A call is claimed (dialing) before it is dialed, and the claim is durable
// and fenced before CreateSIPParticipant is called (write.go, fence.go). When
// the process that placed the dial dies, or is stopped past
// DIALER_DRAIN_TIMEOUT, or the fence refused the dial, the call stays dialing
// or ringing and no dial result is coming. Whoever owns the partition then,
// this process or the next, resolves it:
//
//  1. the watchdog (watchdog.go) finds a dialing or ringing call with no
//     dial of this process behind it, past the agent's ringing timeout +
//     DIALER_WATCHDOG_GRACE (inDoubt);
//  2. recoverDial asks LiveKit who is in the call's room: a callee whose SIP
//     call is active is adopted (a dial_result "answered" from source
//     "recovery"); otherwise the room is deleted, so a phone still ringing
//     stops, and the result is "in_doubt";
//  3. the state machine (machine.go, applyDialResult) applies that command
//     like any dial result: answered moves the call on; in_doubt ends it
//     failed with inDoubtReason and hangs up.
//
// The call is never dialed again once its dial may have rung: a second could
// ring the phone twice. A LiveKit error leaves the call as it is for the next
// watchdog round.
//
// But a claim is not a dial. Between the durable claim and CreateSIPParticipant
// lie the fence, the room and the dispatch, and a crash, a broker outage or a
// lost partition there leaves a claim that rang nothing. So the dial records,
// acknowledged, that it is about to send its SIP request (dialSending), and
// sends nothing once the claim's window (dialWindow from dialing_at) has
// passed. A claim with no sending record past its window plus clockMargin
// never sent its request: the watchdog writes not_sent, and the state machine
// (applyDialStart) dials the call again under a new claim, unless a sending
// record of that claim came first in the partition. The dial writes its
// record before the window ends and the watchdog its not_sent after it, so the
// log orders the two correctly as long as the clocks of the two processes
// differ by less than clockMargin. What stays in doubt: a dial that recorded
// sending and then died before CreateSIPParticipant returned (it may have
// rung), and one whose sending record was acknowledged too late to be used.

// inDoubtReason is the end reason of a call whose dialer died while
// CreateSIPParticipant was in flight and whose callee LiveKit does not have:
// it may or may not have rung, so it is not dialed again.
const inDoubtReason = "dialer restarted during the dial; not redialed to avoid a duplicate call"

// clockMargin is how far apart the clocks of two dialers may be for a
// not_sent to be safe (see above). It delays only the redial of a claim that
// never sent its request.
const clockMargin = 10 * time.Second

// dialWindow is how long after its claim a dial may still send its SIP
// request: the ringing timeout plus the room and the dispatch.
func (d *dialer) dialWindow(st *callState) time.Duration {
	return st.Agent.ringingTimeout() + d.cfg.dialOverhead
}

// inDoubt reports a dialing or ringing call that no dial of this process
// stands behind, past the time its dial would have ended: the agent's
// ringing timeout + DIALER_WATCHDOG_GRACE after the SIP request was sent
// (its sending record), which may be well after the claim (a trunk's turn,
// a slow room, a broker slow to acknowledge the sending record); for a
// claim that never recorded sending, past its window + clockMargin.
func (o *partitionOwner) inDoubt(st *callState, now time.Time) bool {
	if st.Agent == nil || o.d.dials.has(st.CallID) {
		return false
	}
	if st.SIPSendingAt.IsZero() {
		if st.Phase == schemas.StatusDialing {
			return now.Sub(st.DialingAt) > o.d.dialWindow(st)+o.d.cfg.clockMargin
		}
		// Ringing with no sending record: a state written before sending
		// records existed. The claim is the only start there is.
		return now.Sub(st.DialingAt) > st.Agent.ringingTimeout()+o.d.cfg.WatchdogGrace
	}
	return now.Sub(st.SIPSendingAt) > st.Agent.ringingTimeout()+o.d.cfg.WatchdogGrace
}

// recordSending writes, and waits for Kafka to acknowledge, that st's dial
// is about to send its SIP request, at now. ctx ends with the claim's window.
func (d *dialer) recordSending(ctx context.Context, p int32, st *callState, now time.Time) error {
	rec, err := commandRecord(TypeDialResult, st.CallID, p, now, dialResult{CallID: st.CallID, WorkspaceID: st.WorkspaceID,
		Result: dialSending, Source: sourceDial, ClaimedAt: st.DialingAt, StartedAt: now, FinishedAt: now})
	if err != nil {
		return err
	}
	rec.Context = obs.SpanContextOnly(ctx)
	return d.writeCommand(ctx, rec, st)
}

// redialUnsent writes not_sent for a claim that never recorded sending.
func (d *dialer) redialUnsent(p int32, st *callState) {
	d.checkOnce("unsent:"+st.CallID, func() {
		now := time.Now().UTC()
		rec, err := commandRecord(TypeDialResult, st.CallID, p, now, dialResult{CallID: st.CallID, WorkspaceID: st.WorkspaceID,
			Result: dialNotSent, Source: sourceRecovery, ClaimedAt: st.DialingAt, FinishedAt: now,
			Error: "the claim's dial never recorded sending its SIP request"})
		if err == nil {
			rec.Context = callContext(st)
			err = d.writeCommand(d.prodCtx, rec, st)
		}
		if err != nil {
			d.log.ErrorContext(callContext(st), "dialer: not_sent not written; retried by the next watchdog round", "call_id", st.CallID, "workspace_id", st.WorkspaceID, "err", err)
			return
		}
		d.m.inDoubt.WithLabelValues("redialed").Inc()
		d.log.WarnContext(callContext(st), "dialer: a claim that never sent its dial is dialed again", "call_id", st.CallID, "workspace_id", st.WorkspaceID)
	})
}

// lostReason is the end reason of a call whose dial lost LiveKit's answer
// (the connection broke after the request was sent) and whose callee
// LiveKit, asked again, does not have in the call.
const lostReason = "LiveKit's answer to the dial was lost; not redialed to avoid a duplicate call"

// settleLost resolves a dial that lost LiveKit's answer: the dial itself
// asks LiveKit, as recovery does, until it can (LiveKit may be restarting,
// or out of reach), so the call stays this process's dial and the watchdog
// leaves it alone meanwhile. A callee in the call is adopted; otherwise the
// room is deleted and the call is in doubt. Only shutdown stops it, and the
// next owner's recovery then resolves the call.
func (d *dialer) settleLost(p int32, st *callState, res dialResult, cause error) dialResult {
	res.Error = schemas.Clip("create sip participant: "+cause.Error(), 2048)
	for attempt := 0; ; attempt++ {
		if attempt > 0 && !backoff.Sleep(d.dialCtx, min(time.Duration(attempt)*500*time.Millisecond, 5*time.Second)) {
			res.Result, res.FinishedAt = dialFailed, time.Now().UTC()
			return res // shutdown: startDial writes nothing
		}
		ctx, cancel := context.WithTimeout(d.dialCtx, hangupTimeout)
		answered, err := d.askLiveKit(ctx, st)
		cancel()
		if err != nil {
			d.log.WarnContext(d.dialCtx, "dialer: LiveKit cannot say how a dial ended yet; asking again", "call_id", st.CallID,
				"workspace_id", st.WorkspaceID, "room", st.RoomName, "partition", p, "err", err)
			continue
		}
		res.FinishedAt = time.Now().UTC()
		if answered != "" {
			res.Result, res.AnsweredAt, res.ParticipantIdentity = dialAnswered, res.FinishedAt, answered
			d.m.inDoubt.WithLabelValues("adopted").Inc()
			return res
		}
		res.Result = dialInDoubt
		d.m.inDoubt.WithLabelValues("failed").Inc()
		return res
	}
}

// askLiveKit asks LiveKit whether st's callee is in the call (its SIP call
// active, in a room a running node hosts): its identity if so; otherwise it
// deletes the room, hanging up a callee still ringing, and returns "". An
// error leaves both undone.
func (d *dialer) askLiveKit(ctx context.Context, st *callState) (answered string, err error) {
	parts, err := d.lk.ListParticipants(ctx, st.RoomName)
	if noServer(err) {
		// LiveKit set to ask the room's node for its participants, and no
		// node answered: the room may be hosted by nobody.
		if gone, herr := d.roomUnhosted(ctx, st.RoomName); herr != nil || !gone {
			return "", err
		}
		parts, err = nil, nil
	}
	if err != nil {
		return "", err
	}
	for _, pi := range parts {
		if pi.GetIdentity() == calleeIdentity(st.CallID) && pi.GetAttributes()[livekit.AttrSIPCallStatus] == sipCallStatusActive {
			// A livekit-server that died left its participants listed:
			// a callee of a room no node hosts is not in any call.
			gone, err := d.roomUnhosted(ctx, st.RoomName)
			if err != nil {
				return "", err
			}
			if !gone {
				return pi.GetIdentity(), nil
			}
			break
		}
	}
	return "", d.lk.DeleteRoom(ctx, st.RoomName)
}

// roomUnhosted reports a room no LiveKit node hosts, as two probes a second
// apart both say: one could meet a node too busy to answer in time.
func (d *dialer) roomUnhosted(ctx context.Context, room string) (bool, error) {
	for i := range 2 {
		if i > 0 && !backoff.Sleep(ctx, time.Second) {
			return false, ctx.Err()
		}
		hosted, err := d.lk.RoomHosted(ctx, room)
		if err != nil || hosted {
			return false, err
		}
	}
	return true, nil
}

// recoverDial resolves a dial nobody is waiting on any more (its dialer
// died): an answered callee in the room is adopted; otherwise the room is
// deleted (so a callee still ringing is hung up) and the call ends failed.
// The result is a dial_result command like any other.
func (d *dialer) recoverDial(p int32, st *callState) {
	d.checkOnce("recover:"+st.CallID, func() {
		ctx, cancel := context.WithTimeout(d.dialCtx, hangupTimeout)
		defer cancel()
		ctx, span := d.tracer.Start(trace.ContextWithSpanContext(ctx, trace.SpanContextFromContext(callContext(st))), "recover dial",
			trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(callAttrs(st)...))
		defer span.End()
		log := d.log.With("call_id", st.CallID, "workspace_id", st.WorkspaceID, "room", st.RoomName)
		answered, err := d.askLiveKit(ctx, st)
		if err != nil {
			log.WarnContext(ctx, "dialer: recovery could not ask LiveKit or delete the room; retried by the next watchdog round", "err", err)
			return
		}
		now := time.Now().UTC()
		res := dialResult{CallID: st.CallID, WorkspaceID: st.WorkspaceID, Source: sourceRecovery, FinishedAt: now}
		if answered != "" {
			res.Result, res.AnsweredAt, res.ParticipantIdentity = dialAnswered, now, answered
		}
		if res.Result == "" {
			res.Result = dialInDoubt
			d.m.inDoubt.WithLabelValues("failed").Inc()
			log.WarnContext(ctx, "dialer: in-doubt dial ended without redialing")
		} else {
			d.m.inDoubt.WithLabelValues("adopted").Inc()
			log.InfoContext(ctx, "dialer: in-doubt dial adopted: the callee is in the call")
		}
		rec, err := commandRecord(TypeDialResult, st.CallID, p, now, res)
		if err == nil {
			rec.Context = obs.SpanContextOnly(ctx)
			err = d.writeCommand(d.prodCtx, rec, st)
		}
		if err != nil {
			log.ErrorContext(ctx, "dialer: recovery result not written", "err", err)
		}
	})
}
