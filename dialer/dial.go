package dialer

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/twitchtv/twirp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/dialstream/dialstream/internal/backoff"
	"github.com/dialstream/dialstream/internal/obs"
	"github.com/dialstream/dialstream/schemas"
)

const (
	// dialOverhead is added to the ringing timeout to bound a whole dial
	// (room, dispatch, then CreateSIPParticipant, which the SDK itself
	// bounds at ringing timeout + 2s).
	dialOverhead = 30 * time.Second
	// roomDepartureTimeout closes a room soon after its last participant
	// leaves, so room_finished follows the end of a call promptly.
	roomDepartureTimeout = 10
	// hangupTimeout bounds deleting a room.
	hangupTimeout = 30 * time.Second
)

// roomMetadata is the metadata of a call's room: how a LiveKit webhook about
// the room finds its call, the partition its commands go to, and the call's
// trace, which the command continues.
type roomMetadata struct {
	CallID      string `json:"call_id"`
	WorkspaceID string `json:"workspace_id"`
	CallAgentID string `json:"call_agent_id"`
	Partition   *int32 `json:"dialstream_partition,omitempty"`
	TraceParent string `json:"traceparent,omitempty"`
	TraceState  string `json:"tracestate,omitempty"`
}

// dispatchMetadata is what the agent receives: the dynamic variables and its
// settings, never the request's metadata (that is for webhooks only).
type dispatchMetadata struct {
	CallID           string            `json:"call_id"`
	DynamicVariables map[string]string `json:"dynamic_variables"`
	Settings         map[string]any    `json:"settings"`
}

// startDial places the call in the background. It runs only after the
// call's dialing state is durable (and fenced). The dial is a span under
// parent (the command that made the call dialing), and its result is
// written in it, so the result comes back to the partition in the call's
// trace.
func (d *dialer) startDial(parent context.Context, p int32, st *callState) {
	ctx, cancel := context.WithTimeout(d.dialCtx, st.Agent.ringingTimeout()+dialOverhead)
	if !d.dials.add(st.CallID, cancel) {
		cancel()
		return
	}
	ctx = trace.ContextWithSpanContext(ctx, trace.SpanContextFromContext(parent))
	d.bg.Add(1)
	go func() {
		defer d.bg.Done()
		defer cancel()
		// The dial counts as running here until its result is in Kafka: while
		// the broker is unreachable the result waits in writeCommand, and the
		// watchdog must not mistake the call for one whose dialer died.
		defer d.dials.finish(st.CallID)
		ctx, span := d.tracer.Start(ctx, "dial", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(callAttrs(st)...))
		defer span.End()
		res := d.dial(ctx, p, st)
		span.SetAttributes(attribute.String("dialstream.dial_result", string(res.Result)))
		if res.SIPStatusCode != 0 {
			span.SetAttributes(attribute.Int("sip.status_code", res.SIPStatusCode))
		}
		if res.Result == dialFailed && res.SIPStatusCode == 0 {
			span.SetStatus(codes.Error, res.Error)
		}
		if d.dialCtx.Err() != nil {
			// Shutdown canceled the dial after the drain timeout: how it
			// ended is unknown here. The next owner's watchdog asks LiveKit.
			d.log.WarnContext(ctx, "dialer: dial abandoned at shutdown", "call_id", st.CallID, "workspace_id", st.WorkspaceID)
			return
		}
		rec, err := commandRecord(TypeDialResult, st.CallID, p, res.FinishedAt, res)
		if err != nil {
			d.log.ErrorContext(ctx, "dialer: encode dial result", "call_id", st.CallID, "workspace_id", st.WorkspaceID, "err", err)
			return
		}
		rec.Context = obs.SpanContextOnly(ctx)
		if err := d.writeCommand(d.prodCtx, rec, st); err != nil {
			d.log.ErrorContext(ctx, "dialer: dial result not written; the watchdog resolves the call", "call_id", st.CallID, "workspace_id", st.WorkspaceID, "err", err)
		}
	}()
}

// callAttrs are the span attributes that name a call.
func callAttrs(st *callState) []attribute.KeyValue {
	return []attribute.KeyValue{attribute.String("dialstream.call_id", st.CallID),
		attribute.String("dialstream.workspace_id", st.WorkspaceID), attribute.String("livekit.room", st.RoomName)}
}

// dial creates the room, dispatches the agent and calls the callee, then
// reports how it went. It never retries CreateSIPParticipant: a retry can
// ring a phone twice.
func (d *dialer) dial(ctx context.Context, p int32, st *callState) dialResult {
	a := st.Agent
	log := d.log.With("call_id", st.CallID, "workspace_id", st.WorkspaceID, "room", st.RoomName)
	res := dialResult{CallID: st.CallID, WorkspaceID: st.WorkspaceID, Source: sourceDial, StartedAt: time.Now().UTC()}
	fail := func(what string, err error) dialResult {
		res.Result, res.Error, res.FinishedAt = dialFailed, schemas.Clip(what+": "+err.Error(), 2048), time.Now().UTC()
		log.WarnContext(ctx, "dialer: dial failed", "step", what, "err", err)
		return res
	}

	part := p
	meta, _ := json.Marshal(roomMetadata{CallID: st.CallID, WorkspaceID: st.WorkspaceID, CallAgentID: st.CallAgentID, Partition: &part,
		TraceParent: st.TraceParent, TraceState: st.TraceState})
	err := retryLiveKit(ctx, func() error {
		_, err := d.lk.CreateRoom(ctx, &livekit.CreateRoomRequest{
			Name: st.RoomName, Metadata: string(meta),
			EmptyTimeout:     uint32((a.ringingTimeout() + dialOverhead).Seconds()),
			DepartureTimeout: roomDepartureTimeout,
		})
		return err
	})
	if err != nil {
		return fail("create room", err)
	}

	dvars := st.DynamicVariables
	if dvars == nil {
		dvars = map[string]string{}
	}
	settings := a.Settings
	if settings == nil {
		settings = map[string]any{}
	}
	dmeta, err := json.Marshal(dispatchMetadata{CallID: st.CallID, DynamicVariables: dvars, Settings: settings})
	if err != nil {
		return fail("encode dispatch metadata", err)
	}
	if err := d.dispatchAgent(ctx, st.RoomName, a.LiveKitAgentName, string(dmeta)); err != nil {
		return fail("dispatch agent", err)
	}

	log.InfoContext(ctx, "dialer: dialing", "to", obs.MaskPhone(st.To), "trunk", a.SIPTrunkID)
	info, err := d.lk.CreateSIPParticipant(ctx, &livekit.CreateSIPParticipantRequest{
		SipTrunkId:          a.SIPTrunkID,
		SipCallTo:           st.To,
		SipNumber:           a.CallerID,
		RoomName:            st.RoomName,
		ParticipantIdentity: calleeIdentity(st.CallID),
		ParticipantName:     "callee",
		ParticipantAttributes: map[string]string{
			"dialstream.call_id":      st.CallID,
			"dialstream.workspace_id": st.WorkspaceID,
		},
		RingingTimeout:    durationpb.New(a.ringingTimeout()),
		MaxCallDuration:   durationpb.New(a.maxCallDuration()),
		WaitUntilAnswered: true,
	})
	res.FinishedAt = time.Now().UTC()
	if err == nil {
		res.Result, res.AnsweredAt = dialAnswered, res.FinishedAt
		res.ParticipantIdentity, res.SIPCallID = schemas.Clip(info.GetParticipantIdentity(), 128), schemas.Clip(info.GetSipCallId(), 256)
		d.m.sipResponses.WithLabelValues("2xx").Inc()
		return res
	}
	code, text := sipStatusOf(err)
	if code < 100 || code > 699 {
		code, text = 0, ""
	}
	d.m.sipResponses.WithLabelValues(sipClass(code)).Inc()
	res.Result, res.SIPStatusCode, res.SIPStatus = dialFailed, code, schemas.Clip(text, 256)
	res.Error = schemas.Clip("create sip participant: "+err.Error(), 2048)
	log.InfoContext(ctx, "dialer: dial not answered", "sip_status_code", code, "err", err)
	return res
}

// dispatchAgent dispatches the agent once. CreateDispatch is not idempotent
// (a second dispatch is a second agent in the room), so before retrying a
// failed one it checks whether the first took effect.
func (d *dialer) dispatchAgent(ctx context.Context, room, agent, meta string) error {
	var err error
	for attempt := range 3 {
		if attempt > 0 {
			if !backoff.Sleep(ctx, time.Duration(attempt)*300*time.Millisecond) {
				return errors.Join(err, ctx.Err())
			}
			if ds, lerr := d.lk.ListDispatch(ctx, room); lerr == nil {
				for _, x := range ds {
					if x.GetAgentName() == agent {
						return nil
					}
				}
			}
		}
		_, err = d.lk.CreateDispatch(ctx, &livekit.CreateAgentDispatchRequest{AgentName: agent, Room: room, Metadata: meta})
		if err == nil || !retryable(err) {
			return err
		}
	}
	return err
}

// retryLiveKit retries an idempotent LiveKit call on transient errors.
func retryLiveKit(ctx context.Context, f func() error) error {
	var err error
	for attempt := range 3 {
		if attempt > 0 && !backoff.Sleep(ctx, time.Duration(attempt)*300*time.Millisecond) {
			return errors.Join(err, ctx.Err())
		}
		if err = f(); err == nil || !retryable(err) {
			return err
		}
	}
	return err
}

// retryable reports a LiveKit API error worth retrying: the server was
// unreachable or overloaded, not a request it refused.
func retryable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var te twirp.Error
	if errors.As(err, &te) {
		switch te.Code() {
		case twirp.Unavailable, twirp.Internal, twirp.Unknown, twirp.ResourceExhausted, twirp.DeadlineExceeded:
			return true
		}
		return false
	}
	return true // transport errors: connection refused, reset
}

// hangup stops a dial of the call running in this process and deletes the
// call's room, which disconnects the callee and the agent. Deleting a room
// that is gone is a success. The hang-up is a span under parent.
func (d *dialer) hangup(parent context.Context, st *callState) {
	d.dials.cancel(st.CallID)
	if st.RoomName == "" {
		return
	}
	d.bg.Add(1)
	go func() {
		defer d.bg.Done()
		ctx, cancel := context.WithTimeout(d.dialCtx, hangupTimeout)
		defer cancel()
		ctx, span := d.tracer.Start(trace.ContextWithSpanContext(ctx, trace.SpanContextFromContext(parent)), "hangup",
			trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(callAttrs(st)...))
		defer span.End()
		if err := retryLiveKit(ctx, func() error { return d.lk.DeleteRoom(ctx, st.RoomName) }); err != nil {
			span.SetStatus(codes.Error, err.Error())
			d.log.WarnContext(ctx, "dialer: delete room failed", "call_id", st.CallID, "workspace_id", st.WorkspaceID, "room", st.RoomName, "err", err)
		}
	}()
}

// recoverDial resolves a dial nobody is waiting on any more (its dialer
// died): an answered callee in the room is adopted; otherwise the room is
// deleted (so a callee still ringing is hung up) and the call ends failed.
// The result is a dial_result command like any other.
func (d *dialer) recoverDial(p int32, st *callState) {
	key := "recover:" + st.CallID
	if !d.busy.try(key) {
		return
	}
	d.bg.Add(1)
	go func() {
		defer d.bg.Done()
		defer d.busy.done(key)
		ctx, cancel := context.WithTimeout(d.dialCtx, hangupTimeout)
		defer cancel()
		ctx, span := d.tracer.Start(trace.ContextWithSpanContext(ctx, trace.SpanContextFromContext(callContext(st))), "recover dial",
			trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(callAttrs(st)...))
		defer span.End()
		log := d.log.With("call_id", st.CallID, "workspace_id", st.WorkspaceID, "room", st.RoomName)
		parts, err := d.lk.ListParticipants(ctx, st.RoomName)
		if err != nil {
			log.WarnContext(ctx, "dialer: recovery check failed; retried by the next watchdog round", "err", err)
			return
		}
		now := time.Now().UTC()
		res := dialResult{CallID: st.CallID, WorkspaceID: st.WorkspaceID, Source: sourceRecovery, FinishedAt: now}
		for _, pi := range parts {
			if pi.GetIdentity() == calleeIdentity(st.CallID) && pi.GetAttributes()[livekit.AttrSIPCallStatus] == sipCallStatusActive {
				res.Result, res.AnsweredAt, res.ParticipantIdentity = dialAnswered, now, pi.GetIdentity()
			}
		}
		if res.Result == "" {
			if err := d.lk.DeleteRoom(ctx, st.RoomName); err != nil {
				log.WarnContext(ctx, "dialer: recovery could not delete the room; retried by the next watchdog round", "err", err)
				return
			}
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
	}()
}

// checkCallees ends answered calls whose callee LiveKit no longer has, for
// when the webhook that said so never arrived.
func (d *dialer) checkCallees(p int32, calls []*callState) {
	key := "callees:" + strconv.Itoa(int(p))
	if !d.busy.try(key) {
		return
	}
	d.bg.Add(1)
	go func() {
		defer d.bg.Done()
		defer d.busy.done(key)
		for _, st := range calls {
			ctx, cancel := context.WithTimeout(d.dialCtx, 10*time.Second)
			parts, err := d.lk.ListParticipants(ctx, st.RoomName)
			cancel()
			if err != nil {
				if d.dialCtx.Err() != nil {
					return
				}
				continue
			}
			present := false
			for _, pi := range parts {
				present = present || pi.GetIdentity() == calleeIdentity(st.CallID)
			}
			if present {
				continue
			}
			now := time.Now().UTC()
			rec, err := commandRecord(TypeLiveKitEvent, st.CallID, p, now, livekitEvent{
				CallID: st.CallID, WorkspaceID: st.WorkspaceID, Event: lkRoomGone, RoomName: st.RoomName, OccurredAt: now,
			})
			if err == nil {
				rec.Context = callContext(st)
				err = d.writeCommand(d.prodCtx, rec, st)
			}
			if err != nil {
				d.log.WarnContext(callContext(st), "dialer: room_gone not written", "call_id", st.CallID, "workspace_id", st.WorkspaceID, "err", err)
			}
		}
	}()
}
