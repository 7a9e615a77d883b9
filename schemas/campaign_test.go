package schemas

import (
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
)

func testCampaign() Campaign {
	return Campaign{
		CampaignID: "0123456789abcdef01234567", WorkspaceID: "ws_demo", Name: "renewals",
		CallAgentID: "a1b2c3d4e5f6a7b8c9d0e1f2", CallbackURL: "https://example.com/hooks",
		Schedule:  CampaignSchedule{Windows: []Window{{Days: []string{"mon", "tue", "wed", "thu", "fri"}, Start: "10:00", End: "19:00"}}},
		Pacing:    Pacing{CallsPerSecond: 2.5, MaxConcurrent: 10},
		Retry:     RetryPolicy{Busy: &RetryRule{DelaySeconds: 600, MaxAttempts: 2}},
		CreatedAt: time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC),
	}
}

func TestCampaignRecordsValidate(t *testing.T) {
	c := testCampaign()
	at := c.CreatedAt
	contact := Contact{ContactID: "crm-17", To: "+15550100200", Row: 2, DynamicVariables: map[string]string{"firstName": "Ada"}, Metadata: json.RawMessage(`{"crm":17}`)}
	ok := []struct {
		typ  string
		data any
	}{
		{TypeCampaignCreated, c},
		{TypeCampaignContacts, CampaignContacts{CampaignID: c.CampaignID, WorkspaceID: c.WorkspaceID, UploadID: "aaaaaaaaaaaaaaaaaaaaaaaa", Contacts: []Contact{contact}, AddedAt: at}},
		{TypeCampaignControl, CampaignControl{CampaignID: c.CampaignID, WorkspaceID: c.WorkspaceID, Action: ActionPause, RequestedAt: at}},
		{TypeCampaignOutcome, CampaignOutcome{CampaignID: c.CampaignID, WorkspaceID: c.WorkspaceID, ContactID: "crm-17", Attempt: 1, CallID: CampaignCallID(c.CampaignID, "crm-17", 1), Outcome: OutcomeBusy, EndedAt: at}},
		{TypeCallScheduled, CallScheduled{Request: CallRequested{CallID: "f9e8d7c6b5a4f3e2d1c0b9a8", WorkspaceID: "ws_demo", To: "+15550100200", CallAgentID: "a1", RequestedAt: at}, StartAt: at.Add(time.Hour), ScheduledAt: at}},
		{CampaignEventStarted.Type(), CampaignEventData{CampaignID: c.CampaignID, WorkspaceID: c.WorkspaceID, Sequence: 1, Event: CampaignEventStarted, Status: CampaignRunning, OccurredAt: at, Name: c.Name,
			Counters: CampaignCounters{Contacts: 1, ByState: map[ContactStatus]int{ContactQueued: 1}, ByOutcome: map[Outcome]int{}}}},
		{TypeCampaignState, CampaignState{Kind: StateKindCampaign, Campaign: c, Status: CampaignRunning, Counters: CampaignCounters{ByState: map[ContactStatus]int{}, ByOutcome: map[Outcome]int{}}, UpdatedAt: at}},
		{TypeContactState, ContactState{Kind: StateKindContact, CampaignID: c.CampaignID, WorkspaceID: c.WorkspaceID, Contact: contact, Status: ContactCalling,
			Attempts: []ContactAttempt{{Attempt: 1, CallID: CampaignCallID(c.CampaignID, "crm-17", 1), ReleasedAt: at}}, UpdatedAt: at}},
		{TypeCallRequested, CallRequested{CallID: CampaignCallID(c.CampaignID, "crm-17", 1), WorkspaceID: "ws_demo", To: "+15550100200", CallAgentID: "a1", RequestedAt: at,
			Campaign: &CampaignRef{CampaignID: c.CampaignID, ContactID: "crm-17", Attempt: 1}}},
	}
	for _, tc := range ok {
		if _, err := NewRecord(TopicCampaignCommands, "k", Meta{Type: tc.typ, Source: "/test", Time: at}, tc.data); err != nil {
			t.Errorf("%s: %v", tc.typ, err)
		}
	}

	bad := c
	bad.Schedule.Windows = []Window{{Days: []string{"monday"}, Start: "10:00", End: "25:00"}}
	bad.Pacing.CallsPerSecond = 0
	_, err := NewRecord(TopicCampaignCommands, "k", Meta{Type: TypeCampaignCreated, Source: "/test", Time: at}, bad)
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("bad campaign: want a ValidationError, got %v", err)
	}
	got := ve.Error()
	for _, f := range []string{"/schedule/windows/0/days/0", "/schedule/windows/0/end", "/pacing/calls_per_second"} {
		if !strings.Contains(got, f) {
			t.Errorf("bad campaign: error %q does not name %s", got, f)
		}
	}
}

func TestCampaignCallID(t *testing.T) {
	a := CampaignCallID("0123456789abcdef01234567", "crm-17", 1)
	if !regexp.MustCompile(`^[0-9a-f]{24}$`).MatchString(a) {
		t.Fatalf("call id %q is not 24 lowercase hex", a)
	}
	if a != CampaignCallID("0123456789abcdef01234567", "crm-17", 1) {
		t.Fatal("not a function of its inputs")
	}
	for _, other := range []string{
		CampaignCallID("0123456789abcdef01234567", "crm-17", 2),
		CampaignCallID("0123456789abcdef01234567", "crm-1", 71),
		CampaignCallID("0123456789abcdef01234568", "crm-17", 1),
	} {
		if other == a {
			t.Fatalf("two attempts share call id %s", a)
		}
	}
}

func TestRetryPolicyFor(t *testing.T) {
	p := RetryPolicy{Busy: &RetryRule{DelaySeconds: 60, MaxAttempts: 2}}
	if r := p.For(OutcomeBusy); r == nil || r.MaxAttempts != 2 {
		t.Fatalf("busy: %+v", r)
	}
	for _, o := range []Outcome{OutcomeNoAnswer, OutcomeCompleted, OutcomeDeclined, OutcomeSuppressed} {
		if p.For(o) != nil {
			t.Errorf("%s: want final", o)
		}
	}
}
