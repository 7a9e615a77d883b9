package dialer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
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

// startDial places the call in the background. It runs only after the
// call's dialing state is durable (and fenced). The dial is a span under
// parent (the command that made the call dialing), and its result is
// written in it, so the result comes back to the partition in the call's
// trace.
func (d *dialer) startDial(parent context.Context, p int32, st *callState) {
	// The whole dial, the SIP request's sending included, ends by the
	// claim's window (dialWindow): the watchdog counts on that to tell a
	// claim that never sent its request from one that may have rung.
	ctx, cancel := context.WithDeadline(d.dialCtx, st.DialingAt.Add(d.dialWindow(st)))
	if !d.dials.add(st.CallID, st.DialingAt, cancel) {
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

	// notSent reports a dial that sent nothing: the call is dialed again
	// under a new claim.
	notSent := func(why string) dialResult {
		res.Result, res.ClaimedAt, res.FinishedAt = dialNotSent, st.DialingAt, time.Now().UTC()
		res.Error = schemas.Clip(why, 2048)
		return res
	}
	// Before the SIP request nothing can have rung: if LiveKit cannot be
	// reached, the call waits for it (not_sent: dialed again under a new
	// claim once that claim's window has passed) instead of failing.
	unsent := func(what string, err error) dialResult {
		// A hang-up (cancel) ends the dial for good, and LiveKit refusing
		// the request is an answer; the claim's window running out while
		// LiveKit did not answer is neither: nothing was sent.
		if errors.Is(ctx.Err(), context.Canceled) || (ctx.Err() == nil && !retryable(err)) {
			return fail(what, err)
		}
		log.WarnContext(ctx, "dialer: LiveKit unreachable before the SIP request; the call waits", "step", what, "err", err)
		return notSent(what + ": LiveKit unreachable, the call waits to be dialed again: " + err.Error())
	}
	// The trunk's turn comes first, before anything is created in LiveKit;
	// it may take what the claim's window holds beyond the ring and a
	// third of the room and dispatch allowance.
	deadline, _ := ctx.Deadline()
	budget := time.Until(deadline) - a.ringingTimeout() - d.cfg.dialOverhead*2/3
	waited, err := d.trunks.wait(ctx, a.SIPTrunkID, budget)
	if err != nil {
		if errors.Is(err, errNoTurn) {
			d.m.trunkWaits.WithLabelValues("no_turn").Inc()
			log.WarnContext(ctx, "dialer: the trunk's calls per second leave no turn in this claim; the call waits", "err", err)
			return notSent("wait for the trunk: " + err.Error() + "; the call waits to be dialed again")
		}
		return unsent("wait for the trunk", err)
	}
	if waited > 0 {
		d.m.trunkWaits.WithLabelValues("waited").Inc()
	}
	part := p
	meta, _ := json.Marshal(roomMetadata{CallID: st.CallID, WorkspaceID: st.WorkspaceID, CallAgentID: st.CallAgentID, Partition: &part,
		TraceParent: st.TraceParent, TraceState: st.TraceState})
	err = retryLiveKit(ctx, func() error {
		_, err := d.lk.CreateRoom(ctx, &livekit.CreateRoomRequest{
			Name: st.RoomName, Metadata: string(meta),
			EmptyTimeout:     uint32((a.ringingTimeout() + dialOverhead).Seconds()),
			DepartureTimeout: roomDepartureTimeout,
		})
		return err
	})
	if err != nil {
		return unsent("create room", err)
	}

	dmeta, err := d.agentDispatch(st, res.StartedAt)
	if err != nil {
		return fail("encode dispatch metadata", err)
	}
	if err := d.dispatchAgent(ctx, st.RoomName, a.LiveKitAgentName, dmeta); err != nil {
		return unsent("dispatch agent", err)
	}

	// From here the phone may ring: say so in the log first, acknowledged,
	// so that whoever resolves this claim later knows (recovery.go). If it
	// cannot be said within the claim's window, nothing is sent and the
	// call is dialed again under a new claim.
	sendingAt := time.Now().UTC()
	if err := d.recordSending(ctx, p, st, sendingAt); err != nil {
		log.WarnContext(ctx, "dialer: the dial's start could not be recorded; not sent, dialed again", "err", err)
		return notSent("record sending: " + err.Error())
	}
	// Another owner of the partition counts the ring from the record's
	// time (inDoubt): a request sent much later than that could still ring
	// when it takes the dial for dead and deletes the room. A record Kafka
	// acknowledged late (a broker outage, a partition cut off) is retracted
	// instead: not sent, dialed again under a new claim.
	if late := time.Since(sendingAt); late > d.sendingSlack() {
		log.WarnContext(ctx, "dialer: the dial's start was acknowledged late; not sent, dialed again", "late", late)
		d.m.lateSending.Inc()
		return notSent(fmt.Sprintf("record sending: acknowledged %s after it was written (more than %s); not sent, dialed again",
			late.Round(time.Millisecond), d.sendingSlack()))
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
	if code == 0 && !errors.Is(ctx.Err(), context.Canceled) {
		switch {
		case neverSent(err) || noServer(err):
			// The connection to LiveKit was never made, or no SIP service
			// took the request: nothing rang.
			return unsent("create sip participant", err)
		case answerLost(err) || ctx.Err() != nil:
			// The request may have reached LiveKit and rung the phone; its
			// answer was lost with the connection (LiveKit died, the network
			// dropped) or never came within the claim's window. Not a
			// failure of the call: in doubt.
			log.WarnContext(ctx, "dialer: LiveKit's answer to the dial was lost; asking LiveKit how it ended", "err", err)
			return d.settleLost(p, st, res, err)
		}
	}
	d.m.sipResponses.WithLabelValues(sipClass(code)).Inc()
	res.Result, res.SIPStatusCode, res.SIPStatus = dialFailed, code, schemas.Clip(text, 256)
	res.Error = schemas.Clip("create sip participant: "+err.Error(), 2048)
	log.InfoContext(ctx, "dialer: dial not answered", "sip_status_code", code, "err", err)
	return res
}

// sendingSlack is how late a sending record may be acknowledged for its
// dial still to send: half the grace another owner's watchdog gives a
// ring, at least a second.
func (d *dialer) sendingSlack() time.Duration {
	return max(d.cfg.WatchdogGrace/2, time.Second)
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

// neverSent reports a LiveKit API error that proves the request never
// left this process: the connection could not be made (refused, no route,
// the name does not resolve).
func neverSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// noServer reports LiveKit's answer when nothing on its bus took a request:
// 503 "no response from servers", from LiveKit itself (not a transport
// error on the way to it). For CreateSIPParticipant it means no SIP service
// took the request (measured with the SIP service stopped or frozen):
// nothing was sent to the phone network. For a request routed to a room's
// node, that no node hosts the room.
func noServer(err error) bool {
	var te twirp.Error
	return errors.As(err, &te) && te.Code() == twirp.Unavailable && strings.Contains(te.Msg(), "no response from servers") &&
		!answerLost(err)
}

// answerLost reports a LiveKit API error that came from the transport after
// the connection was made (reset, EOF, no answer in time): the request may
// have been served, and its answer never arrived. An error LiveKit answered
// with is a twirp error without a transport cause.
func answerLost(err error) bool {
	var ue *url.Error
	return errors.As(err, &ue) && !neverSent(err)
}

// retryable reports a LiveKit API error worth retrying: the server was
// unreachable or overloaded, not a request it refused.
func retryable(err error) bool {
	// A deadline is retryable: callers stop when their own context ends,
	// and one that outlived a request's own deadline (the SDK bounds each
	// request) has still to hear LiveKit's answer.
	if errors.Is(err, context.Canceled) {
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
	d.liveKitTask(parent, "hangup", st, func(ctx context.Context, span trace.Span) {
		if err := retryLiveKit(ctx, func() error { return d.lk.DeleteRoom(ctx, st.RoomName) }); err != nil {
			span.SetStatus(codes.Error, err.Error())
			d.log.WarnContext(ctx, "dialer: delete room failed", "call_id", st.CallID, "workspace_id", st.WorkspaceID, "room", st.RoomName, "err", err)
		}
	})
}

// liveKitTask runs fn in the background (shutdown waits for it) as a span
// named name under parent, bounded by hangupTimeout: the LiveKit work of an
// effect, after its transition is durable.
func (d *dialer) liveKitTask(parent context.Context, name string, st *callState, fn func(ctx context.Context, span trace.Span)) {
	d.bg.Add(1)
	go func() {
		defer d.bg.Done()
		ctx, cancel := context.WithTimeout(d.dialCtx, hangupTimeout)
		defer cancel()
		ctx, span := d.tracer.Start(trace.ContextWithSpanContext(ctx, trace.SpanContextFromContext(parent)), name,
			trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(callAttrs(st)...))
		defer span.End()
		fn(ctx, span)
	}()
}

// dialSet tracks the dials of this process, so a cancel can stop one and
// the watchdog knows which dialing calls someone is waiting on. A finished
// dial lingers for a while: its result is on its way through Kafka.
type dialSet struct {
	mu     sync.Mutex
	m      map[string]*dialEntry
	linger time.Duration
}

type dialEntry struct {
	cancel   context.CancelFunc
	claim    time.Time
	finished time.Time
}

// add registers the dial of claim, unless a dial of the call is running
// here, or one of the same claim finished recently: one call is never dialed
// twice at once by this process, and a claim at most once. A finished dial
// of an older claim gives way (the call is dialed again after a not_sent).
func (s *dialSet) add(id string, claim time.Time, cancel context.CancelFunc) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[id]; ok && (e.finished.IsZero() || (e.claim.Equal(claim) && time.Since(e.finished) < s.linger)) {
		return false
	}
	s.m[id] = &dialEntry{cancel: cancel, claim: claim}
	return true
}

func (s *dialSet) finish(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.m[id]; e != nil {
		e.finished = time.Now()
	}
	for k, e := range s.m { // forget the long finished
		if !e.finished.IsZero() && time.Since(e.finished) > s.linger {
			delete(s.m, k)
		}
	}
}

// has reports a dial running here, or finished recently enough that its
// result may not have been applied yet.
func (s *dialSet) has(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[id]
	return ok && (e.finished.IsZero() || time.Since(e.finished) < s.linger)
}

func (s *dialSet) cancel(id string) {
	s.mu.Lock()
	var c context.CancelFunc
	if e := s.m[id]; e != nil && e.finished.IsZero() {
		c = e.cancel
	}
	s.mu.Unlock()
	if c != nil {
		c()
	}
}

func (s *dialSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range s.m {
		if e.finished.IsZero() {
			n++
		}
	}
	return n
}
