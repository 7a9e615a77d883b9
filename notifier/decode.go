package notifier

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/schemas"
)

// decodeCallEvent is the fast path of parseJob for the lifecycle events the
// dialer writes: it decodes rec into ev and vouches for it without running
// the JSON Schema validator, which cost more CPU than the webhook's HTTP
// request (BenchmarkDecodeCallEvent). It vouches only for a record that
// schemas.Decode would accept with the same result: the headers
// schemas.NewRecord writes, and a value that is byte for byte the encoding
// of a call.event.v1 event that checkCallEvent accepts. For anything else
// (another type, an agent report, other spellings of the same JSON, an
// invalid event) it returns false, and parseJob runs schemas.Decode, so the
// schema file still decides every record it does not vouch for.
// FuzzDecodeCallEvent shows that parseJob comes to the same job either way.
func decodeCallEvent(rec *kgo.Record, ev *schemas.CallEvent) (*schemas.Event, bool) {
	h := make(map[string]string, len(rec.Headers))
	for _, kv := range rec.Headers {
		h[kv.Key] = string(kv.Value)
	}
	if h[schemas.HeaderSpecVersion] != schemas.SpecVersion || h[schemas.HeaderID] == "" || h[schemas.HeaderSource] == "" ||
		h[schemas.HeaderContentType] != schemas.ContentTypeJSON {
		return nil, false
	}
	typ := h[schemas.HeaderType]
	if s, _ := schemas.SchemaFor(typ); s != schemas.SchemaCallEvent || typ == schemas.TypeCallAgentReport {
		return nil, false
	}
	var t time.Time
	if ts := h[schemas.HeaderTime]; ts != "" {
		var err error
		if t, err = time.Parse(time.RFC3339Nano, ts); err != nil {
			return nil, false
		}
	}
	if json.Unmarshal(rec.Value, ev) != nil || !checkCallEvent(ev) {
		return nil, false
	}
	if b, err := encodeBody(ev); err != nil || !bytes.Equal(b, rec.Value) {
		return nil, false
	}
	return &schemas.Event{ID: h[schemas.HeaderID], Type: typ, Source: h[schemas.HeaderSource], Subject: h[schemas.HeaderSubject],
		Time: t, Schema: schemas.SchemaCallEvent, Data: rec.Value, Headers: h}, true
}

// checkCallEvent reports whether ev, encoded, satisfies call.event.v1, for
// every status but agent_report (whose report this does not check).
func checkCallEvent(ev *schemas.CallEvent) bool {
	maxLen := func(s string, n int) bool { return utf8.RuneCountInString(s) <= n }
	ended := ev.Status == schemas.StatusEnded
	switch {
	case !isCallID(ev.CallID), ev.WorkspaceID == "", !maxLen(ev.WorkspaceID, 64), ev.Sequence < 1,
		!oneOf(string(ev.Status), "queued", "dialing", "ringing", "answered", "ended"),
		!maxLen(ev.To, 32), !maxLen(ev.CallAgentID, 64), !maxLen(ev.RoomName, 128), !maxLen(ev.CallbackURL, 2048),
		len(ev.Metadata) > 0 && ev.Metadata[0] != '{',
		ended != (ev.Outcome != "") || ended != (ev.EndedBy != ""),
		ev.Outcome != "" && !oneOf(string(ev.Outcome), "completed", "busy", "no_answer", "declined", "failed", "canceled",
			"rejected", "expired", "max_duration", "voicemail", "transferred", "suppressed", "outside_calling_hours",
			"attempt_capped", "destination_not_allowed"),
		!maxLen(ev.Reason, 2048),
		ev.SIPStatusCode != 0 && (ev.SIPStatusCode < 100 || ev.SIPStatusCode > 699),
		!maxLen(ev.SIPStatus, 256), !maxLen(ev.DisconnectReason, 128),
		ev.EndedBy != "" && !oneOf(string(ev.EndedBy), "callee", "agent", "client", "dialer", "watchdog", "system"),
		ev.RingDurationSeconds != nil && !(*ev.RingDurationSeconds >= 0),
		ev.TalkDurationSeconds != nil && !(*ev.TalkDurationSeconds >= 0),
		ev.AnsweredBy != "" && !oneOf(string(ev.AnsweredBy), "human", "machine", "ivr", "unknown"),
		ev.Report != nil, ev.ReportReceivedAt != nil,
		ev.CampaignID != "" && !isCallID(ev.CampaignID),
		ev.ContactID != "" && !isContactID(ev.ContactID),
		ev.Attempt < 0:
		return false
	}
	return true
}

func oneOf(s string, set ...string) bool {
	for _, v := range set {
		if s == v {
			return true
		}
	}
	return false
}

// isContactID reports whether s matches ^[A-Za-z0-9_.:@+-]{1,128}$.
func isContactID(s string) bool {
	if len(s) < 1 || len(s) > 128 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("_.:@+-", c) >= 0) {
			return false
		}
	}
	return true
}
