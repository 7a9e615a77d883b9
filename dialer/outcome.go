package dialer

import (
	"errors"

	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/twitchtv/twirp"

	"github.com/dialstream/dialstream/schemas"
)

// outcomeForSIP normalizes the SIP final response of a dial that was not
// answered. The outcome follows the SIP code, never the gRPC/twirp code the
// API wraps it in: "486 Busy Here" and "503 Service Unavailable" both arrive
// as twirp errors, and only the SIP code tells a busy callee from a broken
// trunk. code 0 means the dial failed before any SIP response (LiveKit or
// the SIP service unreachable, bad trunk).
func outcomeForSIP(code int) schemas.Outcome {
	switch code {
	case 486, 600: // Busy Here, Busy Everywhere
		return schemas.OutcomeBusy
	case 480, 408, 487: // Temporarily Unavailable (ring timeout), Request Timeout, Request Terminated
		return schemas.OutcomeNoAnswer
	case 603, 607: // Decline, Unwanted
		return schemas.OutcomeDeclined
	default:
		return schemas.OutcomeFailed
	}
}

// endedByForSIP says who ended an unanswered dial: the callee when it said
// no, the system when the network or a timeout did.
func endedByForSIP(o schemas.Outcome) schemas.EndedBy {
	switch o {
	case schemas.OutcomeBusy, schemas.OutcomeDeclined:
		return schemas.EndedByCallee
	default:
		return schemas.EndedBySystem
	}
}

// sipStatusOf extracts the SIP status LiveKit attached to an error, if any.
func sipStatusOf(err error) (code int, text string) {
	st := lksdk.SIPStatusFrom(err)
	if st == nil {
		return 0, ""
	}
	text = st.Status
	if text == "" {
		text = st.Code.ShortName()
	}
	return int(st.Code), text
}

// sipClass is the bounded metric label for a SIP code.
func sipClass(code int) string {
	switch {
	case code >= 200 && code < 300:
		return "2xx"
	case code >= 300 && code < 400:
		return "3xx"
	case code >= 400 && code < 500:
		return "4xx"
	case code >= 500 && code < 600:
		return "5xx"
	case code >= 600 && code < 700:
		return "6xx"
	default:
		return "none"
	}
}

var sipClasses = []string{"2xx", "3xx", "4xx", "5xx", "6xx", "none"}

// endedByForDisconnect says who ended an answered call from the reason
// LiveKit gives for its SIP participant leaving. A callee hanging up shows
// as CLIENT_INITIATED (the SIP bridge is the participant's client); an agent
// hangs up by removing the participant or deleting the room.
func endedByForDisconnect(reason string) schemas.EndedBy {
	switch reason {
	case livekit.DisconnectReason_CLIENT_INITIATED.String(),
		livekit.DisconnectReason_USER_REJECTED.String(),
		livekit.DisconnectReason_USER_UNAVAILABLE.String():
		return schemas.EndedByCallee
	case livekit.DisconnectReason_PARTICIPANT_REMOVED.String(),
		livekit.DisconnectReason_ROOM_DELETED.String(),
		livekit.DisconnectReason_AGENT_ERROR.String():
		return schemas.EndedByAgent
	default:
		return schemas.EndedBySystem
	}
}

// endedByForRoomEnd says who ended an answered call whose room finished
// before its SIP participant was reported leaving.
func endedByForRoomEnd(reason string) schemas.EndedBy {
	if reason == livekit.RoomEndReason_ROOM_END_API_DELETE.String() {
		return schemas.EndedByAgent
	}
	return schemas.EndedBySystem
}

// isUnhosted reports LiveKit's answer for a room that its store still lists
// but no running node hosts: a livekit-server that died leaves its rooms
// (and their participants) in Redis, and a request routed to such a room
// fails with the router's "could not find object" (twirp unknown), measured
// with livekit-server v1.13.5 killed and restarted. Nothing can be in such
// a room any more: deleting it has nothing left to hang up.
func isUnhosted(err error) bool {
	var te twirp.Error
	return errors.As(err, &te) && te.Code() == twirp.Unknown && te.Msg() == "could not find object"
}

// isNotFound reports a twirp not_found from the LiveKit API (a room that is
// already gone).
func isNotFound(err error) bool {
	var te twirp.Error
	return errors.As(err, &te) && te.Code() == twirp.NotFound
}
