package dialer

import (
	"crypto/sha256"
	"encoding/json"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/registry"
	"github.com/dialstream/dialstream/schemas"
)

// callState is the dialer's record of one call, kept in memory by the owner
// of the call's partition and written to the compacted state topic after
// every transition (data of dialstream.dialer.state.v1).
type callState struct {
	CallID      string         `json:"call_id"`
	WorkspaceID string         `json:"workspace_id"`
	Phase       schemas.Status `json:"phase"`
	// Sequence is the sequence number of the last lifecycle event emitted.
	Sequence int `json:"sequence"`
	// AppliedOffset is the offset (in the call's partition of the requested
	// topic) of the last command applied: a command at or below it is a
	// replay and changes nothing.
	AppliedOffset int64 `json:"applied_offset"`

	To               string            `json:"to,omitempty"`
	CallAgentID      string            `json:"call_agent_id,omitempty"`
	RoomName         string            `json:"room_name,omitempty"`
	CallbackURL      string            `json:"callback_url,omitempty"`
	Metadata         json.RawMessage   `json:"metadata,omitempty"`
	DynamicVariables map[string]string `json:"dynamic_variables,omitempty"`
	RequestedAt      time.Time         `json:"requested_at,omitzero"`
	// Campaign is the campaign contact and attempt this call is (set by
	// the scheduler on the request); every event of the call carries it.
	Campaign *schemas.CampaignRef `json:"campaign,omitempty"`
	// Agent is the agent's configuration as it was when the call was
	// accepted, so a queued call dials with what was validated even if the
	// registry changes before a restart.
	Agent *agentSnapshot `json:"agent,omitempty"`

	QueuedAt   time.Time `json:"queued_at,omitzero"`
	DialingAt  time.Time `json:"dialing_at,omitzero"`
	RingingAt  time.Time `json:"ringing_at,omitzero"`
	AnsweredAt time.Time `json:"answered_at,omitzero"`
	EndedAt    time.Time `json:"ended_at,omitzero"`
	// SIPSendingAt is set once the current claim's dial recorded that its
	// SIP request was about to be sent (dialSending): without it, the claim
	// never rang anything. Redials counts the claims that never sent theirs.
	SIPSendingAt time.Time `json:"sip_sending_at,omitzero"`
	Redials      int       `json:"redials,omitempty"`

	Outcome             schemas.Outcome `json:"outcome,omitempty"`
	EndedBy             schemas.EndedBy `json:"ended_by,omitempty"`
	Reason              string          `json:"reason,omitempty"`
	SIPStatusCode       int             `json:"sip_status_code,omitempty"`
	SIPStatus           string          `json:"sip_status,omitempty"`
	DisconnectReason    string          `json:"disconnect_reason,omitempty"`
	ParticipantIdentity string          `json:"participant_identity,omitempty"`

	// The agent's reports (report.go): who answered, the ids of the reports
	// applied (a retried report is one event), and the number the agent
	// asked to transfer the callee to.
	AnsweredBy schemas.AnsweredBy `json:"answered_by,omitempty"`
	ReportIDs  []string           `json:"report_ids,omitempty"`
	TransferTo string             `json:"transfer_to,omitempty"`

	// TraceParent and TraceState are the call's W3C trace context: that of
	// the span that applied its request. No Kafka header outlives the
	// request record, so the state remembers it, and every record written
	// about the call later (lifecycle events, dial results, watchdog and
	// admission decisions) continues this trace, also after a restart.
	TraceParent string `json:"traceparent,omitempty"`
	TraceState  string `json:"tracestate,omitempty"`
}

type agentSnapshot struct {
	LiveKitAgentName       string         `json:"livekit_agent_name"`
	SIPTrunkID             string         `json:"sip_trunk_id"`
	CallerID               string         `json:"caller_id,omitempty"`
	RingingTimeoutSeconds  float64        `json:"ringing_timeout_seconds"`
	MaxCallDurationSeconds float64        `json:"max_call_duration_seconds"`
	Settings               map[string]any `json:"settings,omitempty"`
}

func snapshotAgent(a *registry.Agent) *agentSnapshot {
	return &agentSnapshot{
		LiveKitAgentName:       a.LiveKitAgentName,
		SIPTrunkID:             a.SIPTrunkID,
		CallerID:               a.CallerID,
		RingingTimeoutSeconds:  a.RingingTimeout.Seconds(),
		MaxCallDurationSeconds: a.MaxCallDuration.Seconds(),
		Settings:               a.Settings,
	}
}

func (a *agentSnapshot) ringingTimeout() time.Duration {
	return time.Duration(a.RingingTimeoutSeconds * float64(time.Second))
}

func (a *agentSnapshot) maxCallDuration() time.Duration {
	return time.Duration(a.MaxCallDurationSeconds * float64(time.Second))
}

func (s *callState) clone() *callState {
	c := *s
	c.ReportIDs = slices.Clone(s.ReportIDs)
	return &c
}

// live reports whether the call counts against its workspace's concurrency:
// from the durable claim (dialing) until it ends.
func (s *callState) live() bool {
	return s.Phase == schemas.StatusDialing || s.Phase == schemas.StatusRinging || s.Phase == schemas.StatusAnswered
}

// strip drops what an ended call no longer needs, so the thousands of ended
// calls kept for duplicate detection cost little memory and state. A call
// that was dialed keeps its callback URL and metadata: its agent may still
// report within the post-call window, and those events carry them. (Weighed
// and not taken: a second trim when the window closes. It would need a
// timer command per call to stay replayable, for memory the
// DIALER_ENDED_RETENTION bound already caps.)
func (s *callState) strip() {
	s.DynamicVariables, s.Agent = nil, nil
	if s.DialingAt.IsZero() {
		s.Metadata, s.CallbackURL = nil, ""
	}
}

// event builds the next lifecycle event of the call (the caller bumps the
// sequence).
func (s *callState) event(status schemas.Status, at time.Time) schemas.CallEvent {
	ev := schemas.CallEvent{
		CallID: s.CallID, WorkspaceID: s.WorkspaceID, Sequence: s.Sequence, Status: status,
		OccurredAt: at.UTC(), To: s.To, CallAgentID: s.CallAgentID, RoomName: s.RoomName,
		CallbackURL: s.CallbackURL, Metadata: s.Metadata,
	}
	if !s.RequestedAt.IsZero() {
		t := s.RequestedAt.UTC()
		ev.RequestedAt = &t
	}
	if c := s.Campaign; c != nil {
		ev.CampaignID, ev.ContactID, ev.Attempt = c.CampaignID, c.ContactID, c.Attempt
	}
	return ev
}

// stateRecord encodes the state for the state topic.
func stateRecord(s *callState, partition int32, now time.Time) (*kgo.Record, error) {
	r, err := schemas.NewRecord(schemas.TopicState, s.CallID, schemas.Meta{
		Type: TypeState, Source: ceSource, Subject: s.CallID, Time: now,
	}, s)
	if err != nil {
		return nil, err
	}
	r.Partition = partition
	return r, nil
}

// tombstoneRecord deletes a call from the compacted state topic.
func tombstoneRecord(callID string, partition int32) *kgo.Record {
	return &kgo.Record{Topic: schemas.TopicState, Key: []byte(callID), Partition: partition}
}

// roomNameFor derives the room name of a request that has none:
// <call_agent_id>-<10 [a-z0-9]>, from the call id so a replay derives the
// same one.
func roomNameFor(agentID, callID string) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	sum := sha256.Sum256([]byte("room:" + callID))
	b := make([]byte, 10)
	for i := range b {
		b[i] = alphabet[int(sum[i])%len(alphabet)]
	}
	return agentID + "-" + string(b)
}

// calleeIdentity is the LiveKit identity of a call's SIP participant. It
// names the call, never the number.
func calleeIdentity(callID string) string { return calleeIdentityPrefix + callID }
