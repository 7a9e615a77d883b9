package scheduler

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/dialstream/dialstream/schemas"
)

var t0 = time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)

func testCampaignCmd(start bool) schemas.Campaign {
	return schemas.Campaign{
		CampaignID: testCampaignID, WorkspaceID: "ws_a", Name: "renewals", CallAgentID: "agent_a",
		CallbackURL: "https://example.com/hooks",
		Schedule:    schemas.CampaignSchedule{Windows: []schemas.Window{{Days: []string{"mon", "tue", "wed", "thu", "fri"}, Start: "10:00", End: "19:00"}}},
		Pacing:      schemas.Pacing{CallsPerSecond: 1, MaxConcurrent: 5},
		Retry:       schemas.RetryPolicy{Busy: &schemas.RetryRule{DelaySeconds: 600, MaxAttempts: 2}},
		Start:       start, CreatedAt: t0,
	}
}

func contactsCmd(at time.Time, ks ...schemas.Contact) schemas.CampaignContacts {
	return schemas.CampaignContacts{CampaignID: testCampaignID, WorkspaceID: "ws_a", UploadID: "aaaaaaaaaaaaaaaaaaaaaaaa", Contacts: ks, AddedAt: at}
}

func control(a schemas.CampaignAction, at time.Time) schemas.CampaignControl {
	return schemas.CampaignControl{CampaignID: testCampaignID, WorkspaceID: "ws_a", Action: a, RequestedAt: at}
}

func callOutcome(req schemas.CallRequested, o schemas.Outcome, at time.Time) schemas.CampaignOutcome {
	return schemas.CampaignOutcome{CampaignID: req.Campaign.CampaignID, WorkspaceID: req.WorkspaceID, ContactID: req.Campaign.ContactID,
		Attempt: req.Campaign.Attempt, CallID: req.CallID, Outcome: o, EndedAt: at}
}

// mustValid checks that everything a transition would write matches its
// schema, as the partition owner's NewRecord will.
func mustValid(t *testing.T, c *campaign, tr transition) {
	t.Helper()
	if tr.campaign {
		if _, err := schemas.ValidateValue(schemas.SchemaSchedulerState, c.state); err != nil {
			t.Fatalf("campaign state: %v", err)
		}
	}
	for _, k := range tr.contacts {
		if _, err := schemas.ValidateValue(schemas.SchemaSchedulerState, k); err != nil {
			t.Fatalf("contact %s: %v", k.Contact.ContactID, err)
		}
	}
	for _, e := range tr.events {
		if _, err := schemas.ValidateValue(schemas.SchemaCampaignEvent, e); err != nil {
			t.Fatalf("event %s: %v", e.Event, err)
		}
	}
}

func events(trs ...transition) []schemas.CampaignEvent {
	var out []schemas.CampaignEvent
	for _, tr := range trs {
		for _, e := range tr.events {
			out = append(out, e.Event)
		}
	}
	return out
}

// A campaign from draft to completed: contacts with a repeated id and a
// repeated number are skipped; a busy contact is retried once, 10 minutes
// after its call ended; the last outcome completes the campaign, whose
// completed event counts every contact and attempt.
func TestCampaignRunsToCompletion(t *testing.T) {
	c, tr := applyCreated(nil, testCampaignCmd(false))
	mustValid(t, c, tr)
	if c.state.Status != schemas.CampaignDraft || len(tr.events) != 0 {
		t.Fatalf("created: %s %v", c.state.Status, tr.events)
	}
	if _, again := applyCreated(c, testCampaignCmd(true)); again.ignored != ignoreDuplicate {
		t.Fatalf("a second created: %+v", again)
	}
	add := c.applyContacts(contactsCmd(t0,
		schemas.Contact{ContactID: "a", To: "+15550100201", DynamicVariables: map[string]string{"firstName": "Ada"}, Metadata: json.RawMessage(`{"crm":1}`)},
		schemas.Contact{ContactID: "b", To: "+15550100202"},
		schemas.Contact{ContactID: "a", To: "+15550100203"},
		schemas.Contact{ContactID: "c", To: "+15550100202"},
	))
	mustValid(t, c, add)
	if len(add.contacts) != 2 || len(add.skipped) != 2 || c.state.Counters.Contacts != 2 {
		t.Fatalf("added %d skipped %+v counters %+v", len(add.contacts), add.skipped, c.state.Counters)
	}
	if again := c.applyContacts(contactsCmd(t0, schemas.Contact{ContactID: "a", To: "+15550100201"})); again.ignored != ignoreDuplicate {
		t.Fatalf("replayed contacts: %+v", again)
	}

	start := c.applyControl(control(schemas.ActionStart, t0.Add(time.Hour)))
	mustValid(t, c, start)
	if c.state.Status != schemas.CampaignRunning || c.state.StartedAt == nil {
		t.Fatalf("started: %+v", c.state)
	}

	at := t0.Add(time.Hour)
	ra := c.release(c.contacts["a"], at)
	rb := c.release(c.contacts["b"], at.Add(time.Second))
	if ra.CallID != schemas.CampaignCallID(testCampaignID, "a", 1) || ra.Campaign.Attempt != 1 || ra.DynamicVariables["firstName"] != "Ada" || string(ra.Metadata) != `{"crm":1}` || !ra.RequestedAt.Equal(at) {
		t.Fatalf("release a: %+v", ra)
	}
	if _, err := schemas.ValidateValue(schemas.SchemaCallRequested, ra); err != nil {
		t.Fatalf("released request: %v", err)
	}
	if n := c.state.Counters; n.InProgress != 2 || n.Attempts != 2 || n.ByState[schemas.ContactCalling] != 2 {
		t.Fatalf("counters after releases %+v", n)
	}

	busy := c.applyOutcome(callOutcome(ra, schemas.OutcomeBusy, at.Add(20*time.Second)))
	mustValid(t, c, busy)
	if k := c.contacts["a"]; k.Status != schemas.ContactWaiting || !k.NextDueAt.Equal(at.Add(20*time.Second+10*time.Minute)) {
		t.Fatalf("busy a: %+v", k)
	}
	done := c.applyOutcome(callOutcome(rb, schemas.OutcomeCompleted, at.Add(time.Minute)))
	mustValid(t, c, done)
	if c.state.Status != schemas.CampaignRunning {
		t.Fatal("completed with a contact waiting for its retry")
	}
	ra2 := c.release(c.contacts["a"], at.Add(15*time.Minute))
	if ra2.Campaign.Attempt != 2 || ra2.CallID == ra.CallID {
		t.Fatalf("second attempt %+v", ra2)
	}
	last := c.applyOutcome(callOutcome(ra2, schemas.OutcomeBusy, at.Add(16*time.Minute)))
	mustValid(t, c, last)
	if c.state.Status != schemas.CampaignCompleted || c.state.FinishedAt == nil {
		t.Fatalf("not completed: %+v", c.state)
	}
	got := events(tr, start, busy, done, last)
	if len(got) != 2 || got[0] != schemas.CampaignEventStarted || got[1] != schemas.CampaignEventCompleted {
		t.Fatalf("events %v", got)
	}
	n := last.events[0].Counters
	if n.Contacts != 2 || n.Attempts != 3 || n.InProgress != 0 || n.ByState[schemas.ContactDone] != 2 ||
		n.ByOutcome[schemas.OutcomeBusy] != 1 || n.ByOutcome[schemas.OutcomeCompleted] != 1 || last.events[0].Sequence != 2 {
		t.Fatalf("completed counters %+v (sequence %d)", n, last.events[0].Sequence)
	}
	if late := c.applyContacts(contactsCmd(at, schemas.Contact{ContactID: "z", To: "+15550100299"})); late.ignored != ignoreFinished {
		t.Fatalf("contacts after completion: %+v", late)
	}
}

// Pause and resume write their events and nothing else; a pause of a
// paused campaign, a resume of a running one, and another workspace's
// control change nothing. Cancel ends the queued and waiting contacts
// canceled, leaves the calling one to finish, and its outcome is still
// recorded.
func TestCampaignControls(t *testing.T) {
	c, _ := applyCreated(nil, testCampaignCmd(true))
	c.applyContacts(contactsCmd(t0,
		schemas.Contact{ContactID: "a", To: "+15550100201"},
		schemas.Contact{ContactID: "b", To: "+15550100202"},
		schemas.Contact{ContactID: "c", To: "+15550100203"}))
	at := t0.Add(time.Hour)
	ra := c.release(c.contacts["a"], at)
	rb := c.release(c.contacts["b"], at)
	c.applyOutcome(callOutcome(rb, schemas.OutcomeBusy, at.Add(time.Minute))) // b waits for its retry

	steps := []struct {
		cmd     schemas.CampaignControl
		status  schemas.CampaignStatus
		ignored ignoreReason
	}{
		{control(schemas.ActionPause, at.Add(2*time.Minute)), schemas.CampaignPaused, ignoreNone},
		{control(schemas.ActionPause, at.Add(3*time.Minute)), schemas.CampaignPaused, ignoreNotApplicable},
		{control(schemas.ActionResume, at.Add(4*time.Minute)), schemas.CampaignRunning, ignoreNone},
		{control(schemas.ActionResume, at.Add(5*time.Minute)), schemas.CampaignRunning, ignoreNotApplicable},
		{control(schemas.ActionStart, at.Add(5*time.Minute)), schemas.CampaignRunning, ignoreNotApplicable},
	}
	for i, s := range steps {
		tr := c.applyControl(s.cmd)
		mustValid(t, c, tr)
		if tr.ignored != s.ignored || c.state.Status != s.status {
			t.Fatalf("step %d (%s): ignored %q status %s", i, s.cmd.Action, tr.ignored, c.state.Status)
		}
	}
	other := control(schemas.ActionCancel, at)
	other.WorkspaceID = "ws_b"
	if tr := c.applyControl(other); tr.ignored != ignoreWorkspace || c.state.Status != schemas.CampaignRunning {
		t.Fatalf("another workspace's cancel: %+v", tr)
	}

	cancel := c.applyControl(control(schemas.ActionCancel, at.Add(6*time.Minute)))
	mustValid(t, c, cancel)
	if c.state.Status != schemas.CampaignCanceled || len(cancel.events) != 1 || cancel.events[0].Sequence != 4 {
		t.Fatalf("cancel: %s %+v", c.state.Status, cancel.events)
	}
	want := map[string]schemas.ContactStatus{"a": schemas.ContactCalling, "b": schemas.ContactCanceled, "c": schemas.ContactCanceled}
	for id, s := range want {
		if c.contacts[id].Status != s {
			t.Errorf("contact %s: %s, want %s", id, c.contacts[id].Status, s)
		}
	}
	fin := c.applyOutcome(callOutcome(ra, schemas.OutcomeCompleted, at.Add(7*time.Minute)))
	mustValid(t, c, fin)
	if k := c.contacts["a"]; k.Status != schemas.ContactDone || k.Outcome != schemas.OutcomeCompleted {
		t.Fatalf("the call in progress at cancel: %+v", k)
	}
	if c.state.Status != schemas.CampaignCanceled || len(fin.events) != 0 {
		t.Fatalf("a canceled campaign changed status: %s %v", c.state.Status, fin.events)
	}
	if n := c.state.Counters; n.ByState[schemas.ContactCanceled] != 2 || n.ByState[schemas.ContactDone] != 1 || n.InProgress != 0 {
		t.Fatalf("counters %+v", n)
	}
}

// At end_at the open contacts end expired; with none calling, the campaign
// completes then.
func TestCampaignEndAtExpiresTheRest(t *testing.T) {
	cmd := testCampaignCmd(true)
	end := t0.Add(48 * time.Hour)
	cmd.Schedule.EndAt = &end
	c, _ := applyCreated(nil, cmd)
	c.applyContacts(contactsCmd(t0, schemas.Contact{ContactID: "a", To: "+15550100201"}, schemas.Contact{ContactID: "b", To: "+15550100202"}))
	r := c.release(c.contacts["a"], t0.Add(time.Hour))
	c.applyOutcome(callOutcome(r, schemas.OutcomeCompleted, t0.Add(time.Hour+time.Minute)))
	if tr := c.expire(end.Add(-time.Second)); tr.campaign || len(tr.contacts) != 0 {
		t.Fatalf("expired before end_at: %+v", tr)
	}
	tr := c.expire(end.Add(time.Minute))
	mustValid(t, c, tr)
	if c.contacts["b"].Status != schemas.ContactExpired || c.contacts["a"].Status != schemas.ContactDone {
		t.Fatalf("contacts a %s b %s", c.contacts["a"].Status, c.contacts["b"].Status)
	}
	if c.state.Status != schemas.CampaignCompleted || !c.state.FinishedAt.Equal(end) || events(tr)[0] != schemas.CampaignEventCompleted {
		t.Fatalf("campaign %+v", c.state)
	}
}
