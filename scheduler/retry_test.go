package scheduler

import (
	"testing"
	"time"

	"github.com/dialstream/dialstream/schemas"
)

const testCampaignID = "0123456789abcdef01234567"

// calling returns a contact with n attempts released, the last in progress.
func calling(n int, at time.Time) *schemas.ContactState {
	c := &schemas.ContactState{Kind: schemas.StateKindContact, CampaignID: testCampaignID, WorkspaceID: "ws_a",
		Contact: schemas.Contact{ContactID: "crm-17", To: "+15550100200"}, Status: schemas.ContactCalling}
	for i := 1; i <= n; i++ {
		a := schemas.ContactAttempt{Attempt: i, CallID: schemas.CampaignCallID(testCampaignID, "crm-17", i), ReleasedAt: at}
		if i < n {
			end := at
			a.Outcome, a.EndedAt = schemas.OutcomeBusy, &end
		}
		c.Attempts = append(c.Attempts, a)
	}
	return c
}

func outcome(n int, o schemas.Outcome, at time.Time) schemas.CampaignOutcome {
	return schemas.CampaignOutcome{CampaignID: testCampaignID, WorkspaceID: "ws_a", ContactID: "crm-17", Attempt: n,
		CallID: schemas.CampaignCallID(testCampaignID, "crm-17", n), Outcome: o, EndedAt: at}
}

// The policy: two attempts on busy and on voicemail, 10 minutes
// apart; no_answer and the rest are final.
func TestApplyOutcomeFollowsThePolicy(t *testing.T) {
	policy := schemas.RetryPolicy{
		Busy:      &schemas.RetryRule{DelaySeconds: 600, MaxAttempts: 2},
		Voicemail: &schemas.RetryRule{DelaySeconds: 600, MaxAttempts: 2},
	}
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	ended := at.Add(30 * time.Second)
	cases := []struct {
		name     string
		attempts int
		outcome  schemas.Outcome
		status   schemas.ContactStatus
		due      time.Time
	}{
		{"busy once: retry in 10 minutes", 1, schemas.OutcomeBusy, schemas.ContactWaiting, ended.Add(10 * time.Minute)},
		{"voicemail once: retry", 1, schemas.OutcomeVoicemail, schemas.ContactWaiting, ended.Add(10 * time.Minute)},
		{"busy twice: done", 2, schemas.OutcomeBusy, schemas.ContactDone, time.Time{}},
		{"busy then voicemail: done, attempts count across outcomes", 2, schemas.OutcomeVoicemail, schemas.ContactDone, time.Time{}},
		{"no_answer has no rule: done", 1, schemas.OutcomeNoAnswer, schemas.ContactDone, time.Time{}},
		{"completed: done", 1, schemas.OutcomeCompleted, schemas.ContactDone, time.Time{}},
		{"suppressed at the dial: done", 1, schemas.OutcomeSuppressed, schemas.ContactDone, time.Time{}},
	}
	for _, tc := range cases {
		c := calling(tc.attempts, at)
		if !applyOutcome(c, outcome(tc.attempts, tc.outcome, ended), policy) {
			t.Fatalf("%s: no change", tc.name)
		}
		if c.Status != tc.status || c.Outcome != tc.outcome || c.Attempts[tc.attempts-1].Outcome != tc.outcome {
			t.Errorf("%s: status %s outcome %s", tc.name, c.Status, c.Outcome)
		}
		if tc.due.IsZero() != (c.NextDueAt == nil) || (c.NextDueAt != nil && !c.NextDueAt.Equal(tc.due)) {
			t.Errorf("%s: next due %v, want %v", tc.name, c.NextDueAt, tc.due)
		}
		if _, err := schemas.ValidateValue(schemas.SchemaSchedulerState, c); err != nil {
			t.Errorf("%s: state does not validate: %v", tc.name, err)
		}
	}
}

// The relay delivers at least once: a repeated outcome, one for an attempt
// never released, or one naming another call changes nothing; an outcome
// for a contact the campaign canceled mid-call is recorded, and it stays
// canceled.
func TestApplyOutcomeIsIdempotent(t *testing.T) {
	policy := schemas.RetryPolicy{Busy: &schemas.RetryRule{DelaySeconds: 60, MaxAttempts: 3}}
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	c := calling(1, at)
	if !applyOutcome(c, outcome(1, schemas.OutcomeBusy, at), policy) || c.Status != schemas.ContactWaiting {
		t.Fatalf("first: %+v", c)
	}
	due := *c.NextDueAt
	if applyOutcome(c, outcome(1, schemas.OutcomeCompleted, at.Add(time.Hour)), policy) {
		t.Fatal("a repeated outcome changed the contact")
	}
	if c.Status != schemas.ContactWaiting || !c.NextDueAt.Equal(due) || c.Outcome != schemas.OutcomeBusy {
		t.Fatalf("after the repeat: %+v", c)
	}
	if applyOutcome(c, outcome(2, schemas.OutcomeBusy, at), policy) {
		t.Fatal("an outcome for an attempt never released changed the contact")
	}
	other := outcome(1, schemas.OutcomeBusy, at)
	other.CallID = "ffffffffffffffffffffffff"
	c = calling(1, at)
	if applyOutcome(c, other, policy) {
		t.Fatal("an outcome for another call changed the contact")
	}

	c = calling(1, at)
	c.Status = schemas.ContactCanceled
	if !applyOutcome(c, outcome(1, schemas.OutcomeBusy, at), policy) || c.Status != schemas.ContactCanceled || c.NextDueAt != nil {
		t.Fatalf("canceled mid-call: %+v", c)
	}
}
