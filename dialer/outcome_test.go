package dialer

import (
	"errors"
	"fmt"
	"testing"

	"github.com/livekit/protocol/livekit"
	"github.com/twitchtv/twirp"

	"github.com/dialstream/dialstream/schemas"
)

func TestOutcomeForSIP(t *testing.T) {
	cases := []struct {
		code int
		want schemas.Outcome
		by   schemas.EndedBy
	}{
		{486, schemas.OutcomeBusy, schemas.EndedByCallee},
		{600, schemas.OutcomeBusy, schemas.EndedByCallee},
		{480, schemas.OutcomeNoAnswer, schemas.EndedBySystem},
		{408, schemas.OutcomeNoAnswer, schemas.EndedBySystem},
		{487, schemas.OutcomeNoAnswer, schemas.EndedBySystem},
		{603, schemas.OutcomeDeclined, schemas.EndedByCallee},
		{607, schemas.OutcomeDeclined, schemas.EndedByCallee},
		{404, schemas.OutcomeFailed, schemas.EndedBySystem},
		{403, schemas.OutcomeFailed, schemas.EndedBySystem},
		{503, schemas.OutcomeFailed, schemas.EndedBySystem},
		{0, schemas.OutcomeFailed, schemas.EndedBySystem},
	}
	for _, c := range cases {
		if got := outcomeForSIP(c.code); got != c.want {
			t.Errorf("outcomeForSIP(%d) = %s, want %s", c.code, got, c.want)
		}
		if got := endedByForSIP(outcomeForSIP(c.code)); got != c.by {
			t.Errorf("endedBy(%d) = %s, want %s", c.code, got, c.by)
		}
	}
}

// The SIP code is read from LiveKit's error, however it is wrapped, and not
// from the twirp code around it.
func TestSIPStatusOfError(t *testing.T) {
	busy := &livekit.SIPStatus{Code: livekit.SIPStatusCode_SIP_STATUS_BUSY_HERE, Status: "Busy Here"}
	cases := []struct {
		name string
		err  error
		code int
		text string
	}{
		{"bare", busy, 486, "Busy Here"},
		{"wrapped", fmt.Errorf("create sip participant: %w", busy), 486, "Busy Here"},
		{"no text", &livekit.SIPStatus{Code: livekit.SIPStatusCode_SIP_STATUS_GLOBAL_DECLINE}, 603, livekit.SIPStatusCode_SIP_STATUS_GLOBAL_DECLINE.ShortName()},
		{"twirp unavailable", twirp.NewError(twirp.Unavailable, "no response from servers"), 0, ""},
		{"plain", errors.New("connection refused"), 0, ""},
	}
	for _, c := range cases {
		code, text := sipStatusOf(c.err)
		if code != c.code || text != c.text {
			t.Errorf("%s: got %d %q, want %d %q", c.name, code, text, c.code, c.text)
		}
	}
}

func TestEndedByForDisconnect(t *testing.T) {
	cases := map[livekit.DisconnectReason]schemas.EndedBy{
		livekit.DisconnectReason_CLIENT_INITIATED:    schemas.EndedByCallee,
		livekit.DisconnectReason_PARTICIPANT_REMOVED: schemas.EndedByAgent,
		livekit.DisconnectReason_ROOM_DELETED:        schemas.EndedByAgent,
		livekit.DisconnectReason_ROOM_CLOSED:         schemas.EndedBySystem,
		livekit.DisconnectReason_SIP_TRUNK_FAILURE:   schemas.EndedBySystem,
	}
	for r, want := range cases {
		if got := endedByForDisconnect(r.String()); got != want {
			t.Errorf("%s: got %s, want %s", r, got, want)
		}
	}
}

func TestSIPClass(t *testing.T) {
	for code, want := range map[int]string{200: "2xx", 486: "4xx", 503: "5xx", 603: "6xx", 0: "none", 99: "none"} {
		if got := sipClass(code); got != want {
			t.Errorf("sipClass(%d) = %s, want %s", code, got, want)
		}
	}
}
