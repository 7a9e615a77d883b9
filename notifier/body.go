package notifier

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"

	"github.com/dialstream/dialstream/internal/obs"
	"github.com/dialstream/dialstream/schemas"
)

// Payload is the JSON body of every webhook, in the Standard Webhooks shape
// (type, timestamp, data):
//
//	{
//	  "type": "call.ended",
//	  "timestamp": "2026-11-26T10:04:31.5Z",
//	  "data": {
//	    "event_id": "f9e8d7c6b5a4f3e2d1c0b9a8-5",
//	    "call_id": "f9e8d7c6b5a4f3e2d1c0b9a8",
//	    "workspace_id": "ws_demo",
//	    "sequence": 5,
//	    "status": "ended",
//	    "occurred_at": "2026-11-26T10:04:31.5Z",
//	    "requested_at": "2026-11-26T10:03:58Z",
//	    "to": "+15550100001",
//	    "call_agent_id": "a1b2c3d4e5f6a7b8c9d0e1f2",
//	    "room_name": "a1b2c3d4e5f6a7b8c9d0e1f2-x7k2m9p4q1",
//	    "outcome": "completed",
//	    "ended_by": "callee",
//	    "sip_status_code": 200,
//	    "ring_duration_seconds": 4.2,
//	    "talk_duration_seconds": 27.9,
//	    "metadata": {"order": 1234}
//	  }
//	}
//
// type is "call." + the status (queued, dialing, ringing, answered, ended),
// or "call.agent_report" for a report the call's agent sent (the webhook
// triggered by the agent: data.report is the report as the agent sent it,
// data.metadata the request's, as on every event);
// timestamp is when the lifecycle event happened, not when this attempt was
// made (that is the webhook-timestamp header). data.event_id equals the
// webhook-id header. The end-only fields (outcome, reason, errors,
// sip_status_code, sip_status, disconnect_reason, ended_by, ring and talk
// durations) appear on call.ended only, and only when known. metadata is the
// call request's metadata object exactly as the client sent it (same keys,
// order and number spelling), and absent when the request had none. `to` is
// masked to its last 4 digits for workspaces with mask_phone_numbers. The body
// of one event is the same on every attempt.
type Payload struct {
	Type      string      `json:"type"`
	Timestamp time.Time   `json:"timestamp"`
	Data      PayloadData `json:"data"`
}

// PayloadData is the data of a Payload.
type PayloadData struct {
	EventID     string         `json:"event_id"`
	CallID      string         `json:"call_id"`
	WorkspaceID string         `json:"workspace_id"`
	Sequence    int            `json:"sequence"`
	Status      schemas.Status `json:"status"`
	OccurredAt  time.Time      `json:"occurred_at"`
	RequestedAt *time.Time     `json:"requested_at,omitempty"`
	To          string         `json:"to,omitempty"`
	CallAgentID string         `json:"call_agent_id,omitempty"`
	RoomName    string         `json:"room_name,omitempty"`

	Outcome             schemas.Outcome      `json:"outcome,omitempty"`
	Reason              string               `json:"reason,omitempty"`
	Errors              []schemas.FieldError `json:"errors,omitempty"`
	SIPStatusCode       int                  `json:"sip_status_code,omitempty"`
	SIPStatus           string               `json:"sip_status,omitempty"`
	DisconnectReason    string               `json:"disconnect_reason,omitempty"`
	EndedBy             schemas.EndedBy      `json:"ended_by,omitempty"`
	RingDurationSeconds *float64             `json:"ring_duration_seconds,omitempty"`
	TalkDurationSeconds *float64             `json:"talk_duration_seconds,omitempty"`

	// On call.agent_report (and answered_by on call.ended): what the call's
	// agent reported, as it sent it, and when Dialstream accepted it.
	AnsweredBy       schemas.AnsweredBy   `json:"answered_by,omitempty"`
	Report           *schemas.AgentReport `json:"report,omitempty"`
	ReportReceivedAt *time.Time           `json:"report_received_at,omitempty"`

	// On every event of a campaign call: the campaign, the contact and
	// which attempt at the contact the call is.
	CampaignID string `json:"campaign_id,omitempty"`
	ContactID  string `json:"contact_id,omitempty"`
	Attempt    int    `json:"attempt,omitempty"`

	Metadata json.RawMessage `json:"metadata,omitempty"`
}

// webhookType maps "dialstream.call.ended.v1" to "call.ended".
func webhookType(ceType string, status schemas.Status) string {
	if t, ok := strings.CutPrefix(ceType, "dialstream."); ok {
		if t, ok := strings.CutSuffix(t, ".v1"); ok {
			return t
		}
	}
	return "call." + string(status)
}

// buildBody renders the webhook body of one lifecycle event.
func buildBody(eventID, ceType string, ev *schemas.CallEvent, maskPhone bool) ([]byte, error) {
	to := ev.To
	if maskPhone && to != "" {
		to = obs.MaskPhone(to)
	}
	p := Payload{
		Type:      webhookType(ceType, ev.Status),
		Timestamp: ev.OccurredAt,
		Data: PayloadData{
			EventID: eventID, CallID: ev.CallID, WorkspaceID: ev.WorkspaceID, Sequence: ev.Sequence,
			Status: ev.Status, OccurredAt: ev.OccurredAt, RequestedAt: ev.RequestedAt, To: to,
			CallAgentID: ev.CallAgentID, RoomName: ev.RoomName,
			Outcome: ev.Outcome, Reason: ev.Reason, Errors: ev.Errors, SIPStatusCode: ev.SIPStatusCode,
			SIPStatus: ev.SIPStatus, DisconnectReason: ev.DisconnectReason, EndedBy: ev.EndedBy,
			RingDurationSeconds: ev.RingDurationSeconds, TalkDurationSeconds: ev.TalkDurationSeconds,
			AnsweredBy: ev.AnsweredBy, Report: ev.Report, ReportReceivedAt: ev.ReportReceivedAt,
			CampaignID: ev.CampaignID, ContactID: ev.ContactID, Attempt: ev.Attempt,
			Metadata: ev.Metadata,
		},
	}
	return encodeBody(p)
}

// encodeBody is JSON without HTML escaping: json.Marshal would rewrite "<"
// in the client's metadata strings (and a campaign's name) as \u003c, and
// they must arrive as they were sent.
func encodeBody(p any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(p); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// CampaignPayload is the body of a campaign webhook (campaign.started,
// .paused, .resumed, .completed, .canceled), in the same Standard Webhooks
// shape:
//
//	{
//	  "type": "campaign.completed",
//	  "timestamp": "2026-12-07T16:02:11Z",
//	  "data": {
//	    "event_id": "0123456789abcdef01234567-c3",
//	    "campaign_id": "0123456789abcdef01234567",
//	    "workspace_id": "ws_demo",
//	    "sequence": 3,
//	    "event": "completed",
//	    "status": "completed",
//	    "occurred_at": "2026-12-07T16:02:11Z",
//	    "name": "renewals",
//	    "call_agent_id": "a1b2c3d4e5f6a7b8c9d0e1f2",
//	    "counters": {"contacts": 200, "attempts": 263, "by_state": {"done": 200}, "by_outcome": {"completed": 151, "busy": 20, ...}}
//	  }
//	}
//
// sequence counts the campaign's own events (1, 2, 3...), apart from its
// calls'; event_id (the webhook-id) is "<campaign_id>-c<sequence>".
type CampaignPayload struct {
	Type      string              `json:"type"`
	Timestamp time.Time           `json:"timestamp"`
	Data      CampaignPayloadData `json:"data"`
}

// CampaignPayloadData is the data of a CampaignPayload.
type CampaignPayloadData struct {
	EventID     string                   `json:"event_id"`
	CampaignID  string                   `json:"campaign_id"`
	WorkspaceID string                   `json:"workspace_id"`
	Sequence    int                      `json:"sequence"`
	Event       schemas.CampaignEvent    `json:"event"`
	Status      schemas.CampaignStatus   `json:"status"`
	OccurredAt  time.Time                `json:"occurred_at"`
	Name        string                   `json:"name"`
	CallAgentID string                   `json:"call_agent_id,omitempty"`
	Counters    schemas.CampaignCounters `json:"counters"`
}

// buildCampaignBody renders the webhook body of one campaign event.
func buildCampaignBody(eventID, ceType string, ev *schemas.CampaignEventData) ([]byte, error) {
	p := CampaignPayload{
		Type:      webhookType(ceType, ""),
		Timestamp: ev.OccurredAt,
		Data: CampaignPayloadData{EventID: eventID, CampaignID: ev.CampaignID, WorkspaceID: ev.WorkspaceID,
			Sequence: ev.Sequence, Event: ev.Event, Status: ev.Status, OccurredAt: ev.OccurredAt, Name: ev.Name,
			CallAgentID: ev.CallAgentID, Counters: ev.Counters},
	}
	return encodeBody(p)
}
