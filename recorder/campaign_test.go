package recorder

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/schemas"
)

// A campaign's own events and their webhook attempts share the call topics
// but are not calls: the recorder passes over them (skipped, not invalid),
// so the campaign never shows up as a call in the records.
func TestCampaignEventsAreNotCalls(t *testing.T) {
	reg := testRegistry(t)
	campaign := callID(7)
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	ev := schemas.CampaignEventData{CampaignID: campaign, WorkspaceID: "ws_a", Sequence: 1, Event: schemas.CampaignEventStarted,
		Status: schemas.CampaignRunning, OccurredAt: at, Name: "renewals",
		Counters: schemas.CampaignCounters{ByState: map[schemas.ContactStatus]int{}, ByOutcome: map[schemas.Outcome]int{}}}
	er, err := schemas.NewRecord(schemas.TopicEvents, campaign, schemas.Meta{ID: schemas.CampaignEventID(campaign, 1),
		Type: ev.Event.Type(), Source: "/dialstream/scheduler", Subject: campaign}, ev)
	if err != nil {
		t.Fatal(err)
	}
	a := schemas.WebhookAttempt{EventID: schemas.CampaignEventID(campaign, 1), EventType: ev.Event.Type(), CallID: campaign,
		WorkspaceID: "ws_a", Sequence: 1, Attempt: 1, MaxAttempts: 8, URL: "https://example.test/hook", AttemptedAt: at,
		StatusCode: 204, Result: schemas.WebhookSuccess}
	ar, err := schemas.NewRecord(schemas.TopicWebhookDeliveries, campaign, schemas.Meta{Type: schemas.TypeWebhookAttempt, Source: "/test", Subject: campaign}, a)
	if err != nil {
		t.Fatal(err)
	}
	// A nil writer: a record that reached the database would panic here.
	for _, r := range []struct {
		name string
		rec  *kgo.Record
	}{{"campaign event", er}, {"campaign webhook attempt", ar}} {
		got, err := apply(context.Background(), nil, reg, r.rec)
		if err != nil || got != resultSkipped {
			t.Errorf("%s: %v %v, want skipped", r.name, got, err)
		}
	}
}
