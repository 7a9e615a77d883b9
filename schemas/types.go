package schemas

import (
	"encoding/json"
	"time"
)

// Schema names, as the files are named (without ".schema.json").
const (
	SchemaCallRequested = "call.requested.v1"
	SchemaCallCancel    = "call.cancel.v1"
	SchemaCallEvent     = "call.event.v1"
)

// CloudEvent types (the ce_type header).
const (
	TypeCallRequested = "dialstream.call.requested.v1"
	TypeCallCancel    = "dialstream.call.cancel.v1"
	TypeCallQueued    = "dialstream.call.queued.v1"
	TypeCallDialing   = "dialstream.call.dialing.v1"
	TypeCallRinging   = "dialstream.call.ringing.v1"
	TypeCallAnswered  = "dialstream.call.answered.v1"
	TypeCallEnded     = "dialstream.call.ended.v1"
	// TypeCallAgentReport is an agent's report on the call (status
	// agent_report): the webhook triggered by the agent.
	TypeCallAgentReport = "dialstream.call.agent_report.v1"
	// TypeAgentReportReceived is the command ingest's report endpoint writes
	// for the dialer (agent.report.received.v1).
	TypeAgentReportReceived = "dialstream.agent.report.received.v1"
)

// SchemaAgentReportReceived is the schema of TypeAgentReportReceived.
const SchemaAgentReportReceived = "agent.report.received.v1"

// schemaForType maps a CloudEvent type to the schema its data must satisfy.
// Packages that add event types register them with RegisterType.
var schemaForType = map[string]string{
	TypeCallRequested: SchemaCallRequested,
	TypeCallCancel:    SchemaCallCancel,
	TypeCallQueued:    SchemaCallEvent,
	TypeCallDialing:   SchemaCallEvent,
	TypeCallRinging:   SchemaCallEvent,
	TypeCallAnswered:  SchemaCallEvent,
	TypeCallEnded:     SchemaCallEvent,

	TypeCallAgentReport:     SchemaCallEvent,
	TypeAgentReportReceived: SchemaAgentReportReceived,
}

// RegisterType binds a CloudEvent type to a schema file. Call it from an init
// function only: the map is not guarded for concurrent writes.
func RegisterType(ceType, schema string) {
	if _, ok := compiled[schema]; !ok {
		panic("schemas: RegisterType " + ceType + ": no schema file " + schema)
	}
	schemaForType[ceType] = schema
}

// SchemaFor returns the schema name for a CloudEvent type.
func SchemaFor(ceType string) (string, bool) {
	s, ok := schemaForType[ceType]
	return s, ok
}

// CallRequested is the data of a dialstream.call.requested.v1 event.
type CallRequested struct {
	CallID           string            `json:"call_id"`
	WorkspaceID      string            `json:"workspace_id"`
	To               string            `json:"to"`
	CallAgentID      string            `json:"call_agent_id"`
	RoomName         string            `json:"room_name,omitempty"`
	CallbackURL      string            `json:"callback_url,omitempty"`
	DynamicVariables map[string]string `json:"dynamic_variables,omitempty"`
	// Metadata is kept as the client's raw JSON so webhooks carry it exactly
	// as it was sent.
	Metadata       json.RawMessage `json:"metadata,omitempty"`
	IdempotencyKey string          `json:"idempotency_key,omitempty"`
	RequestedAt    time.Time       `json:"requested_at"`
	// Campaign is set on a campaign contact's call (by the scheduler).
	Campaign *CampaignRef `json:"campaign,omitempty"`
	// CanceledAt is set on a scheduled call canceled before its release:
	// the dialer ends it canceled without ringing.
	CanceledAt *time.Time `json:"canceled_at,omitempty"`
}

// CallCancel is the data of a dialstream.call.cancel.v1 command.
type CallCancel struct {
	CallID      string    `json:"call_id"`
	WorkspaceID string    `json:"workspace_id"`
	Reason      string    `json:"reason,omitempty"`
	RequestedAt time.Time `json:"requested_at"`
}

// Status is a call's lifecycle stage.
type Status string

const (
	StatusQueued   Status = "queued"
	StatusDialing  Status = "dialing"
	StatusRinging  Status = "ringing"
	StatusAnswered Status = "answered"
	StatusEnded    Status = "ended"
)

// StatusAgentReport is not a stage of the call: it is the status of the
// events that carry an agent's reports (TypeCallAgentReport). They take the
// call's next sequence like any event, but never change the call's status,
// and may follow ended (within the post-call window). Code that asks "what
// status is the call in" must pass over them (LifecycleStatus).
const StatusAgentReport Status = "agent_report"

// Statuses lists every status in lifecycle order (for metrics initialization).
var Statuses = []Status{StatusQueued, StatusDialing, StatusRinging, StatusAnswered, StatusEnded}

// EventStatuses is Statuses and StatusAgentReport: every status an event on
// dialstream.calls.events can have.
var EventStatuses = append(append([]Status(nil), Statuses...), StatusAgentReport)

// Lifecycle reports whether s is a stage of the call (not a report).
func (s Status) Lifecycle() bool { return s != StatusAgentReport }

// Type returns the CloudEvent type of a lifecycle event with this status.
func (s Status) Type() string { return "dialstream.call." + string(s) + ".v1" }

// Outcome is the normalized result on an ended event.
type Outcome string

const (
	OutcomeCompleted   Outcome = "completed"
	OutcomeBusy        Outcome = "busy"
	OutcomeNoAnswer    Outcome = "no_answer"
	OutcomeDeclined    Outcome = "declined"
	OutcomeFailed      Outcome = "failed"
	OutcomeCanceled    Outcome = "canceled"
	OutcomeRejected    Outcome = "rejected"
	OutcomeExpired     Outcome = "expired"
	OutcomeMaxDuration Outcome = "max_duration"
	// OutcomeVoicemail: a machine answered and the agent's on_machine policy
	// is hangup (issue 12).
	OutcomeVoicemail Outcome = "voicemail"
	// OutcomeTransferred: the agent transferred the callee elsewhere.
	OutcomeTransferred Outcome = "transferred"
	// The four compliance refusals at dial time (issue 14): the call is never
	// rung, and the event's reason names the rule.
	OutcomeSuppressed            Outcome = "suppressed"
	OutcomeOutsideCallingHours   Outcome = "outside_calling_hours"
	OutcomeAttemptCapped         Outcome = "attempt_capped"
	OutcomeDestinationNotAllowed Outcome = "destination_not_allowed"
)

// Outcomes lists the whole outcome vocabulary (for metrics initialization).
var Outcomes = []Outcome{OutcomeCompleted, OutcomeBusy, OutcomeNoAnswer, OutcomeDeclined,
	OutcomeFailed, OutcomeCanceled, OutcomeRejected, OutcomeExpired, OutcomeMaxDuration,
	OutcomeVoicemail, OutcomeTransferred, OutcomeSuppressed, OutcomeOutsideCallingHours,
	OutcomeAttemptCapped, OutcomeDestinationNotAllowed}

// EndedBy says who ended a call.
type EndedBy string

const (
	EndedByCallee   EndedBy = "callee"
	EndedByAgent    EndedBy = "agent"
	EndedByClient   EndedBy = "client"
	EndedByDialer   EndedBy = "dialer"
	EndedByWatchdog EndedBy = "watchdog"
	EndedBySystem   EndedBy = "system"
)

// CallEvent is the data of every lifecycle event (dialstream.call.<status>.v1).
// Each event repeats the call's routing facts (callback_url, metadata) so the
// notifier can deliver it without a lookup.
type CallEvent struct {
	CallID      string          `json:"call_id"`
	WorkspaceID string          `json:"workspace_id"`
	Sequence    int             `json:"sequence"`
	Status      Status          `json:"status"`
	OccurredAt  time.Time       `json:"occurred_at"`
	RequestedAt *time.Time      `json:"requested_at,omitempty"`
	To          string          `json:"to,omitempty"`
	CallAgentID string          `json:"call_agent_id,omitempty"`
	RoomName    string          `json:"room_name,omitempty"`
	CallbackURL string          `json:"callback_url,omitempty"`
	Metadata    json.RawMessage `json:"metadata,omitempty"`

	// Set on ended only.
	Outcome             Outcome      `json:"outcome,omitempty"`
	Reason              string       `json:"reason,omitempty"`
	Errors              []FieldError `json:"errors,omitempty"`
	SIPStatusCode       int          `json:"sip_status_code,omitempty"`
	SIPStatus           string       `json:"sip_status,omitempty"`
	DisconnectReason    string       `json:"disconnect_reason,omitempty"`
	EndedBy             EndedBy      `json:"ended_by,omitempty"`
	RingDurationSeconds *float64     `json:"ring_duration_seconds,omitempty"`
	TalkDurationSeconds *float64     `json:"talk_duration_seconds,omitempty"`

	// AnsweredBy is set on ended when the agent reported it, and on an
	// answered_by report.
	AnsweredBy AnsweredBy `json:"answered_by,omitempty"`
	// Set on agent_report only: the report as the agent sent it, and when
	// Dialstream accepted it.
	Report           *AgentReport `json:"report,omitempty"`
	ReportReceivedAt *time.Time   `json:"report_received_at,omitempty"`

	// Set on every event of a campaign call.
	CampaignID string `json:"campaign_id,omitempty"`
	ContactID  string `json:"contact_id,omitempty"`
	Attempt    int    `json:"attempt,omitempty"`
}

// AgentReportReceived is the data of a TypeAgentReportReceived command: a
// report that the report endpoint accepted for the call.
type AgentReportReceived struct {
	CallID      string      `json:"call_id"`
	WorkspaceID string      `json:"workspace_id"`
	ReceivedAt  time.Time   `json:"received_at"`
	Report      AgentReport `json:"report"`
}

// EventID is the CloudEvent id of a call's lifecycle event: stable for a given
// call and sequence, so a re-emitted event keeps its id and receivers (and the
// notifier's webhook-id) de-duplicate on it.
func EventID(callID string, sequence int) string {
	return callID + "-" + itoa(sequence)
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
