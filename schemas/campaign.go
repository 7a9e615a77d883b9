package schemas

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"time"
)

// Campaigns (issue 15). A campaign's commands share one key, the campaign
// id, on TopicCampaignCommands, so one scheduler owns a campaign, applies its
// commands in order and paces its releases alone. Its calls are ordinary
// call.requested records on TopicRequested whose call id is derived from
// (campaign, contact, attempt): a replayed release is a duplicate request the
// dialer ignores, never a second ring. docs/architecture.md, "Campaigns".
const (
	// TopicCampaignCommands carries what the scheduler applies: campaigns
	// created, contacts added, controls, call outcomes relayed from the
	// events topic (key campaign id), and scheduled single calls and their
	// cancels (key call id).
	TopicCampaignCommands = "dialstream.campaigns.commands"
	// TopicCampaignState is compacted: the scheduler's state of each
	// campaign, contact and scheduled call (SchedulerStateKey), written to
	// the partition number of the command it came from.
	TopicCampaignState = "dialstream.campaigns.state"
)

// Schema names.
const (
	SchemaCampaign         = "campaign.v1"
	SchemaCampaignContacts = "campaign.contacts.v1"
	SchemaCampaignControl  = "campaign.control.v1"
	SchemaCampaignOutcome  = "campaign.outcome.v1"
	SchemaCampaignEvent    = "campaign.event.v1"
	SchemaCallScheduled    = "call.scheduled.v1"
	SchemaSchedulerState   = "scheduler.state.v1"
)

// CloudEvent types.
const (
	TypeCampaignCreated  = "dialstream.campaign.created.v1"
	TypeCampaignContacts = "dialstream.campaign.contacts.v1"
	TypeCampaignControl  = "dialstream.campaign.control.v1"
	TypeCampaignOutcome  = "dialstream.campaign.outcome.v1"
	TypeCallScheduled    = "dialstream.call.scheduled.v1"

	TypeCampaignState      = "dialstream.scheduler.campaign_state.v1"
	TypeContactState       = "dialstream.scheduler.contact_state.v1"
	TypeScheduledCallState = "dialstream.scheduler.call_state.v1"
)

func init() {
	RegisterType(TypeCampaignCreated, SchemaCampaign)
	RegisterType(TypeCampaignContacts, SchemaCampaignContacts)
	RegisterType(TypeCampaignControl, SchemaCampaignControl)
	RegisterType(TypeCampaignOutcome, SchemaCampaignOutcome)
	RegisterType(TypeCallScheduled, SchemaCallScheduled)
	RegisterType(TypeCampaignState, SchemaSchedulerState)
	RegisterType(TypeContactState, SchemaSchedulerState)
	RegisterType(TypeScheduledCallState, SchemaSchedulerState)
	for _, e := range CampaignEvents {
		RegisterType(e.Type(), SchemaCampaignEvent)
	}
}

// MaxContactsPerRecord bounds one TypeCampaignContacts record (the schema's
// maxItems): 500 contacts of a few hundred bytes stay well under Kafka's
// default 1 MiB record limit.
const MaxContactsPerRecord = 500

// CampaignCallID is the call id of a campaign contact's attempt: 24 hex of
// SHA-256 over (campaign, contact, attempt). Every release of one attempt,
// replayed or not, carries the same id, and the dialer dials an id once.
func CampaignCallID(campaignID, contactID string, attempt int) string {
	h := sha256.Sum256([]byte("dialstream/campaign-call/v1\x00" + campaignID + "\x00" + contactID + "\x00" + strconv.Itoa(attempt)))
	return hex.EncodeToString(h[:12])
}

// CampaignStatus is a campaign's stage.
type CampaignStatus string

const (
	CampaignDraft     CampaignStatus = "draft"
	CampaignRunning   CampaignStatus = "running"
	CampaignPaused    CampaignStatus = "paused"
	CampaignCompleted CampaignStatus = "completed"
	CampaignCanceled  CampaignStatus = "canceled"
)

// CampaignStatuses lists the vocabulary (for metrics initialization).
var CampaignStatuses = []CampaignStatus{CampaignDraft, CampaignRunning, CampaignPaused, CampaignCompleted, CampaignCanceled}

// ContactStatus is a contact's stage within its campaign.
type ContactStatus string

const (
	ContactQueued   ContactStatus = "queued"   // never called yet
	ContactWaiting  ContactStatus = "waiting"  // a retry is due at NextDueAt
	ContactCalling  ContactStatus = "calling"  // a call is released and has not ended
	ContactDone     ContactStatus = "done"     // the last outcome was final
	ContactCanceled ContactStatus = "canceled" // the campaign was canceled first
	ContactExpired  ContactStatus = "expired"  // end_at came first
)

// ContactStatuses lists the vocabulary (for metrics initialization).
var ContactStatuses = []ContactStatus{ContactQueued, ContactWaiting, ContactCalling, ContactDone, ContactCanceled, ContactExpired}

// Final reports whether no more calls will be made to a contact in s.
func (s ContactStatus) Final() bool {
	return s == ContactDone || s == ContactCanceled || s == ContactExpired
}

// CampaignAction is a control's verb.
type CampaignAction string

const (
	ActionStart  CampaignAction = "start"
	ActionPause  CampaignAction = "pause"
	ActionResume CampaignAction = "resume"
	ActionCancel CampaignAction = "cancel"
)

// CampaignEvent names a campaign webhook: campaign.<event>.
type CampaignEvent string

const (
	CampaignEventStarted   CampaignEvent = "started"
	CampaignEventPaused    CampaignEvent = "paused"
	CampaignEventResumed   CampaignEvent = "resumed"
	CampaignEventCompleted CampaignEvent = "completed"
	CampaignEventCanceled  CampaignEvent = "canceled"
)

// CampaignEvents lists them all.
var CampaignEvents = []CampaignEvent{CampaignEventStarted, CampaignEventPaused, CampaignEventResumed, CampaignEventCompleted, CampaignEventCanceled}

// Type returns the CloudEvent type of the event.
func (e CampaignEvent) Type() string { return "dialstream.campaign." + string(e) + ".v1" }

// CampaignEventID is the ce_id and webhook-id of a campaign's event: the "c"
// keeps it apart from any call's "<call_id>-<sequence>".
func CampaignEventID(campaignID string, sequence int) string {
	return campaignID + "-c" + strconv.Itoa(sequence)
}

// Weekday names as the schema spells them, Sunday first like time.Weekday.
var Weekdays = [7]string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// Window is a weekly window in the callee's local time.
type Window struct {
	Days  []string `json:"days"`
	Start string   `json:"start"` // "HH:MM", inclusive
	End   string   `json:"end"`   // "HH:MM" or "24:00", exclusive
}

// CampaignSchedule says when a campaign's contacts may be called.
type CampaignSchedule struct {
	StartAt         *time.Time `json:"start_at,omitempty"`
	EndAt           *time.Time `json:"end_at,omitempty"`
	Windows         []Window   `json:"windows"`
	DefaultTimezone string     `json:"default_timezone,omitempty"`
}

// Pacing bounds a campaign's release rate and its calls in progress.
type Pacing struct {
	CallsPerSecond float64 `json:"calls_per_second"`
	MaxConcurrent  int     `json:"max_concurrent"`
}

// RetryRule is the retry policy for one outcome.
type RetryRule struct {
	DelaySeconds int `json:"delay_seconds"`
	MaxAttempts  int `json:"max_attempts"`
}

// RetryPolicy maps the retryable outcomes to their rules; nil is final.
type RetryPolicy struct {
	Busy      *RetryRule `json:"busy,omitempty"`
	NoAnswer  *RetryRule `json:"no_answer,omitempty"`
	Voicemail *RetryRule `json:"voicemail,omitempty"`
	Failed    *RetryRule `json:"failed,omitempty"`
}

// For returns the rule for an outcome, or nil when the outcome is final.
func (p RetryPolicy) For(o Outcome) *RetryRule {
	switch o {
	case OutcomeBusy:
		return p.Busy
	case OutcomeNoAnswer:
		return p.NoAnswer
	case OutcomeVoicemail:
		return p.Voicemail
	case OutcomeFailed:
		return p.Failed
	}
	return nil
}

// Campaign is the data of TypeCampaignCreated.
type Campaign struct {
	CampaignID  string           `json:"campaign_id"`
	WorkspaceID string           `json:"workspace_id"`
	Name        string           `json:"name"`
	CallAgentID string           `json:"call_agent_id"`
	CallbackURL string           `json:"callback_url,omitempty"`
	Schedule    CampaignSchedule `json:"schedule"`
	Pacing      Pacing           `json:"pacing"`
	Retry       RetryPolicy      `json:"retry,omitzero"`
	Start       bool             `json:"start,omitempty"`
	CreatedAt   time.Time        `json:"created_at"`
}

// Contact is one callee of a campaign.
type Contact struct {
	ContactID        string            `json:"contact_id"`
	To               string            `json:"to"`
	Row              int               `json:"row,omitempty"`
	Timezone         string            `json:"timezone,omitempty"`
	DynamicVariables map[string]string `json:"dynamic_variables,omitempty"`
	Metadata         json.RawMessage   `json:"metadata,omitempty"`
}

// CampaignContacts is the data of TypeCampaignContacts.
type CampaignContacts struct {
	CampaignID  string    `json:"campaign_id"`
	WorkspaceID string    `json:"workspace_id"`
	UploadID    string    `json:"upload_id"`
	Contacts    []Contact `json:"contacts"`
	AddedAt     time.Time `json:"added_at"`
}

// CampaignControl is the data of TypeCampaignControl.
type CampaignControl struct {
	CampaignID  string         `json:"campaign_id"`
	WorkspaceID string         `json:"workspace_id"`
	Action      CampaignAction `json:"action"`
	RequestedAt time.Time      `json:"requested_at"`
}

// CampaignOutcome is the data of TypeCampaignOutcome.
type CampaignOutcome struct {
	CampaignID  string     `json:"campaign_id"`
	WorkspaceID string     `json:"workspace_id"`
	ContactID   string     `json:"contact_id"`
	Attempt     int        `json:"attempt"`
	CallID      string     `json:"call_id"`
	Outcome     Outcome    `json:"outcome"`
	AnsweredBy  AnsweredBy `json:"answered_by,omitempty"`
	EndedAt     time.Time  `json:"ended_at"`
}

// CampaignRef ties a call to its campaign contact and attempt.
type CampaignRef struct {
	CampaignID string `json:"campaign_id"`
	ContactID  string `json:"contact_id"`
	Attempt    int    `json:"attempt"`
}

// CallScheduled is the data of TypeCallScheduled.
type CallScheduled struct {
	Request             CallRequested `json:"request"`
	StartAt             time.Time     `json:"start_at"`
	DeferToCallingHours bool          `json:"defer_to_calling_hours,omitempty"`
	ScheduledAt         time.Time     `json:"scheduled_at"`
}

// CampaignCounters are a campaign's contacts counted by state and by last
// outcome, with attempts made and calls in progress.
type CampaignCounters struct {
	Contacts   int                   `json:"contacts"`
	Attempts   int                   `json:"attempts"`
	InProgress int                   `json:"in_progress,omitempty"`
	ByState    map[ContactStatus]int `json:"by_state"`
	ByOutcome  map[Outcome]int       `json:"by_outcome"`
}

// CampaignEventData is the data of a campaign webhook's event.
type CampaignEventData struct {
	CampaignID  string           `json:"campaign_id"`
	WorkspaceID string           `json:"workspace_id"`
	Sequence    int              `json:"sequence"`
	Event       CampaignEvent    `json:"event"`
	Status      CampaignStatus   `json:"status"`
	OccurredAt  time.Time        `json:"occurred_at"`
	Name        string           `json:"name"`
	CallAgentID string           `json:"call_agent_id,omitempty"`
	CallbackURL string           `json:"callback_url,omitempty"`
	Counters    CampaignCounters `json:"counters"`
}

// State kinds on TopicCampaignState.
const (
	StateKindCampaign = "campaign"
	StateKindContact  = "contact"
	StateKindCall     = "call"
)

// CampaignState is the data of TypeCampaignState.
type CampaignState struct {
	Kind              string           `json:"kind"` // StateKindCampaign
	Campaign          Campaign         `json:"campaign"`
	Status            CampaignStatus   `json:"status"`
	Counters          CampaignCounters `json:"counters"`
	EventSequence     int              `json:"event_sequence"`
	CommandOffset     int64            `json:"command_offset,omitempty"`
	StartedAt         *time.Time       `json:"started_at,omitempty"`
	PausedAt          *time.Time       `json:"paused_at,omitempty"`
	FinishedAt        *time.Time       `json:"finished_at,omitempty"`
	EstimatedFinishAt *time.Time       `json:"estimated_finish_at,omitempty"`
	UpdatedAt         time.Time        `json:"updated_at"`
}

// ContactAttempt is one call made to a contact.
type ContactAttempt struct {
	Attempt    int        `json:"attempt"`
	CallID     string     `json:"call_id"`
	ReleasedAt time.Time  `json:"released_at"`
	Outcome    Outcome    `json:"outcome,omitempty"`
	AnsweredBy AnsweredBy `json:"answered_by,omitempty"`
	EndedAt    *time.Time `json:"ended_at,omitempty"`
}

// ContactState is the data of TypeContactState.
type ContactState struct {
	Kind        string           `json:"kind"` // StateKindContact
	CampaignID  string           `json:"campaign_id"`
	WorkspaceID string           `json:"workspace_id"`
	Contact     Contact          `json:"contact"`
	Status      ContactStatus    `json:"status"`
	NextDueAt   *time.Time       `json:"next_due_at,omitempty"`
	Outcome     Outcome          `json:"outcome,omitempty"`
	Attempts    []ContactAttempt `json:"attempts"`
	UpdatedAt   time.Time        `json:"updated_at"`
}

// ScheduledCallStatus is a scheduled single call's stage in the scheduler.
type ScheduledCallStatus string

const (
	ScheduledCallWaiting  ScheduledCallStatus = "scheduled"
	ScheduledCallReleased ScheduledCallStatus = "released"
	ScheduledCallCanceled ScheduledCallStatus = "canceled"
)

// ScheduledCallState is the data of TypeScheduledCallState.
type ScheduledCallState struct {
	Kind       string              `json:"kind"` // StateKindCall
	Scheduled  CallScheduled       `json:"scheduled"`
	Status     ScheduledCallStatus `json:"status"`
	DueAt      *time.Time          `json:"due_at,omitempty"`
	ReleasedAt *time.Time          `json:"released_at,omitempty"`
	UpdatedAt  time.Time           `json:"updated_at"`
}

// Keys on TopicCampaignState.
func CampaignStateKey(campaignID string) string { return "c/" + campaignID }
func ContactStateKey(campaignID, contactID string) string {
	return "k/" + campaignID + "/" + contactID
}
func ScheduledCallStateKey(callID string) string { return "s/" + callID }

// Clone returns a copy whose maps are its own.
func (c CampaignCounters) Clone() CampaignCounters {
	out := c
	out.ByState = make(map[ContactStatus]int, len(c.ByState))
	for k, v := range c.ByState {
		out.ByState[k] = v
	}
	out.ByOutcome = make(map[Outcome]int, len(c.ByOutcome))
	for k, v := range c.ByOutcome {
		out.ByOutcome[k] = v
	}
	return out
}
