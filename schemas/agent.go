package schemas

import (
	"encoding/json"
	"fmt"
	"time"
)

// The agent side of a call: what the dialer hands the agent in its LiveKit
// dispatch (agent.dispatch.v1) and what the agent reports back on the
// report channel that dispatch names (agent.report.v1).
const (
	SchemaAgentDispatch = "agent.dispatch.v1"
	SchemaAgentReport   = "agent.report.v1"
)

// AgentDispatch is the agent dispatch metadata: the JSON in
// CreateAgentDispatchRequest.Metadata, which the agent receives as its job's
// metadata. Build it with every field and send Encode's string.
//
// DynamicVariables feed the agent's context. Metadata is the request's
// object, kept as raw JSON so the agent can hand it back byte for byte; an
// agent must never say it or put it in a prompt (the request's owner was
// promised that).
type AgentDispatch struct {
	// Version is SchemaAgentDispatch; Encode sets it when empty.
	Version          string            `json:"version"`
	CallID           string            `json:"call_id"`
	WorkspaceID      string            `json:"workspace_id"`
	CallAgentID      string            `json:"call_agent_id"`
	Room             string            `json:"room"`
	To               string            `json:"to"`
	From             string            `json:"from,omitempty"`
	DynamicVariables map[string]string `json:"dynamic_variables"`
	Metadata         json.RawMessage   `json:"metadata,omitempty"`
	// Settings are the agent's settings from the registry, as they are;
	// AgentSettings reads the keys the schema defines.
	Settings map[string]any `json:"settings"`
	// Report is nil when the deployment has no report endpoint.
	Report *ReportChannel `json:"report,omitempty"`
}

// ReportChannel tells the agent where to POST its reports and with which
// bearer token. The token is scoped to the one call and expires at ExpiresAt
// (see MintReportToken).
type ReportChannel struct {
	URL       string    `json:"url"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// OnMachine is an agent's policy when a machine answers.
type OnMachine string

const (
	// OnMachineHangup hangs up as soon as the agent decides a machine
	// answered; the call ends with outcome voicemail. The default.
	OnMachineHangup OnMachine = "hangup"
	// OnMachineContinue leaves the message after the machine's tone, then
	// hangs up; the call ends with outcome completed.
	OnMachineContinue OnMachine = "continue"
)

// AgentSettings are the settings keys the dispatch schema defines. Any other
// key is the agent's own and is not read here.
type AgentSettings struct {
	// Greeting is what the agent says first, with {name} placeholders for
	// dynamic variables ("Hello {firstName}, ...").
	Greeting string `json:"greeting,omitempty"`
	// OnMachine is empty when the registry leaves it out; callers treat
	// that as OnMachineHangup.
	OnMachine OnMachine `json:"on_machine,omitempty"`
	// TransferTo is where the agent may ask Dialstream to transfer the
	// callee (E.164); empty means the agent never transfers.
	TransferTo string `json:"transfer_to,omitempty"`
}

// Encode validates the dispatch against agent.dispatch.v1 and returns the
// metadata string for CreateAgentDispatchRequest. Nil DynamicVariables and
// Settings are sent as empty objects: the schema requires both, so an agent
// never has to tell "absent" from "none".
func (d AgentDispatch) Encode() (string, error) {
	if d.Version == "" {
		d.Version = SchemaAgentDispatch
	}
	if d.DynamicVariables == nil {
		d.DynamicVariables = map[string]string{}
	}
	if d.Settings == nil {
		d.Settings = map[string]any{}
	}
	b, err := ValidateValue(SchemaAgentDispatch, d)
	if err != nil {
		return "", fmt.Errorf("agent dispatch for call %s: %w", d.CallID, err)
	}
	return string(b), nil
}

// DecodeAgentDispatch validates a job's metadata against agent.dispatch.v1
// and decodes it. The error is a *ValidationError naming every bad field.
func DecodeAgentDispatch(metadata string) (AgentDispatch, error) {
	var d AgentDispatch
	if err := Validate(SchemaAgentDispatch, []byte(metadata)); err != nil {
		return d, err
	}
	if err := json.Unmarshal([]byte(metadata), &d); err != nil {
		return d, fmt.Errorf("decode agent dispatch: %w", err)
	}
	return d, nil
}

// AgentSettings reads the schema's settings keys. The dispatch is assumed
// valid (DecodeAgentDispatch checked the keys' types), so a key of the wrong
// type cannot occur and is left at its zero value.
func (d AgentDispatch) AgentSettings() AgentSettings {
	var s AgentSettings
	if b, err := json.Marshal(d.Settings); err == nil {
		_ = json.Unmarshal(b, &s)
	}
	return s
}

// ReportType names what an agent report says.
type ReportType string

const (
	// ReportTypeAnsweredBy: who answered (AnsweredBy).
	ReportTypeAnsweredBy ReportType = "answered_by"
	// ReportTypeResult: the conversation's outcome, summary, data, transcript.
	ReportTypeResult ReportType = "result"
	// ReportTypeEvent: a custom named event with data.
	ReportTypeEvent ReportType = "event"
	// ReportTypeHangup: the agent ends the call; Dialstream records ended_by agent.
	ReportTypeHangup ReportType = "hangup"
	// ReportTypeTransfer: the agent asks Dialstream to move the callee to another
	// number; the call ends transferred.
	ReportTypeTransfer ReportType = "transfer"
)

// ReportTypes lists every report type (for metric labels).
var ReportTypes = []ReportType{ReportTypeAnsweredBy, ReportTypeResult, ReportTypeEvent, ReportTypeHangup, ReportTypeTransfer}

// AnsweredBy is who picked up, as the agent decided.
type AnsweredBy string

const (
	AnsweredByHuman   AnsweredBy = "human"
	AnsweredByMachine AnsweredBy = "machine"
	AnsweredByIVR     AnsweredBy = "ivr"
	AnsweredByUnknown AnsweredBy = "unknown"
)

// AnsweredByValues lists every value (for metric labels).
var AnsweredByValues = []AnsweredBy{AnsweredByHuman, AnsweredByMachine, AnsweredByIVR, AnsweredByUnknown}

// AgentReport is one report an agent POSTs to its report channel
// (agent.report.v1). The field Type names is set; the others are empty.
type AgentReport struct {
	// ID is the agent's id for this report, unique within the call: a
	// retried POST keeps it, and Dialstream turns one id into one event.
	ID         string          `json:"id"`
	Type       ReportType      `json:"type"`
	At         time.Time       `json:"at"`
	AnsweredBy AnsweredBy      `json:"answered_by,omitempty"`
	Result     *ReportResult   `json:"result,omitempty"`
	Event      *ReportEvent    `json:"event,omitempty"`
	Hangup     *ReportHangup   `json:"hangup,omitempty"`
	Transfer   *ReportTransfer `json:"transfer,omitempty"`
}

// ReportResult is the conversation's result. Data (here and in
// ReportEvent) stays raw JSON, so numbers and key order arrive at the webhook
// as the agent sent them.
type ReportResult struct {
	Disposition string           `json:"disposition,omitempty"`
	Summary     string           `json:"summary,omitempty"`
	Data        json.RawMessage  `json:"data,omitempty"`
	Transcript  []TranscriptLine `json:"transcript,omitempty"`
	OptOut      bool             `json:"opt_out,omitempty"`
}

// TranscriptLine is one utterance: Role is "agent" or "user" (the callee).
type TranscriptLine struct {
	Role string    `json:"role"`
	Text string    `json:"text"`
	At   time.Time `json:"at"`
}

// Transcript roles.
const (
	RoleAgent = "agent"
	RoleUser  = "user"
)

// ReportEvent is a custom event ("appointment_booked").
type ReportEvent struct {
	Name string          `json:"name"`
	Data json.RawMessage `json:"data,omitempty"`
}

// ReportHangup says why the agent hung up.
type ReportHangup struct {
	Reason string `json:"reason,omitempty"`
}

// ReportTransfer names the number to move the callee to.
type ReportTransfer struct {
	To string `json:"to"`
}

// Encode validates the report against agent.report.v1 and returns its JSON.
func (r AgentReport) Encode() ([]byte, error) {
	b, err := ValidateValue(SchemaAgentReport, r)
	if err != nil {
		return nil, fmt.Errorf("agent report %s: %w", r.ID, err)
	}
	return b, nil
}

// DecodeAgentReport validates a report body and decodes it. The error is a
// *ValidationError naming every bad field (for a 422 that says which).
func DecodeAgentReport(body []byte) (AgentReport, error) {
	var r AgentReport
	if err := Validate(SchemaAgentReport, body); err != nil {
		return r, err
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return r, fmt.Errorf("decode agent report: %w", err)
	}
	return r, nil
}
