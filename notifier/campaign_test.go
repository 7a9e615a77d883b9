package notifier

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/dialstream/dialstream/schemas"
)

// A campaign's own events (campaign.started ... campaign.completed) reach
// its callback_url signed like a call's, with webhook-id
// <campaign_id>-c<sequence> and the counters in the body; a failed attempt
// is retried under the same id.
func TestDeliversCampaignEvents(t *testing.T) {
	rc := newReceiver(t, func(n int, _ *http.Request, _ http.ResponseWriter) int {
		if n == 2 {
			return http.StatusServiceUnavailable
		}
		return http.StatusNoContent
	})
	e := newEnv(t, nil)
	campaign := callID()
	at := time.Now().UTC().Truncate(time.Millisecond)
	mk := func(seq int, ev schemas.CampaignEvent, st schemas.CampaignStatus) schemas.CampaignEventData {
		return schemas.CampaignEventData{CampaignID: campaign, WorkspaceID: "ws_a", Sequence: seq, Event: ev, Status: st,
			OccurredAt: at, Name: "renewals", CallAgentID: "agent_a", CallbackURL: rc.URL + "/campaigns",
			Counters: schemas.CampaignCounters{Contacts: 200, Attempts: 263, ByState: map[schemas.ContactStatus]int{schemas.ContactDone: 200},
				ByOutcome: map[schemas.Outcome]int{schemas.OutcomeCompleted: 151, schemas.OutcomeBusy: 49}}}
	}
	evs := []schemas.CampaignEventData{mk(1, schemas.CampaignEventStarted, schemas.CampaignRunning), mk(2, schemas.CampaignEventCompleted, schemas.CampaignCompleted)}
	var ids []string
	for _, ev := range evs {
		id := schemas.CampaignEventID(campaign, ev.Sequence)
		r, err := schemas.NewRecord(schemas.TopicEvents, campaign, schemas.Meta{ID: id, Type: ev.Event.Type(), Source: "/dialstream/scheduler", Subject: campaign}, ev)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	rc.allTaken(t, 30*time.Second, ids)

	wh, _ := standardwebhooks.NewWebhook(secretA)
	tries := map[string]int{}
	for _, h := range rc.got() {
		if err := wh.Verify(h.body, h.header); err != nil {
			t.Fatalf("campaign webhook does not verify: %v", err)
		}
		if h.path != "/campaigns" {
			t.Errorf("delivered to %s", h.path)
		}
		id := h.header.Get("webhook-id")
		tries[id]++
		var p CampaignPayload
		if err := json.Unmarshal(h.body, &p); err != nil || p.Data.EventID != id || p.Data.CampaignID != campaign {
			t.Fatalf("body %s: %v", h.body, err)
		}
		if id == ids[1] && (p.Type != "campaign.completed" || p.Data.Status != schemas.CampaignCompleted ||
			p.Data.Counters.Contacts != 200 || p.Data.Counters.ByOutcome[schemas.OutcomeBusy] != 49) {
			t.Errorf("completed body %s", h.body)
		}
		if id == ids[0] && p.Type != "campaign.started" {
			t.Errorf("started body %s", h.body)
		}
	}
	if tries[ids[0]]+tries[ids[1]] != 3 || (tries[ids[0]] != 2 && tries[ids[1]] != 2) {
		t.Fatalf("attempts per webhook-id %v: want one retried under its id", tries)
	}
	testutil.Eventually(t, 10*time.Second, "the delivery log has the campaign's attempts", func() bool {
		return len(e.attempts(campaign)) == 3
	})
}
