package phonesim

import (
	"slices"
	"sort"
	"time"

	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/webrtc/v4"

	"github.com/dialstream/dialstream/schemas"
)

// Heard is what a callee received in the room: what a person on the phone
// would hear from the agent, and everything else the room showed it. Tests
// read it to prove what reached the callee, and what never did.
type Heard struct {
	// Greeting is the first text an agent participant sent on
	// lk.transcription: what the agent said first.
	Greeting string `json:"greeting,omitempty"`
	// Texts is every text received, from anyone, as "<topic>: <text>"
	// (text streams on lk.transcription and lk.chat, and data packets).
	Texts []string `json:"texts,omitempty"`
	// AudioPackets counts the agent's audio RTP packets after the answer.
	AudioPackets int `json:"audioPackets"`
	// EarlyAudioPackets counts agent audio that arrived before the answer,
	// which a person could not have heard; an agent should send none.
	EarlyAudioPackets int `json:"earlyAudioPackets,omitempty"`
	// FirstAudioAfterAnswerMs is the time from the answer to the first
	// agent audio packet, in milliseconds; absent until one arrives.
	FirstAudioAfterAnswerMs *float64 `json:"firstAudioAfterAnswerMs,omitempty"`
	// Seen is what the room showed the callee about the call: the room's
	// metadata and each other participant's name, metadata and attributes.
	Seen []string `json:"seen,omitempty"`
}

const (
	topicTranscription = "lk.transcription"
	topicChat          = "lk.chat"
	// Caps on what one call records, so a chatty agent cannot grow the
	// simulator without bound.
	maxTexts   = 200
	maxSeen    = 200
	maxTextLen = 4096
)

// hearCallbacks sets the room callbacks that record what the callee receives.
// Text handlers are registered on the room by listenForText.
func (c *call) hearCallbacks(cb *lksdk.RoomCallback) {
	cb.OnTrackSubscribed = func(t *webrtc.TrackRemote, _ *lksdk.RemoteTrackPublication, p *lksdk.RemoteParticipant) {
		// Not p.Kind() == agent: a track can arrive before the participant's
		// info, when its kind still reads standard. Another SIP participant
		// is the only other party a callee's room can hold.
		if t.Kind() == webrtc.RTPCodecTypeAudio && p.Kind() != lksdk.ParticipantSIP {
			go c.listenAudio(t)
		}
	}
	cb.OnDataPacket = func(data lksdk.DataPacket, params lksdk.DataReceiveParams) {
		if u, ok := data.(*lksdk.UserDataPacket); ok {
			c.heardText("data "+u.Topic, params.SenderIdentity, string(u.Payload))
		}
	}
	cb.OnParticipantConnected = func(p *lksdk.RemoteParticipant) { c.see(p) }
	cb.OnAttributesChanged = func(_ map[string]string, p lksdk.Participant) {
		if _, remote := p.(*lksdk.RemoteParticipant); remote {
			c.see(p)
		}
	}
	cb.OnMetadataChanged = func(_ string, p lksdk.Participant) {
		if _, remote := p.(*lksdk.RemoteParticipant); remote {
			c.see(p)
		}
	}
	cb.OnRoomMetadataChanged = func(m string) { c.seeStrings("room metadata: " + m) }
}

func (c *call) listenForText(room *lksdk.Room) {
	for _, topic := range []string{topicTranscription, topicChat} {
		_ = room.RegisterTextStreamHandler(topic, func(r *lksdk.TextStreamReader, identity string) {
			go c.heardText(topic, identity, r.ReadAll())
		})
	}
}

// heardText records a text and, when an agent sent it, hands it to the
// script (agentLines) so a callee can answer it.
func (c *call) heardText(topic, identity, text string) {
	// A sender the room has not introduced yet (its text can come before
	// its participant info) is taken for the agent, the only other party.
	fromAgent := true
	if p := c.room.GetParticipantByIdentity(identity); p != nil && p.Kind() == lksdk.ParticipantSIP {
		fromAgent = false
	}
	c.sim.update(func() {
		h := &c.rec.Heard
		if len(h.Texts) < maxTexts {
			h.Texts = append(h.Texts, topic+": "+schemas.Clip(text, maxTextLen))
		}
		if fromAgent && topic == topicTranscription && h.Greeting == "" {
			h.Greeting = schemas.Clip(text, maxTextLen)
		}
	})
	if fromAgent {
		select {
		case c.agentLines <- text:
		default:
		}
	}
}

// listenAudio counts the agent's audio packets as they arrive. Packets
// without sound are not the agent speaking and are skipped: livekit-server
// itself sends padding and Opus silence frames on a subscribed audio track
// before its publisher writes anything.
func (c *call) listenAudio(t *webrtc.TrackRemote) {
	for {
		p, _, err := t.ReadRTP()
		if err != nil {
			return
		}
		if !IsSound(p.Payload) {
			continue
		}
		now := time.Now()
		c.lastAgentAudio.Store(now.UnixNano())
		c.sim.update(func() {
			h := &c.rec.Heard
			if c.rec.AnsweredAt == nil {
				h.EarlyAudioPackets++
				return
			}
			h.AudioPackets++
			if h.FirstAudioAfterAnswerMs == nil {
				ms := float64(now.Sub(*c.rec.AnsweredAt).Microseconds()) / 1000
				h.FirstAudioAfterAnswerMs = &ms
			}
		})
	}
}

// see records what the room shows about a participant.
func (c *call) see(p lksdk.Participant) {
	seen := []string{"name: " + p.Name(), "metadata: " + p.Metadata()}
	attrs := p.Attributes()
	keys := make([]string, 0, len(attrs))
	for k := range attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		seen = append(seen, "attribute "+k+": "+attrs[k])
	}
	c.seeStrings(seen...)
}

func (c *call) seeStrings(ss ...string) {
	c.sim.update(func() {
		h := &c.rec.Heard
		for _, s := range ss {
			s = schemas.Clip(s, maxTextLen)
			if len(h.Seen) < maxSeen && !slices.Contains(h.Seen, s) {
				h.Seen = append(h.Seen, s)
			}
		}
	})
}

// seeRoom records what the callee sees on joining: the room's metadata and
// the participants already there.
func (c *call) seeRoom() {
	c.seeStrings("room metadata: " + c.room.Metadata())
	for _, p := range c.room.GetRemoteParticipants() {
		c.see(p)
	}
}

// answeredNow marks the answer in the record.
func (c *call) answeredNow() {
	now := time.Now().UTC()
	c.sim.update(func() { c.rec.AnsweredAt = &now })
}

// endedNow marks the end of the callee's side of the call.
func (c *call) endedNow() {
	now := time.Now().UTC()
	c.sim.update(func() {
		if c.rec.EndedAt == nil {
			c.rec.EndedAt = &now
		}
	})
}

// say records and sends a line the callee says, as a final transcription
// segment (what speech-to-text of the callee would publish).
func (c *call) say(text string) {
	c.sim.update(func() { c.rec.Said = append(c.rec.Said, text) })
	c.room.LocalParticipant.SendText(text, lksdk.StreamTextOptions{
		Topic:      topicTranscription,
		Attributes: map[string]string{"lk.transcription_final": "true"},
	})
}
