package phonesim

import (
	"strings"

	"github.com/livekit/protocol/livekit"
)

// Numbers the simulator knows. They sit in the 555-01xx block that North
// American numbering reserves for fiction, so no script can ring a real phone
// even if a dev config leaks into a real trunk.
const (
	NumberAnswer   = "+15550100001" // rings, answers, hangs up after TalkDuration
	NumberNotFound = "+15550100404" // 404 Not Found at once
	NumberNoAnswer = "+15550100480" // rings until the ringing timeout, then 480
	NumberBusy     = "+15550100486" // 486 Busy Here at once
	NumberDecline  = "+15550100603" // rings for RingDuration, then 603 Decline
	NumberHold     = "+15550100999" // answers and stays until the room or max duration ends it

	// Callees for an agent to talk to.
	NumberHuman     = "+15550100200" // answers, replies to the agent's greeting with a line of text, hangs up after the agent's next line
	NumberSilent    = "+15550100204" // answers and never makes a sound; stays until the room or max duration ends it
	NumberVoicemail = "+15550100300" // answers with a recorded greeting and a tone, never replies, records until the room ends it
	NumberTransfer  = "+15550100302" // answers, asks the agent for a person, waits to be transferred
)

// Script is what the simulated callee does. Its values are the metric's
// `script` label, so the set is closed.
type Script string

const (
	ScriptAnswer   Script = "answer"
	ScriptNotFound Script = "not_found"
	ScriptNoAnswer Script = "no_answer"
	ScriptBusy     Script = "busy"
	ScriptDecline  Script = "decline"
	ScriptHold     Script = "hold"

	ScriptHuman     Script = "human"
	ScriptSilent    Script = "silent"
	ScriptVoicemail Script = "voicemail"
	ScriptTransfer  Script = "transfer"
)

// Scripts lists every script, for initialising metric labels.
var Scripts = []Script{ScriptAnswer, ScriptNotFound, ScriptNoAnswer, ScriptBusy, ScriptDecline, ScriptHold,
	ScriptHuman, ScriptSilent, ScriptVoicemail, ScriptTransfer}

var scriptByDigits = map[string]Script{
	digits(NumberAnswer):   ScriptAnswer,
	digits(NumberNotFound): ScriptNotFound,
	digits(NumberNoAnswer): ScriptNoAnswer,
	digits(NumberBusy):     ScriptBusy,
	digits(NumberDecline):  ScriptDecline,
	digits(NumberHold):     ScriptHold,

	digits(NumberHuman):     ScriptHuman,
	digits(NumberSilent):    ScriptSilent,
	digits(NumberVoicemail): ScriptVoicemail,
	digits(NumberTransfer):  ScriptTransfer,
}

// ScriptFor picks the script for a dialed number. Only digits count, so
// "+1 555-010-0486" and "15550100486" are busy too.
//
// Every number of the test range +1 555 01x xxxx behaves like the fixed
// number +1 555 010 0xxx with the same last three digits: "+1 555 011 3486"
// is busy, "+1 555 017 0300" a voicemail (the fixed numbers are the block's
// first row). A campaign refuses a number twice, so a test that needs 50 busy
// callees takes them from the block.
//
// Any other number answers like NumberAnswer: dev mode then behaves like a
// phone network where people pick up, and a test dialing an arbitrary
// number sees a complete call rather than an error it did not ask for. A
// test that needs a failure must dial the failure's number.
func ScriptFor(number string) Script {
	d := digits(number)
	if len(d) == len(blockPrefix)+5 && strings.HasPrefix(d, blockPrefix) && d[len(blockPrefix):len(blockPrefix)+2] != "00" {
		d = fixedPrefix + d[len(d)-3:]
	}
	if s, ok := scriptByDigits[d]; ok {
		return s
	}
	return ScriptAnswer
}

// blockPrefix starts the numbers that borrow a fixed number's script by its
// last three digits; fixedPrefix is what those fixed numbers share.
const blockPrefix, fixedPrefix = "155501", "15550100"

// rejection is the SIP final response a script ends with instead of 200 OK,
// and the disconnect reason the real livekit/sip bridge gives its
// participant for that response (pkg/sip/errors.go classifyInviteError).
type rejection struct {
	status *livekit.SIPStatus
	reason livekit.DisconnectReason
}

func rejectionFor(s Script) (rejection, bool) {
	switch s {
	case ScriptBusy:
		return rejection{sipStatus(livekit.SIPStatusCode_SIP_STATUS_BUSY_HERE, "Busy Here"), livekit.DisconnectReason_USER_REJECTED}, true
	case ScriptDecline:
		return rejection{sipStatus(livekit.SIPStatusCode_SIP_STATUS_GLOBAL_DECLINE, "Decline"), livekit.DisconnectReason_USER_REJECTED}, true
	case ScriptNotFound:
		return rejection{sipStatus(livekit.SIPStatusCode_SIP_STATUS_NOTFOUND, "Not Found"), livekit.DisconnectReason_USER_UNAVAILABLE}, true
	}
	return rejection{}, false
}

// noAnswer is the carrier's answer when nobody picks up before the ringing
// timeout. (livekit/sip itself ends such a call with a psrpc Canceled "sip
// request timed out" when its own timer fires first; carriers usually send
// 480 before that, and 480 is what the SDK caller can decode.)
func noAnswer() rejection {
	return rejection{
		status: sipStatus(livekit.SIPStatusCode_SIP_STATUS_TEMPORARILY_UNAVAILABLE, "Temporarily Unavailable"),
		reason: livekit.DisconnectReason_USER_UNAVAILABLE,
	}
}

func sipStatus(code livekit.SIPStatusCode, text string) *livekit.SIPStatus {
	return &livekit.SIPStatus{Code: code, Status: text}
}

// MaskNumber keeps the last 4 digits of a phone number for logs:
// "+15550100486" becomes "***0486".
func MaskNumber(number string) string {
	d := digits(number)
	if len(d) <= 4 {
		return "***"
	}
	return "***" + d[len(d)-4:]
}

func digits(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}
