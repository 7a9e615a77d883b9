package ingest

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/dialstream/dialstream/internal/obs"
	"github.com/dialstream/dialstream/schemas"
)

// The bodies of the call-state API. A fact has one name wherever it appears:
// the names of POST /v1/api/call's request (to, call_agent_id, callback_url,
// dynamic_variables, metadata) and answer (callId, roomName, jobId), and
// the lifecycle events' names for everything else (requested_at, outcome,
// sip_status_code, ...). Every success body carries "status":"success", as
// POST /v1/api/call's does; a call's own lifecycle status is inside "call".

// CallSummary is a call as GET /v1/api/calls lists it.
type CallSummary struct {
	CallID string `json:"callId"`
	// Status is the status of the call's latest lifecycle event; "queued"
	// before the first (the request is in Kafka, the dialer has not
	// answered yet).
	Status schemas.Status `json:"status"`
	// Outcome and the end facts below are set once the call ended, as the
	// ended event reported them.
	Outcome     schemas.Outcome `json:"outcome,omitempty"`
	To          string          `json:"to,omitempty"` // last 4 digits only when the workspace masks numbers
	CallAgentID string          `json:"call_agent_id,omitempty"`
	RoomName    string          `json:"roomName,omitempty"`
	// JobID is "<partition>-<offset>" of the call's request in
	// dialstream.calls.requested, when that record is within this replica's
	// retention.
	JobID       string `json:"jobId,omitempty"`
	CallbackURL string `json:"callback_url,omitempty"`
	// Sequence is the sequence number of the latest event, the agent's
	// reports included (0: none yet).
	Sequence int `json:"sequence"`
	// AnsweredBy is who answered, as the call's agent reported it
	// (human, machine, ivr, unknown), once it did.
	AnsweredBy schemas.AnsweredBy `json:"answered_by,omitempty"`

	RequestedAt time.Time `json:"requested_at,omitzero"`
	QueuedAt    time.Time `json:"queued_at,omitzero"`
	DialingAt   time.Time `json:"dialing_at,omitzero"`
	RingingAt   time.Time `json:"ringing_at,omitzero"`
	AnsweredAt  time.Time `json:"answered_at,omitzero"`
	EndedAt     time.Time `json:"ended_at,omitzero"`
	// CancelRequestedAt is when a cancel of the call was first requested.
	CancelRequestedAt time.Time `json:"cancel_requested_at,omitzero"`

	EndedBy             schemas.EndedBy      `json:"ended_by,omitempty"`
	Reason              string               `json:"reason,omitempty"`
	Errors              []schemas.FieldError `json:"errors,omitempty"`
	SIPStatusCode       int                  `json:"sip_status_code,omitempty"`
	SIPStatus           string               `json:"sip_status,omitempty"`
	DisconnectReason    string               `json:"disconnect_reason,omitempty"`
	RingDurationSeconds *float64             `json:"ring_duration_seconds,omitempty"`
	TalkDurationSeconds *float64             `json:"talk_duration_seconds,omitempty"`
}

// Call is a call as GET /v1/api/call/:callId shows it: the summary, the
// request's dynamic_variables and metadata, and its lifecycle events.
type Call struct {
	CallSummary
	DynamicVariables map[string]string `json:"dynamic_variables,omitempty"`
	Metadata         json.RawMessage   `json:"metadata,omitempty"`
	// Events are the call's lifecycle events in sequence order.
	Events []CallEventView `json:"events"`
}

// CallEventView is one lifecycle event. The routing facts every event
// repeats (to, callback_url, metadata) are on the call, not here.
type CallEventView struct {
	// ID is the event's CloudEvent id, the webhook-id of its deliveries.
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	Sequence   int             `json:"sequence"`
	Status     schemas.Status  `json:"status"`
	OccurredAt time.Time       `json:"occurred_at"`
	Outcome    schemas.Outcome `json:"outcome,omitempty"`

	EndedBy             schemas.EndedBy      `json:"ended_by,omitempty"`
	Reason              string               `json:"reason,omitempty"`
	Errors              []schemas.FieldError `json:"errors,omitempty"`
	SIPStatusCode       int                  `json:"sip_status_code,omitempty"`
	SIPStatus           string               `json:"sip_status,omitempty"`
	DisconnectReason    string               `json:"disconnect_reason,omitempty"`
	RingDurationSeconds *float64             `json:"ring_duration_seconds,omitempty"`
	TalkDurationSeconds *float64             `json:"talk_duration_seconds,omitempty"`

	// On agent_report events (and answered_by on ended): what the agent
	// reported, as it sent it, and when Dialstream accepted it.
	AnsweredBy       schemas.AnsweredBy   `json:"answered_by,omitempty"`
	Report           *schemas.AgentReport `json:"report,omitempty"`
	ReportReceivedAt *time.Time           `json:"report_received_at,omitempty"`
}

// CallEnvelope is the body of GET /v1/api/call/:callId.
type CallEnvelope struct {
	Status string `json:"status"` // "success"
	Call   Call   `json:"call"`
}

// CallList is the body of GET /v1/api/calls.
type CallList struct {
	Status string        `json:"status"` // "success"
	Calls  []CallSummary `json:"calls"`
	// NextCursor fetches the next page (cursor=...); absent on the last.
	NextCursor string `json:"next_cursor,omitempty"`
}

// CancelResponse is the body of an accepted cancel.
type CancelResponse struct {
	Status  string `json:"status"` // "success"
	Message string `json:"message"`
	// Call is the call as it stood when the cancel was written; the dialer
	// ends it (outcome canceled) when it reads the cancel.
	Call Call `json:"call"`
}

// Delivery is one webhook delivery attempt of one of the call's events.
type Delivery struct {
	EventID     string         `json:"event_id"` // the webhook-id
	EventType   string         `json:"event_type"`
	Sequence    int            `json:"sequence"`
	EventStatus schemas.Status `json:"event_status,omitempty"`
	Attempt     int            `json:"attempt"`
	MaxAttempts int            `json:"max_attempts"`
	// Redelivery: the attempt was asked for by redeliver (or an operator),
	// with a fresh retry budget.
	Redelivery      bool                  `json:"redelivery"`
	URL             string                `json:"url"`
	AttemptedAt     time.Time             `json:"attempted_at"`
	DurationSeconds float64               `json:"duration_seconds"`
	StatusCode      int                   `json:"status_code,omitempty"`
	Error           string                `json:"error,omitempty"`
	Result          schemas.WebhookResult `json:"result"`
	NextAttemptAt   *time.Time            `json:"next_attempt_at,omitempty"`
}

// DeliveryList is the body of GET /v1/api/call/:callId/deliveries.
type DeliveryList struct {
	Status     string     `json:"status"` // "success"
	CallID     string     `json:"callId"`
	Deliveries []Delivery `json:"deliveries"`
}

// RedeliveredEvent names an event sent again.
type RedeliveredEvent struct {
	EventID     string         `json:"event_id"`
	EventType   string         `json:"event_type"`
	Sequence    int            `json:"sequence"`
	EventStatus schemas.Status `json:"event_status"`
}

// RedeliverResponse is the body of an accepted redeliver.
type RedeliverResponse struct {
	Status  string             `json:"status"` // "success"
	Message string             `json:"message"`
	CallID  string             `json:"callId"`
	Events  []RedeliveredEvent `json:"events"`
}

// summary builds a call's summary; mask keeps the last 4 digits of `to`.
// Facts come from the request when it is known, else from the latest event
// (a call whose request is older than the retention bound on start).
func (c *callRec) summary(mask bool) CallSummary {
	var latest *schemas.CallEvent
	for i := len(c.events) - 1; i >= 0; i-- {
		if c.events[i].status.Lifecycle() {
			if ev, err := c.events[i].decode(); err == nil {
				latest = &ev
			}
			break
		}
	}
	return c.summaryWith(mask, latest)
}

// summaryWith is summary for a caller that already decoded the latest
// lifecycle event, the agent's reports passed over (nil when there is none
// or it does not decode).
func (c *callRec) summaryWith(mask bool, latest *schemas.CallEvent) CallSummary {
	s := CallSummary{CallID: c.id, Status: c.status(), Outcome: c.outcome, CancelRequestedAt: c.cancelAt}
	for i := range c.events {
		e := &c.events[i]
		s.Sequence = e.seq
		switch e.status {
		case schemas.StatusQueued:
			s.QueuedAt = e.at
		case schemas.StatusDialing:
			s.DialingAt = e.at
		case schemas.StatusRinging:
			s.RingingAt = e.at
		case schemas.StatusAnswered:
			s.AnsweredAt = e.at
		case schemas.StatusEnded:
			s.EndedAt = e.at
		}
	}
	if r := c.req; r != nil {
		s.To, s.CallAgentID, s.RoomName, s.CallbackURL = r.req.To, r.req.CallAgentID, r.req.RoomName, r.req.CallbackURL
		s.RequestedAt = r.req.RequestedAt.UTC()
		s.JobID = jobID(r.partition, r.offset)
	} else if latest != nil {
		s.To, s.CallAgentID, s.RoomName, s.CallbackURL = latest.To, latest.CallAgentID, latest.RoomName, latest.CallbackURL
		if latest.RequestedAt != nil {
			s.RequestedAt = latest.RequestedAt.UTC()
		}
	}
	if latest != nil && latest.Status == schemas.StatusEnded {
		s.AnsweredBy = latest.AnsweredBy
		s.EndedBy, s.Reason, s.Errors = latest.EndedBy, latest.Reason, latest.Errors
		s.SIPStatusCode, s.SIPStatus, s.DisconnectReason = latest.SIPStatusCode, latest.SIPStatus, latest.DisconnectReason
		s.RingDurationSeconds, s.TalkDurationSeconds = latest.RingDurationSeconds, latest.TalkDurationSeconds
	}
	if mask && s.To != "" {
		s.To = obs.MaskPhone(s.To)
	}
	return s
}

// full builds the whole call, decoding each event once.
func (c *callRec) full(mask bool) Call {
	out := Call{Events: make([]CallEventView, 0, len(c.events))}
	if r := c.req; r != nil {
		out.DynamicVariables, out.Metadata = r.req.DynamicVariables, r.req.Metadata
	}
	var latest *schemas.CallEvent
	var answeredBy schemas.AnsweredBy
	for i := range c.events {
		e := &c.events[i]
		v := CallEventView{ID: e.id, Type: eventTypes[e.status], Sequence: e.seq, Status: e.status, OccurredAt: e.at.UTC()}
		ev, err := e.decode()
		if e.status.Lifecycle() {
			latest = nil
		}
		if err == nil && e.status == schemas.StatusAgentReport {
			v.AnsweredBy, v.Report, v.ReportReceivedAt = ev.AnsweredBy, ev.Report, ev.ReportReceivedAt
			if ev.AnsweredBy != "" {
				answeredBy = ev.AnsweredBy
			}
		} else if err == nil {
			latest = &ev
			v.AnsweredBy = ev.AnsweredBy
			if c.req == nil && len(ev.Metadata) > 0 {
				out.Metadata = ev.Metadata
			}
			v.Outcome, v.EndedBy, v.Reason, v.Errors = ev.Outcome, ev.EndedBy, ev.Reason, ev.Errors
			v.SIPStatusCode, v.SIPStatus, v.DisconnectReason = ev.SIPStatusCode, ev.SIPStatus, ev.DisconnectReason
			v.RingDurationSeconds, v.TalkDurationSeconds = ev.RingDurationSeconds, ev.TalkDurationSeconds
		}
		out.Events = append(out.Events, v)
	}
	out.CallSummary = c.summaryWith(mask, latest)
	if out.AnsweredBy == "" {
		out.AnsweredBy = answeredBy
	}
	return out
}

// deliveries lists the call's webhook attempts in log order.
func (c *callRec) deliveryViews() []Delivery {
	out := make([]Delivery, 0, len(c.deliveries))
	for _, a := range c.deliveries {
		out = append(out, Delivery{
			EventID: a.EventID, EventType: a.EventType, Sequence: a.Sequence, EventStatus: statusOfType(a.EventType),
			Attempt: a.Attempt, MaxAttempts: a.MaxAttempts, Redelivery: a.Redelivery, URL: a.URL,
			AttemptedAt: a.AttemptedAt.UTC(), DurationSeconds: a.DurationSeconds, StatusCode: a.StatusCode,
			Error: a.Error, Result: a.Result, NextAttemptAt: a.NextAttemptAt,
		})
	}
	return out
}

// statusOfType maps "dialstream.call.<status>.v1" to its status.
func statusOfType(t string) schemas.Status {
	for s, typ := range eventTypes {
		if typ == t {
			return s
		}
	}
	return ""
}

func jobID(partition int32, offset int64) string {
	return strconv.Itoa(int(partition)) + "-" + strconv.FormatInt(offset, 10)
}
