package scheduler

import (
	"time"

	"github.com/dialstream/dialstream/schemas"
)

// The campaign state machine: apply* are pure functions of (campaign,
// command, the command's time), in the image of dialer/machine.go. A command
// applied twice (a replay after a crash between writing the state and
// committing the offset) changes nothing the second time, which is what lets
// the partition owner write state before it commits.

// campaign is one campaign and its contacts, as the partition owner keeps
// them.
type campaign struct {
	state    schemas.CampaignState
	contacts map[string]*schemas.ContactState // by contact id
	numbers  map[string]string                // number -> contact id: one contact per number
	windows  windows
	due      dueQueue // the open contacts by when each may be released
	// windowWaits counts the times a due contact was held for its window
	// (a metric; the release loop takes it).
	windowWaits int
}

// ignoreReason says why a command changed nothing (a bounded metric label).
type ignoreReason string

const (
	ignoreNone          ignoreReason = ""
	ignoreDuplicate     ignoreReason = "duplicate"       // the campaign, contact or outcome is known already
	ignoreUnknown       ignoreReason = "unknown"         // no such campaign, contact or attempt
	ignoreWorkspace     ignoreReason = "wrong_workspace" // the command's workspace is not the campaign's
	ignoreFinished      ignoreReason = "finished"        // the campaign completed or was canceled
	ignoreNotApplicable ignoreReason = "not_applicable"  // e.g. pause of a draft, resume of a running campaign
	ignoreInvalid       ignoreReason = "invalid"         // the windows do not parse
)

// transition is what one command did: the states to write (the campaign's
// when campaign is set, and each changed contact), the campaign events to
// write before them, and the contacts it skipped.
type transition struct {
	campaign bool
	contacts []*schemas.ContactState
	events   []schemas.CampaignEventData
	skipped  []skip
	ignored  ignoreReason
}

// skip is a contact of a contacts command that was not added.
type skip struct {
	contact schemas.Contact
	reason  string
}

// applyCreated makes a campaign of its created command.
func applyCreated(c *campaign, cmd schemas.Campaign) (*campaign, transition) {
	if c != nil {
		return c, transition{ignored: ignoreDuplicate}
	}
	ws, err := parseWindows(cmd.Schedule.Windows)
	if err != nil {
		return nil, transition{ignored: ignoreInvalid}
	}
	at := cmd.CreatedAt.UTC()
	c = &campaign{
		state: schemas.CampaignState{Kind: schemas.StateKindCampaign, Campaign: cmd, Status: schemas.CampaignDraft,
			Counters: schemas.CampaignCounters{ByState: map[schemas.ContactStatus]int{}, ByOutcome: map[schemas.Outcome]int{}}, UpdatedAt: at},
		contacts: map[string]*schemas.ContactState{}, numbers: map[string]string{}, windows: ws,
	}
	tr := transition{campaign: true}
	if cmd.Start {
		c.setStatus(schemas.CampaignRunning, schemas.CampaignEventStarted, at, &tr)
	}
	return c, tr
}

// applyContacts adds the contacts the campaign does not have yet. A contact
// whose id or number the campaign has already is skipped, with the reason.
func (c *campaign) applyContacts(cmd schemas.CampaignContacts) transition {
	if cmd.WorkspaceID != c.state.Campaign.WorkspaceID {
		return transition{ignored: ignoreWorkspace}
	}
	if c.finished() {
		return transition{ignored: ignoreFinished}
	}
	at := cmd.AddedAt.UTC()
	var tr transition
	for _, k := range cmd.Contacts {
		if _, ok := c.contacts[k.ContactID]; ok {
			tr.skipped = append(tr.skipped, skip{k, "contact_id already in the campaign"})
			continue
		}
		if id, ok := c.numbers[k.To]; ok {
			tr.skipped = append(tr.skipped, skip{k, "number already in the campaign as contact " + id})
			continue
		}
		s := &schemas.ContactState{Kind: schemas.StateKindContact, CampaignID: c.state.Campaign.CampaignID,
			WorkspaceID: c.state.Campaign.WorkspaceID, Contact: k, Status: schemas.ContactQueued,
			Attempts: []schemas.ContactAttempt{}, UpdatedAt: at}
		c.contacts[k.ContactID], c.numbers[k.To] = s, k.ContactID
		c.due.schedule(k.ContactID, at)
		c.state.Counters.Contacts++
		c.state.Counters.ByState[schemas.ContactQueued]++
		tr.contacts = append(tr.contacts, s)
	}
	if len(tr.contacts) == 0 {
		tr.ignored = ignoreDuplicate
		return tr
	}
	c.state.UpdatedAt, tr.campaign = at, true
	return tr
}

// applyControl starts, pauses, resumes or cancels the campaign. Cancel ends
// the contacts not yet called, or waiting for a retry, canceled; calls in
// progress finish and their outcomes are still recorded.
func (c *campaign) applyControl(cmd schemas.CampaignControl) transition {
	if cmd.WorkspaceID != c.state.Campaign.WorkspaceID {
		return transition{ignored: ignoreWorkspace}
	}
	if c.finished() {
		return transition{ignored: ignoreFinished}
	}
	at := cmd.RequestedAt.UTC()
	var tr transition
	switch st := c.state.Status; {
	case cmd.Action == schemas.ActionStart && st == schemas.CampaignDraft:
		c.setStatus(schemas.CampaignRunning, schemas.CampaignEventStarted, at, &tr)
		c.complete(at, &tr)
	case cmd.Action == schemas.ActionPause && st == schemas.CampaignRunning:
		c.setStatus(schemas.CampaignPaused, schemas.CampaignEventPaused, at, &tr)
	case cmd.Action == schemas.ActionResume && st == schemas.CampaignPaused:
		c.setStatus(schemas.CampaignRunning, schemas.CampaignEventResumed, at, &tr)
		c.complete(at, &tr)
	case cmd.Action == schemas.ActionCancel:
		c.endOpen(schemas.ContactCanceled, at, &tr)
		c.setStatus(schemas.CampaignCanceled, schemas.CampaignEventCanceled, at, &tr)
	default:
		return transition{ignored: ignoreNotApplicable}
	}
	return tr
}

// applyOutcome records a call's outcome on its contact (applyOutcome in
// retry.go decides the retry) and completes the campaign when it was the
// last contact open. Outcomes are taken after the campaign finished too: a
// call in progress at cancel still ends, and its record should say how.
func (c *campaign) applyOutcome(cmd schemas.CampaignOutcome) transition {
	if cmd.WorkspaceID != c.state.Campaign.WorkspaceID {
		return transition{ignored: ignoreWorkspace}
	}
	k, ok := c.contacts[cmd.ContactID]
	if !ok {
		return transition{ignored: ignoreUnknown}
	}
	before, lastBefore := k.Status, k.Outcome
	if !applyOutcome(k, cmd, c.state.Campaign.Retry) {
		return transition{ignored: ignoreDuplicate}
	}
	c.recount(before, lastBefore, k)
	if k.Status == schemas.ContactWaiting {
		c.due.schedule(k.Contact.ContactID, *k.NextDueAt)
	}
	at := cmd.EndedAt.UTC()
	c.state.UpdatedAt = at
	tr := transition{campaign: true, contacts: []*schemas.ContactState{k}}
	c.complete(at, &tr)
	return tr
}

// expire ends the contacts still open at the schedule's end_at (calls in
// progress finish), and completes the campaign when none is calling. The
// release loop calls it with the first instant at or after end_at it sees.
func (c *campaign) expire(now time.Time) transition {
	end := c.state.Campaign.Schedule.EndAt
	if end == nil || now.Before(*end) || c.finished() {
		return transition{}
	}
	var tr transition
	c.endOpen(schemas.ContactExpired, end.UTC(), &tr)
	if c.state.Counters.ByState[schemas.ContactCalling] == 0 {
		c.setStatus(schemas.CampaignCompleted, schemas.CampaignEventCompleted, end.UTC(), &tr)
		c.state.FinishedAt = ptr(end.UTC())
	}
	return tr
}

func (c *campaign) finished() bool {
	return c.state.Status == schemas.CampaignCompleted || c.state.Status == schemas.CampaignCanceled
}

// complete finishes a running campaign whose contacts are all final. A
// campaign without contacts never completes by itself: its contacts may
// still be on their way.
func (c *campaign) complete(at time.Time, tr *transition) {
	n := c.state.Counters
	open := n.ByState[schemas.ContactQueued] + n.ByState[schemas.ContactWaiting] + n.ByState[schemas.ContactCalling]
	if c.state.Status != schemas.CampaignRunning || n.Contacts == 0 || open > 0 {
		return
	}
	c.setStatus(schemas.CampaignCompleted, schemas.CampaignEventCompleted, at, tr)
	c.state.FinishedAt = ptr(at)
}

// endOpen ends every queued and waiting contact with status s.
func (c *campaign) endOpen(s schemas.ContactStatus, at time.Time, tr *transition) {
	for _, k := range c.contacts {
		if k.Status != schemas.ContactQueued && k.Status != schemas.ContactWaiting {
			continue
		}
		before := k.Status
		k.Status, k.NextDueAt, k.UpdatedAt = s, nil, at
		c.recount(before, k.Outcome, k)
		tr.contacts = append(tr.contacts, k)
	}
	tr.campaign = true
}

// setStatus moves the campaign to s and writes the campaign event e.
func (c *campaign) setStatus(s schemas.CampaignStatus, e schemas.CampaignEvent, at time.Time, tr *transition) {
	st := &c.state
	st.Status, st.UpdatedAt = s, at
	switch s {
	case schemas.CampaignRunning:
		if st.StartedAt == nil {
			st.StartedAt = ptr(at)
		}
		st.PausedAt = nil
	case schemas.CampaignPaused:
		st.PausedAt = ptr(at)
	case schemas.CampaignCanceled:
		st.FinishedAt = ptr(at)
	}
	st.EventSequence++
	tr.campaign = true
	tr.events = append(tr.events, schemas.CampaignEventData{
		CampaignID: st.Campaign.CampaignID, WorkspaceID: st.Campaign.WorkspaceID, Sequence: st.EventSequence,
		Event: e, Status: s, OccurredAt: at, Name: st.Campaign.Name, CallAgentID: st.Campaign.CallAgentID,
		CallbackURL: st.Campaign.CallbackURL, Counters: st.Counters.Clone(),
	})
}

// recount moves a contact between the counters after a change of its
// status or last outcome.
func (c *campaign) recount(status schemas.ContactStatus, outcome schemas.Outcome, k *schemas.ContactState) {
	n := &c.state.Counters
	n.ByState[status]--
	n.ByState[k.Status]++
	if outcome != "" {
		n.ByOutcome[outcome]--
	}
	if k.Outcome != "" {
		n.ByOutcome[k.Outcome]++
	}
	for s, v := range n.ByState {
		if v == 0 {
			delete(n.ByState, s)
		}
	}
	for o, v := range n.ByOutcome {
		if v == 0 {
			delete(n.ByOutcome, o)
		}
	}
	n.InProgress = n.ByState[schemas.ContactCalling]
}

func ptr[T any](v T) *T { return &v }

// release makes the contact's next attempt: the contact is calling, and the
// returned request is the call to write, its id derived from (campaign,
// contact, attempt) so that writing it again is a duplicate the dialer
// ignores. requested_at is the release time: the dialer refuses requests
// older than its memory of ended calls.
func (c *campaign) release(k *schemas.ContactState, at time.Time) schemas.CallRequested {
	at = at.UTC()
	camp := c.state.Campaign
	n := len(k.Attempts) + 1
	id := schemas.CampaignCallID(camp.CampaignID, k.Contact.ContactID, n)
	before := k.Status
	k.Attempts = append(k.Attempts, schemas.ContactAttempt{Attempt: n, CallID: id, ReleasedAt: at})
	k.Status, k.NextDueAt, k.UpdatedAt = schemas.ContactCalling, nil, at
	c.recount(before, k.Outcome, k)
	c.state.Counters.Attempts++
	c.state.UpdatedAt = at
	return schemas.CallRequested{
		CallID: id, WorkspaceID: camp.WorkspaceID, To: k.Contact.To, CallAgentID: camp.CallAgentID,
		CallbackURL: camp.CallbackURL, DynamicVariables: k.Contact.DynamicVariables, Metadata: k.Contact.Metadata,
		RequestedAt: at, Campaign: &schemas.CampaignRef{CampaignID: camp.CampaignID, ContactID: k.Contact.ContactID, Attempt: n},
	}
}
