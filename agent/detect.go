package agent

import (
	"time"

	"github.com/dialstream/dialstream/schemas"
)

// heard is what the agent has heard from the callee since the answer.
type heard struct {
	// reply is the callee's first line (a text stream on lk.transcription or
	// lk.chat: what speech-to-text of the callee would give), "" until then.
	reply string
	// audio is how much callee sound arrived: Opus packets that carry sound
	// times the 20 ms a packet carries.
	audio time.Duration
	// greetingEnded is when the agent's own greeting finished; zero while
	// it plays.
	greetingEnded time.Time
}

// detector decides who answered (answering-machine detection) from what the
// callee does, as a pure function of what was heard and the time:
//
//   - it replied: a human (people answer a greeting);
//   - it played audio for MachineSpeech or longer without replying: a
//     machine (a voicemail greeting is long and talks over the caller; a
//     person says "hello?" and waits);
//   - neither, ListenTimeout after the agent's greeting ended: unknown
//     (silence: nobody there, or a person who said nothing).
//
// Weighed and not taken: deciding on audio energy or a beep detector. Both
// need decoding Opus (cgo, or a decoder this repository does not have), and
// the cue above is the one carrier AMD products lead with. The cost: a real
// SIP bridge sends the line's audio all the time, silence included, so
// counting packets tells a long greeting from silence only when the far end
// sends nothing while quiet (the phone simulator; DTX). A production agent
// measures speech with voice activity detection and speech-to-text, whose
// output is what the reply stands for here.
type detector struct {
	listen, machineSpeech time.Duration
}

// decide returns the verdict once there is one.
func (d detector) decide(h heard, now time.Time) (schemas.AnsweredBy, bool) {
	switch {
	case h.reply != "":
		return schemas.AnsweredByHuman, true
	case h.audio >= d.machineSpeech:
		return schemas.AnsweredByMachine, true
	case !h.greetingEnded.IsZero() && now.Sub(h.greetingEnded) >= d.listen:
		return schemas.AnsweredByUnknown, true
	}
	return "", false
}

// final is the verdict when the callee hangs up before decide had one: a
// reply or a long greeting still count; anything else is unknown.
func (d detector) final(h heard) schemas.AnsweredBy {
	if v, ok := d.decide(h, time.Time{}); ok && v != schemas.AnsweredByUnknown {
		return v
	}
	return schemas.AnsweredByUnknown
}
