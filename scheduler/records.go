package scheduler

import (
	"encoding/json"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/schemas"
)

// ceSource is the ce_source of every record the scheduler writes.
const ceSource = "/dialstream/scheduler"

// The records a transition writes. State goes to the partition number of
// the command it came from (the commands and state topics are
// co-partitioned); calls go to the requested topic by their call id, with
// the client's partitioner, like any request; campaign events go to the
// events topic by campaign id.

func campaignStateRecord(c *campaign, partition int32) (*kgo.Record, error) {
	st := c.state
	r, err := schemas.NewRecord(schemas.TopicCampaignState, schemas.CampaignStateKey(st.Campaign.CampaignID), schemas.Meta{
		Type: schemas.TypeCampaignState, Source: ceSource, Subject: st.Campaign.CampaignID, Time: st.UpdatedAt}, st)
	if err != nil {
		return nil, fmt.Errorf("scheduler: campaign %s state: %w", st.Campaign.CampaignID, err)
	}
	r.Partition = partition
	return r, nil
}

func contactStateRecord(k *schemas.ContactState, partition int32) (*kgo.Record, error) {
	r, err := schemas.NewRecord(schemas.TopicCampaignState, schemas.ContactStateKey(k.CampaignID, k.Contact.ContactID), schemas.Meta{
		Type: schemas.TypeContactState, Source: ceSource, Subject: k.CampaignID, Time: k.UpdatedAt}, k)
	if err != nil {
		return nil, fmt.Errorf("scheduler: campaign %s contact %s state: %w", k.CampaignID, k.Contact.ContactID, err)
	}
	r.Partition = partition
	return r, nil
}

func scheduledStateRecord(st *schemas.ScheduledCallState, partition int32) (*kgo.Record, error) {
	id := st.Scheduled.Request.CallID
	r, err := schemas.NewRecord(schemas.TopicCampaignState, schemas.ScheduledCallStateKey(id), schemas.Meta{
		Type: schemas.TypeScheduledCallState, Source: ceSource, Subject: id, Time: st.UpdatedAt}, st)
	if err != nil {
		return nil, fmt.Errorf("scheduler: scheduled call %s state: %w", id, err)
	}
	r.Partition = partition
	return r, nil
}

// campaignEventRecord is a campaign webhook's event. Its ce_id is a pure
// function of the campaign and the event's sequence, so an event written
// again after a crash keeps its id, and the notifier its webhook-id.
func campaignEventRecord(e schemas.CampaignEventData) (*kgo.Record, error) {
	r, err := schemas.NewRecord(schemas.TopicEvents, e.CampaignID, schemas.Meta{
		ID: schemas.CampaignEventID(e.CampaignID, e.Sequence), Type: e.Event.Type(), Source: ceSource,
		Subject: e.CampaignID, Time: e.OccurredAt}, e)
	if err != nil {
		return nil, fmt.Errorf("scheduler: campaign %s event %s: %w", e.CampaignID, e.Event, err)
	}
	return r, nil
}

// callRequestRecord is a released call, exactly as a client's request
// would be.
func callRequestRecord(req schemas.CallRequested) (*kgo.Record, error) {
	r, err := schemas.NewRecord(schemas.TopicRequested, req.CallID, schemas.Meta{
		Type: schemas.TypeCallRequested, Source: ceSource, Subject: req.CallID, Time: req.RequestedAt}, req)
	if err != nil {
		return nil, fmt.Errorf("scheduler: release call %s: %w", req.CallID, err)
	}
	return r, nil
}

// outcomeOf is the outcome relay's rule: an ended event of a campaign call
// becomes that campaign's outcome command; any other record is none of its
// business (the bool is false).
func outcomeOf(ev *schemas.Event) (schemas.CampaignOutcome, bool, error) {
	if ev.Type != schemas.TypeCallEnded {
		return schemas.CampaignOutcome{}, false, nil
	}
	var ce schemas.CallEvent
	if err := json.Unmarshal(ev.Data, &ce); err != nil {
		return schemas.CampaignOutcome{}, false, fmt.Errorf("scheduler: ended event %s: %w", ev.ID, err)
	}
	if ce.CampaignID == "" || ce.ContactID == "" || ce.Attempt < 1 {
		return schemas.CampaignOutcome{}, false, nil
	}
	return schemas.CampaignOutcome{
		CampaignID: ce.CampaignID, WorkspaceID: ce.WorkspaceID, ContactID: ce.ContactID, Attempt: ce.Attempt,
		CallID: ce.CallID, Outcome: ce.Outcome, AnsweredBy: ce.AnsweredBy, EndedAt: ce.OccurredAt,
	}, true, nil
}

// outcomeRecord is the relayed outcome, keyed by its campaign so that it
// reaches the campaign's owner in order with the campaign's other commands.
func outcomeRecord(o schemas.CampaignOutcome) (*kgo.Record, error) {
	r, err := schemas.NewRecord(schemas.TopicCampaignCommands, o.CampaignID, schemas.Meta{
		ID: o.CallID + "-outcome", Type: schemas.TypeCampaignOutcome, Source: ceSource, Subject: o.CampaignID, Time: o.EndedAt}, o)
	if err != nil {
		return nil, fmt.Errorf("scheduler: relay outcome of call %s: %w", o.CallID, err)
	}
	return r, nil
}
