package phonesim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/rpc"
	"github.com/livekit/psrpc"
	lksdk "github.com/livekit/server-sdk-go/v2"
)

// sip.callStatus values, as livekit/sip sets them (pkg/sip/participant.go).
const (
	statusDialing = "dialing"
	statusRinging = "ringing"
	statusActive  = "active"
	statusHangup  = "hangup"
)

// CreateSIPParticipant implements rpc.SIPInternalServerImpl. livekit-server
// calls it for every CreateSIPParticipant API request.
//
// As livekit/sip does, it joins the room first (so the participant exists
// while the phone rings), then: with WaitUntilAnswered it returns after the
// answer or with the callee's SIP status; without it returns at once and
// the call plays out in the room.
func (s *Sim) CreateSIPParticipant(ctx context.Context, req *rpc.InternalCreateSIPParticipantRequest) (*rpc.InternalCreateSIPParticipantResponse, error) {
	script := ScriptFor(req.CallTo)
	rec := s.recordDial(Dial{Room: req.RoomName, To: req.CallTo, Script: script, SIPCallID: req.SipCallId, At: time.Now().UTC()})
	log := s.log.With("room", req.RoomName, "to", MaskNumber(req.CallTo), "script", string(script), "sip_call_id", req.SipCallId)
	log.Info("dial received", "wait_until_answered", req.WaitUntilAnswered)
	if req.RoomName == "" {
		return nil, psrpc.NewErrorf(psrpc.InvalidArgument, "room name must be set")
	}

	c := s.newCall(req, script, log, rec)
	if err := c.join(ctx); err != nil {
		c.cancel()
		log.Warn("join room failed", "error", err)
		return nil, psrpc.NewError(psrpc.Internal, fmt.Errorf("phonesim: join room: %w", err))
	}
	resp := &rpc.InternalCreateSIPParticipantResponse{
		ParticipantId:       c.room.LocalParticipant.SID(),
		ParticipantIdentity: c.room.LocalParticipant.Identity(),
		SipCallId:           req.SipCallId,
	}

	if !req.WaitUntilAnswered {
		s.calls.Go(func() {
			defer c.cancel()
			if err := c.dial(c.ctx); err != nil {
				return
			}
			c.talk()
		})
		return resp, nil
	}
	if err := c.dial(ctx); err != nil {
		c.cancel()
		return nil, err
	}
	s.calls.Go(func() {
		defer c.cancel()
		c.talk()
	})
	return resp, nil
}

// call is one simulated phone call.
type call struct {
	sim    *Sim
	req    *rpc.InternalCreateSIPParticipantRequest
	script Script
	log    *slog.Logger

	// ctx ends at the request's max call duration (counted from the dial,
	// ringing included, as livekit/sip does) or when the simulator closes.
	ctx    context.Context
	cancel context.CancelFunc

	room     *lksdk.Room
	gone     chan struct{} // closed when livekit disconnects us
	goneOnce sync.Once

	// rec is the call's record in the simulator's log; write it through
	// sim.update.
	rec *Dial
	// voice is the callee's audio track (voicemail only).
	voice *lksdk.LocalTrack
	// agentLines receives each text an agent sends, for scripts that reply.
	agentLines chan string
	// transferTo receives the target of a TransferSIPParticipant, once.
	transferTo chan string
	// lastAgentAudio is when the agent's last sound arrived (unix ns).
	lastAgentAudio atomic.Int64
}

func (s *Sim) newCall(req *rpc.InternalCreateSIPParticipantRequest, script Script, log *slog.Logger, rec *Dial) *call {
	c := &call{sim: s, req: req, script: script, log: log, gone: make(chan struct{}), rec: rec,
		agentLines: make(chan string, 16), transferTo: make(chan string, 1)}
	if d := req.MaxCallDuration.AsDuration(); req.MaxCallDuration != nil && d > 0 {
		c.ctx, c.cancel = context.WithTimeout(s.ctx, d)
	} else {
		c.ctx, c.cancel = context.WithCancel(s.ctx)
	}
	return c
}

// join connects to the room as the SIP participant, with sip.callStatus
// "dialing". livekit-server sends no token, so we mint one with the grants
// livekit/sip's token has (protocol/sip.BuildSIPToken).
func (c *call) join(ctx context.Context) error {
	attrs := maps.Clone(c.req.ParticipantAttributes)
	if attrs == nil {
		attrs = make(map[string]string)
	}
	attrs[livekit.AttrSIPCallStatus] = statusDialing
	identity := c.req.ParticipantIdentity
	if identity == "" {
		identity = "sip_" + c.req.CallTo
	}
	yes := true
	token, err := auth.NewAccessToken(c.sim.cfg.APIKey, c.sim.cfg.APISecret).
		SetVideoGrant(&auth.VideoGrant{
			RoomJoin:             true,
			Room:                 c.req.RoomName,
			CanSubscribe:         &yes,
			CanPublish:           &yes,
			CanPublishData:       &yes,
			CanUpdateOwnMetadata: &yes,
		}).
		SetIdentity(identity).
		SetName(c.req.ParticipantName).
		SetMetadata(c.req.ParticipantMetadata).
		SetAttributes(attrs).
		SetKind(livekit.ParticipantInfo_SIP).
		SetValidFor(24 * time.Hour).
		ToJWT()
	if err != nil {
		return fmt.Errorf("mint token: %w", err)
	}

	cb := lksdk.NewRoomCallback()
	cb.OnDisconnectedWithReason = func(lksdk.DisconnectionReason) {
		c.goneOnce.Do(func() { close(c.gone) })
	}
	c.hearCallbacks(cb)
	// c.room is set before joining: callbacks that fire during the join
	// look participants up in it.
	c.room = lksdk.NewRoom(cb)
	c.listenForText(c.room)
	if err := c.room.JoinWithContextAndToken(ctx, c.sim.cfg.LiveKitURL, token,
		lksdk.WithAutoSubscribe(true),
		lksdk.WithLogger(NewSDKLogger(c.log)),
	); err != nil {
		c.room.Disconnect() // release a half-made connection
		return err
	}
	c.seeRoom()
	if c.script == ScriptVoicemail {
		// Published while the phone rings, so it is negotiated and
		// subscribed by the time the greeting plays.
		voice, err := NewOpusTrack()
		if err == nil {
			_, err = c.room.LocalParticipant.PublishTrack(voice, &lksdk.TrackPublicationOptions{Name: "voicemail", Source: livekit.TrackSource_MICROPHONE})
		}
		if err != nil {
			c.room.Disconnect()
			return fmt.Errorf("publish voicemail track: %w", err)
		}
		c.voice = voice
	}
	return nil
}

// ringPlan says how long the phone rings and how the ringing ends: answered
// (nil) or with a final SIP rejection.
func ringPlan(script Script, ringDuration, ringingTimeout time.Duration) (time.Duration, *rejection) {
	switch script {
	case ScriptBusy, ScriptNotFound:
		rej, _ := rejectionFor(script)
		return 0, &rej
	case ScriptNoAnswer:
		rej := noAnswer()
		return ringingTimeout, &rej
	}
	if ringDuration >= ringingTimeout {
		// The caller gives up before the callee would have picked up.
		rej := noAnswer()
		return ringingTimeout, &rej
	}
	if script == ScriptDecline {
		rej, _ := rejectionFor(script)
		return ringDuration, &rej
	}
	return ringDuration, nil
}

// dial rings the phone. It returns nil once the callee answered, or the
// error the API caller should see; on error the participant has left.
// rpcCtx is the request's context: when the caller stops waiting, the
// phone stops ringing.
func (c *call) dial(rpcCtx context.Context) error {
	ringingTimeout := DefaultRingingTimeout
	if d := c.req.RingingTimeout.AsDuration(); c.req.RingingTimeout != nil && d > 0 {
		ringingTimeout = d
	}
	ringFor, rej := ringPlan(c.script, c.sim.cfg.RingDuration, ringingTimeout)
	if ringFor > 0 {
		c.setStatus(statusRinging)
		t := time.NewTimer(ringFor)
		defer t.Stop()
		select {
		case <-t.C:
		case <-c.gone:
			c.log.Info("room closed while ringing", "reason", c.room.DisconnectReason().String())
			return psrpc.NewErrorf(psrpc.Canceled, "phonesim: room closed while ringing")
		case <-rpcCtx.Done():
			c.leave(livekit.DisconnectReason_CLIENT_INITIATED, statusHangup)
			c.log.Info("caller stopped waiting while ringing")
			return psrpc.NewError(psrpc.Canceled, fmt.Errorf("phonesim: dial canceled while ringing: %w", rpcCtx.Err()))
		case <-c.ctx.Done():
			c.leave(livekit.DisconnectReason_CLIENT_INITIATED, statusHangup)
			if errors.Is(c.ctx.Err(), context.DeadlineExceeded) {
				c.log.Info("max call duration reached while ringing")
				return psrpc.NewErrorf(psrpc.DeadlineExceeded, "phonesim: max call duration reached while ringing")
			}
			return psrpc.NewErrorf(psrpc.Unavailable, "phonesim: shutting down")
		}
	}
	if rej != nil {
		// livekit/sip sets no sip.callStatus for a rejected call: the
		// participant just leaves with the reason.
		c.leave(rej.reason, "")
		c.log.Info("call rejected", "sip_status", int(rej.status.Code))
		return rej.status
	}
	c.answeredNow()
	c.setStatus(statusActive)
	c.log.Info("call answered", "rang_for", ringFor)
	return nil
}

func (c *call) setStatus(status string) {
	c.room.LocalParticipant.SetAttributes(map[string]string{livekit.AttrSIPCallStatus: status})
}

// leave disconnects from the room, first publishing status when given.
func (c *call) leave(reason livekit.DisconnectReason, status string) {
	select {
	case <-c.gone:
		return // already out of the room
	default:
	}
	if status != "" {
		c.setStatus(status)
	}
	c.room.DisconnectWithReason(reason)
	c.goneOnce.Do(func() { close(c.gone) })
}
