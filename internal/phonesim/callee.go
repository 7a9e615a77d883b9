package phonesim

import (
	"context"
	"errors"
	"time"

	"github.com/livekit/protocol/livekit"
)

// What the scripted callees say.
const (
	humanReply    = "Yes, this is me. Thanks for calling."
	transferReply = "Could you transfer me to a person, please?"
	// voicemailRecord is how long a voicemail records after its tone before
	// it hangs up, as a carrier's voicemail does.
	voicemailRecord = 30 * time.Second
	// quietGap is the pause after which a listening callee takes its turn;
	// maxListen bounds how long it listens to one line.
	quietGap   = 600 * time.Millisecond
	maxListen  = 30 * time.Second
	listenPoll = 50 * time.Millisecond
)

// talk plays the answered call out as the script says, until the script
// hangs up, the room ends it (room deleted, participant removed), a transfer
// moves it away, or the call's context ends (max call duration, simulator
// closing). Meanwhile the call can be transferred.
func (c *call) talk() {
	defer c.endedNow()
	c.sim.trackAnswered(c)
	defer c.sim.untrackAnswered(c)

	switch c.script {
	case ScriptHold, ScriptSilent:
		c.wait(-1, false)
	case ScriptHuman:
		// A person hears the greeting out, answers it, listens to the
		// agent's next line and hangs up.
		if heard, ok := c.listen(); !ok {
			return
		} else if heard {
			c.say(humanReply)
			if _, ok := c.wait(c.sim.cfg.TalkDuration, true); !ok {
				return
			}
		}
		c.hangUp()
	case ScriptTransfer:
		heard, ok := c.listen()
		if !ok {
			return
		}
		if !heard {
			c.hangUp()
			return
		}
		c.say(transferReply)
		c.wait(-1, false)
	case ScriptVoicemail:
		go func() {
			if err := voicemailClip.Play(c.ctx, c.gone, c.voice, nil); err != nil && c.ctx.Err() == nil {
				c.log.Warn("voicemail greeting", "error", err)
			}
		}()
		if _, ok := c.wait(voicemailClip.Duration()+voicemailRecord, false); ok {
			c.hangUp()
		}
	default:
		if _, ok := c.wait(c.sim.cfg.TalkDuration, false); ok {
			c.hangUp()
		}
	}
}

// wait holds the line for d (negative: no limit) or, when lines is set,
// until the agent says something. It returns the agent's line ("" when d
// passed) and true; or false once the call has ended meanwhile, the callee
// out of the room.
func (c *call) wait(d time.Duration, lines bool) (string, bool) {
	var timeout <-chan time.Time
	if d >= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	var agent <-chan string
	if lines {
		agent = c.agentLines
	}
	select {
	case <-timeout:
		return "", true
	case line := <-agent:
		return line, true
	case <-c.gone:
		c.log.Info("call ended by the room", "reason", c.room.DisconnectReason().String())
	case to := <-c.transferTo:
		// The REFER succeeded: the call continues elsewhere, this leg ends.
		c.leave(livekit.DisconnectReason_CLIENT_INITIATED, statusHangup)
		c.log.Info("left the room after the transfer", "to", MaskNumber(to))
	case <-c.ctx.Done():
		c.leave(livekit.DisconnectReason_CLIENT_INITIATED, statusHangup)
		if errors.Is(c.ctx.Err(), context.DeadlineExceeded) {
			c.log.Info("max call duration reached, hung up")
		} else {
			c.log.Info("simulator closing, hung up")
		}
	}
	return "", false
}

// listen waits for the agent's first line and for its voice to stop, as a
// person waits for the caller to finish before answering. heard is false
// when nothing was said within TalkDuration; ok is false when the call
// ended meanwhile.
func (c *call) listen() (heard, ok bool) {
	line, ok := c.wait(c.sim.cfg.TalkDuration, true)
	if !ok || line == "" {
		return false, ok
	}
	// Quiet: no sound for quietGap (or none yet a quietGap after the line:
	// an agent that only sends text).
	since := time.Now()
	deadline := since.Add(maxListen)
	for {
		last := max(c.lastAgentAudio.Load(), since.UnixNano())
		if time.Since(time.Unix(0, last)) >= quietGap || time.Now().After(deadline) {
			return true, true
		}
		if _, ok := c.wait(listenPoll, false); !ok {
			return true, false
		}
	}
}

func (c *call) hangUp() {
	c.leave(livekit.DisconnectReason_CLIENT_INITIATED, statusHangup)
	c.log.Info("callee hung up")
}

// transfer hands a TransferSIPParticipant target to the call, once.
func (c *call) transfer(to string) bool {
	select {
	case c.transferTo <- to:
		c.sim.update(func() { c.rec.TransferredTo = to })
		return true
	default:
		return false
	}
}

// trackAnswered makes an answered call transferable: livekit-server sends
// TransferSIPParticipant on the topic of the participant's sip.callID, which
// is the request's SipCallId.
func (s *Sim) trackAnswered(c *call) {
	id := c.req.SipCallId
	if id == "" {
		return
	}
	s.mu.Lock()
	s.answered[id] = c
	s.mu.Unlock()
	if err := s.srv.RegisterTransferSIPParticipantTopic(id); err != nil {
		c.log.Warn("register for transfers", "error", err)
	}
}

func (s *Sim) untrackAnswered(c *call) {
	id := c.req.SipCallId
	if id == "" {
		return
	}
	s.srv.DeregisterTransferSIPParticipantTopic(id)
	s.mu.Lock()
	delete(s.answered, id)
	s.mu.Unlock()
}
