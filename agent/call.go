package agent

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/webrtc/v4"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/dialstream/dialstream/internal/obs"
	"github.com/dialstream/dialstream/internal/phonesim"
	"github.com/dialstream/dialstream/schemas"
)

// Text stream topics. lk.transcription is where LiveKit agents publish what
// they say (and where a callee's speech-to-text lands); lk.chat is LiveKit's
// text chat. The agent speaks on the first and listens on both.
const (
	topicTranscription = "lk.transcription"
	topicChat          = "lk.chat"
)

const (
	// calleeFrame is the audio one callee packet carries (20 ms Opus frames,
	// what LiveKit's SIP bridge and browsers send).
	calleeFrame = 20 * time.Millisecond
	// toneGap is the callee silence after which a machine's tone is over and
	// the agent leaves its message; maxToneWait bounds that wait.
	toneGap     = 800 * time.Millisecond
	maxToneWait = 20 * time.Second
	// pollEvery is how often a waiting call looks at the callee's audio.
	pollEvery = 50 * time.Millisecond
	// maxTranscript bounds the lines kept (the report schema takes 500).
	maxTranscript = 500
)

// Dispositions the reference agent reports in its result.
const (
	dispConversation = "conversation"
	dispTransferred  = "transferred"
	dispVoicemail    = "voicemail"
	dispMessageLeft  = "voicemail_left"
	dispNoResponse   = "no_response"
	dispHungUp       = "callee_hung_up"
)

// call is one job: one phone call the agent takes part in.
//
// It keeps only what the agent may use from the dispatch: the ids, the
// dynamic variables and the settings. The request's metadata is never copied
// in, so no line the agent says, no transcript and no log can contain it.
type call struct {
	s           *service
	log         *slog.Logger
	roomName    string
	callID      string
	workspaceID string
	vars        map[string]string
	settings    schemas.AgentSettings
	reports     *reportQueue

	room     *lksdk.Room
	voice    *lksdk.LocalTrack
	voiceSID string

	events chan callEvent
	done   chan struct{} // closed when the call ends: callbacks stop sending

	calleePackets atomic.Int64
	lastPacket    atomic.Int64 // unix nanoseconds of the last callee packet

	transcript []schemas.TranscriptLine
	segment    int
}

type eventKind int

const (
	evParticipant eventKind = iota // joined, or its attributes changed
	evLeft
	evText
	evRoomClosed
)

type callEvent struct {
	kind     eventKind
	identity string
	text     string
	at       time.Time
}

// runCall takes part in the call the job is for: join, wait for the answer,
// greet, decide who answered, act on it, report, hang up.
func (s *service) runCall(ctx context.Context, job *livekit.Job, d schemas.AgentDispatch, url, token string) error {
	ctx, span := s.tracer.Start(ctx, "agent call", trace.WithAttributes(
		attribute.String("dialstream.call_id", d.CallID),
		attribute.String("dialstream.workspace_id", d.WorkspaceID),
		attribute.String("livekit.room", d.Room),
		attribute.String("livekit.job_id", job.GetId())))
	defer span.End()
	c := &call{
		s:           s,
		log:         s.log.With("call_id", d.CallID, "workspace_id", d.WorkspaceID, "room", d.Room, "job_id", job.GetId()),
		roomName:    d.Room,
		callID:      d.CallID,
		workspaceID: d.WorkspaceID,
		vars:        d.DynamicVariables,
		settings:    d.AgentSettings(),
		events:      make(chan callEvent, 64),
		done:        make(chan struct{}),
	}
	c.reports = newReportQueue(s, d.Report, c.log)
	defer c.reports.close()
	defer close(c.done)
	c.log.InfoContext(ctx, "agent: call assigned", "to", obs.MaskPhone(d.To))
	if err := c.join(ctx, url, token); err != nil {
		return err
	}
	defer c.room.Disconnect()
	if !c.sameRoom(ctx, job.GetRoom().GetSid()) {
		c.log.Info("agent: the call's room closed before the agent joined; leaving")
		c.closeGhostRoom(ctx)
		return nil
	}
	calleeID, answeredAt, ok := c.waitAnswer(ctx)
	if !ok {
		return nil
	}
	c.converse(ctx, calleeID, answeredAt)
	return nil
}

// join connects to the room with the job's token and publishes the voice.
func (c *call) join(ctx context.Context, url, token string) error {
	cb := lksdk.NewRoomCallback()
	cb.OnParticipantConnected = func(p *lksdk.RemoteParticipant) { c.emit(callEvent{kind: evParticipant, identity: p.Identity()}) }
	cb.OnParticipantDisconnected = func(p *lksdk.RemoteParticipant) { c.emit(callEvent{kind: evLeft, identity: p.Identity()}) }
	cb.OnAttributesChanged = func(_ map[string]string, p lksdk.Participant) {
		c.emit(callEvent{kind: evParticipant, identity: p.Identity()})
	}
	cb.OnDisconnected = func() { c.emit(callEvent{kind: evRoomClosed}) }
	cb.OnTrackSubscribed = func(t *webrtc.TrackRemote, _ *lksdk.RemoteTrackPublication, p *lksdk.RemoteParticipant) {
		if t.Kind() == webrtc.RTPCodecTypeAudio && p.Kind() != lksdk.ParticipantAgent {
			go c.countAudio(t)
		}
	}
	room := lksdk.NewRoom(cb)
	for _, topic := range []string{topicTranscription, topicChat} {
		_ = room.RegisterTextStreamHandler(topic, func(r *lksdk.TextStreamReader, identity string) {
			go func() {
				text := r.ReadAll()
				c.emit(callEvent{kind: evText, identity: identity, text: text, at: time.Now()})
			}()
		})
	}
	if err := room.JoinWithContextAndToken(ctx, url, token,
		lksdk.WithAutoSubscribe(true),
		lksdk.WithLogger(sdkLogger(c.log)),
	); err != nil {
		room.Disconnect()
		return fmt.Errorf("agent: join room %s: %w", c.roomName, err)
	}
	c.room = room
	voice, err := phonesim.NewOpusTrack()
	if err != nil {
		return fmt.Errorf("agent: voice track: %w", err)
	}
	pub, err := room.LocalParticipant.PublishTrack(voice, &lksdk.TrackPublicationOptions{Name: "voice", Source: livekit.TrackSource_MICROPHONE})
	if err != nil {
		return fmt.Errorf("agent: publish voice: %w", err)
	}
	c.voice, c.voiceSID = voice, pub.SID()
	return nil
}

// roomSIDWait bounds the wait for the joined room's session id, which
// LiveKit sends within about 2 s of the join.
const roomSIDWait = 5 * time.Second

// sameRoom reports whether the room joined is the session the job was
// offered for (sid, the job's room SID). A call that fails at once (a busy
// number: the SIP dial fails within milliseconds and the dialer deletes the
// room) can be assigned after its room closed; joining then makes LiveKit
// create a new, empty room of the same name, with another session id, where
// no callee will ever come (the same name may also be a later session of a
// call dialed again: its id differs too, and the agent leaves it alone). Without this check the agent would wait there
// for AnswerTimeout, holding one of its MaxJobs slots, and a campaign of
// busy numbers would fill the worker until LiveKit offered it no more jobs.
// An unknown answer (no SID in the job, none received in time) counts as the
// same room: the agent then waits for the callee as before.
func (c *call) sameRoom(ctx context.Context, sid string) bool {
	if sid == "" {
		return true
	}
	got := make(chan string, 1)
	go func() { got <- c.room.SID() }() // returns at the latest when the room disconnects
	t := time.NewTimer(roomSIDWait)
	defer t.Stop()
	select {
	case joined := <-got:
		return joined == "" || joined == sid
	case <-t.C:
		return true
	case <-ctx.Done():
		return true
	}
}

// closeGhostRoom leaves the room a late join created and deletes it when
// nobody else is in it. LiveKit would keep a room only an agent ever joined
// for its empty timeout (5 minutes by default). A room with anyone else in it
// is left alone: the name may belong to a later session of the call (dialed
// again after an attempt that never left the dialer), and deleting by name
// would end it.
func (c *call) closeGhostRoom(ctx context.Context) {
	me := c.room.LocalParticipant.Identity()
	c.room.Disconnect()
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	res, err := c.s.rooms.ListParticipants(dctx, &livekit.ListParticipantsRequest{Room: c.roomName})
	if err != nil {
		c.log.Warn("agent: list the participants of the room its join created", "err", err)
		return
	}
	for _, p := range res.GetParticipants() {
		if p.GetIdentity() != me {
			return
		}
	}
	if _, err := c.s.rooms.DeleteRoom(dctx, &livekit.DeleteRoomRequest{Room: c.roomName}); err != nil {
		c.log.Warn("agent: delete the room its join created", "err", err)
	}
}

// emit hands an SDK callback's news to the call's goroutine; after the call
// ended there is nobody to tell.
func (c *call) emit(ev callEvent) {
	select {
	case c.events <- ev:
	case <-c.done:
	}
}

// countAudio reads the callee's audio for as long as it flows. The agent
// does not decode it: how much arrives, and when, is what detection uses.
func (c *call) countAudio(t *webrtc.TrackRemote) {
	for {
		p, _, err := t.ReadRTP()
		if err != nil {
			return
		}
		if !phonesim.IsSound(p.Payload) {
			continue
		}
		c.calleePackets.Add(1)
		c.lastPacket.Store(time.Now().UnixNano())
	}
}

// callee is the participant being called: the SIP participant, or else a
// person who joined from a browser (dev), never another agent.
func (c *call) callee() lksdk.Participant {
	var standard lksdk.Participant
	for _, p := range c.room.GetRemoteParticipants() {
		switch p.Kind() {
		case lksdk.ParticipantSIP:
			return p
		case lksdk.ParticipantStandard:
			if standard == nil {
				standard = p
			}
		}
	}
	return standard
}

// answered: a SIP participant is in the room while its phone rings, and its
// sip.callStatus turns "active" on the answer (livekit/sip). A participant
// without one joined by itself, which is its answer.
func answered(p lksdk.Participant) bool {
	st, ok := p.Attributes()[livekit.AttrSIPCallStatus]
	return !ok || st == "active"
}

// waitAnswer waits for the callee to answer. false: the call ended first
// (it was not answered, the room closed, the job ended), and the agent has
// nothing to say or report: the dialer knows a call that never connected
// from its SIP status.
func (c *call) waitAnswer(ctx context.Context) (identity string, at time.Time, ok bool) {
	timeout := time.NewTimer(c.s.cfg.AnswerTimeout)
	defer timeout.Stop()
	for {
		if p := c.callee(); p != nil && answered(p) {
			c.log.Info("agent: callee answered", "callee", p.Identity(), "sip_call_status", p.Attributes()[livekit.AttrSIPCallStatus])
			return p.Identity(), time.Now(), true
		}
		select {
		case <-ctx.Done():
			return "", time.Time{}, false
		case <-timeout.C:
			c.log.Info("agent: callee never answered; leaving")
			return "", time.Time{}, false
		case ev := <-c.events:
			if ev.kind == evRoomClosed {
				return "", time.Time{}, false
			}
		}
	}
}

// converse greets the callee, decides who answered and follows through.
func (c *call) converse(ctx context.Context, calleeID string, answeredAt time.Time) {
	tmpl := c.settings.Greeting
	if tmpl == "" {
		tmpl = defaultGreeting
	}
	greeting := render(tmpl, c.vars)
	c.addLine(schemas.RoleAgent, greeting, answeredAt)
	greetingDone := make(chan struct{})
	go func() {
		defer close(greetingDone)
		c.say(ctx, greeting, greetingClip, func() {
			c.s.m.answerToVoice.Observe(time.Since(answeredAt).Seconds())
		})
	}()

	det := detector{listen: c.s.cfg.ListenTimeout, machineSpeech: c.s.cfg.MachineSpeech}
	var h heard
	var verdict schemas.AnsweredBy
	gone := false
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	greetingEnd := greetingDone
	for verdict == "" {
		select {
		case <-ctx.Done():
			return
		case <-greetingEnd:
			h.greetingEnded, greetingEnd = time.Now(), nil
		case ev := <-c.events:
			switch {
			case ev.kind == evText && ev.identity == calleeID:
				c.addLine(schemas.RoleUser, ev.text, ev.at)
				if h.reply == "" {
					h.reply = ev.text
				}
			case ev.kind == evLeft && ev.identity == calleeID, ev.kind == evRoomClosed:
				gone = true
			}
		case <-tick.C:
		}
		h.audio = time.Duration(c.calleePackets.Load()) * calleeFrame
		if gone {
			verdict = det.final(h)
		} else if v, ok := det.decide(h, time.Now()); ok {
			verdict = v
		}
	}
	c.s.m.answeredBy.WithLabelValues(string(verdict)).Inc()
	c.log.Info("agent: answered by", "answered_by", verdict, "callee_audio", h.audio, "replied", h.reply != "")
	c.reports.send(schemas.AgentReport{Type: schemas.ReportTypeAnsweredBy, AnsweredBy: verdict})

	if gone {
		c.result(dispHungUp, "The callee hung up before the conversation ended.")
		return
	}
	switch verdict {
	case schemas.AnsweredByHuman:
		if c.settings.TransferTo != "" && wantsTransfer(h.reply) {
			c.transfer(ctx, calleeID)
			return
		}
		c.waitFor(ctx, greetingDone)
		c.addLine(schemas.RoleAgent, lineGoodbye, time.Now())
		c.say(ctx, lineGoodbye, nil, nil)
		if c.waitLeft(ctx, calleeID, c.s.cfg.HangupGrace) {
			c.result(dispConversation, "Greeted the callee, who replied and hung up.")
			return
		}
		c.result(dispConversation, "Greeted the callee, who replied; the agent hung up.")
		c.hangup(ctx, "conversation over")
	case schemas.AnsweredByMachine:
		if c.settings.OnMachine != schemas.OnMachineContinue {
			c.result(dispVoicemail, "A machine answered; the agent hung up (on_machine: hangup).")
			c.hangup(ctx, "machine answered")
			return
		}
		c.waitFor(ctx, greetingDone)
		if !c.waitTone(ctx, calleeID) {
			c.result(dispHungUp, "A machine answered and hung up before the message.")
			return
		}
		c.addLine(schemas.RoleAgent, lineMessage, time.Now())
		c.say(ctx, lineMessage, messageClip, nil)
		c.result(dispMessageLeft, "A machine answered; the agent left its message (on_machine: continue).")
		c.hangup(ctx, "message left")
	default:
		c.result(dispNoResponse, "Nobody replied to the greeting.")
		c.hangup(ctx, "no response")
	}
}

// transfer asks Dialstream to move the callee to settings.transfer_to and
// waits for the callee to leave. Dialstream, not the agent, calls LiveKit's
// TransferSIPParticipant: it checks the destination like any number it
// dials, and records the outcome in order with the rest of the call.
func (c *call) transfer(ctx context.Context, calleeID string) {
	c.addLine(schemas.RoleAgent, lineTransfer, time.Now())
	c.say(ctx, lineTransfer, nil, nil)
	c.reports.send(schemas.AgentReport{Type: schemas.ReportTypeTransfer, Transfer: &schemas.ReportTransfer{To: c.settings.TransferTo}})
	if c.waitLeft(ctx, calleeID, c.s.cfg.TransferWait) {
		c.result(dispTransferred, "The callee asked for a person and was transferred.")
		return
	}
	c.result(dispConversation, "The callee asked for a person; the transfer did not happen in time.")
	c.hangup(ctx, "transfer did not happen")
}

// say speaks a line: the text as a final transcription segment on
// lk.transcription, and the clip, if any, on the voice track. It returns
// when the clip has played.
func (c *call) say(ctx context.Context, text string, audio *phonesim.OpusClip, firstFrame func()) {
	c.segment++
	c.room.LocalParticipant.SendText(text, lksdk.StreamTextOptions{
		Topic: topicTranscription,
		Attributes: map[string]string{
			"lk.transcription_final":  "true",
			"lk.segment_id":           "SG_" + c.callID + "_" + strconv.Itoa(c.segment),
			"lk.transcribed_track_id": c.voiceSID,
		},
	})
	if audio == nil {
		return
	}
	if err := audio.Play(ctx, nil, c.voice, firstFrame); err != nil && ctx.Err() == nil {
		c.log.Warn("agent: voice", "err", err)
	}
}

func (c *call) addLine(role, text string, at time.Time) {
	if len(c.transcript) < maxTranscript {
		c.transcript = append(c.transcript, schemas.TranscriptLine{Role: role, Text: schemas.Clip(text, 4096), At: at.UTC()})
	}
}

// waitFor waits for ch (the greeting to finish) or the call's end.
func (c *call) waitFor(ctx context.Context, ch <-chan struct{}) {
	select {
	case <-ch:
	case <-ctx.Done():
	}
}

// waitLeft waits up to d for the callee to leave; what it says meanwhile
// goes in the transcript. true: the callee left (or the room closed).
func (c *call) waitLeft(ctx context.Context, calleeID string, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return true
		case <-t.C:
			return false
		case ev := <-c.events:
			switch {
			case ev.kind == evText && ev.identity == calleeID:
				c.addLine(schemas.RoleUser, ev.text, ev.at)
			case ev.kind == evLeft && ev.identity == calleeID, ev.kind == evRoomClosed:
				return true
			}
		}
	}
}

// waitTone waits for the machine's greeting and tone to end: toneGap of
// callee silence, at most maxToneWait. false: the callee left first.
func (c *call) waitTone(ctx context.Context, calleeID string) bool {
	deadline := time.After(maxToneWait)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		if last := c.lastPacket.Load(); time.Since(time.Unix(0, last)) >= toneGap {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-deadline:
			return true
		case ev := <-c.events:
			if ev.kind == evLeft && ev.identity == calleeID || ev.kind == evRoomClosed {
				return false
			}
		case <-tick.C:
		}
	}
}

func (c *call) result(disposition, summary string) {
	c.reports.send(schemas.AgentReport{Type: schemas.ReportTypeResult, Result: &schemas.ReportResult{
		Disposition: disposition, Summary: summary, Transcript: c.transcript,
	}})
}

// hangupFlushWait bounds how long hangup waits for its report before it
// deletes the room anyway: a report held by an outage (ingest answering
// 503 while the broker is down) must not keep the callee on a silent line
// for the report's whole timeout. The report still goes on in the
// background; the call then ends as the room's end, not the agent's.
const hangupFlushWait = 5 * time.Second

// hangup ends the call: first the hangup report, delivered, then the room
// deleted. In that order Dialstream has the agent's word before LiveKit's
// room_finished, so it records ended_by agent rather than a callee who left.
func (c *call) hangup(ctx context.Context, reason string) {
	c.reports.send(schemas.AgentReport{Type: schemas.ReportTypeHangup, Hangup: &schemas.ReportHangup{Reason: reason}})
	if !c.reports.flushWithin(hangupFlushWait) {
		c.log.Warn("agent: hangup report not delivered yet; hanging up without it", "waited", hangupFlushWait)
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := c.s.rooms.DeleteRoom(dctx, &livekit.DeleteRoomRequest{Room: c.roomName}); err != nil {
		c.log.Warn("agent: hang up (delete room)", "err", err)
		return
	}
	c.log.Info("agent: hung up", "reason", reason)
}
