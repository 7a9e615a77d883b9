package ingest

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/dialstream/dialstream/internal/callrecords"
	"github.com/dialstream/dialstream/schemas"
)

// The read routes answer from the campaign tables as the recorder writes
// them: the campaign with its counters, its contacts paged with their
// attempts, the CSV export, the list; another workspace sees none of it.
func TestCampaignReadsFromRecords(t *testing.T) {
	env := newTestEnv(t)
	now := time.Now().UTC().Truncate(time.Second)
	started := now.Add(-time.Minute)
	id := "00000000000000000000ca01"
	st := schemas.CampaignState{Kind: schemas.StateKindCampaign, Status: schemas.CampaignRunning, StartedAt: &started, UpdatedAt: now,
		Campaign: schemas.Campaign{CampaignID: id, WorkspaceID: "ws_demo", Name: "renewals", CallAgentID: demoAgent,
			Schedule: schemas.CampaignSchedule{Windows: []schemas.Window{{Days: []string{"mon"}, Start: "10:00", End: "19:00"}}},
			Pacing:   schemas.Pacing{CallsPerSecond: 1, MaxConcurrent: 2}, CreatedAt: now.Add(-time.Hour)},
		Counters: schemas.CampaignCounters{Contacts: 3, Attempts: 2, ByState: map[schemas.ContactStatus]int{schemas.ContactQueued: 1, schemas.ContactDone: 2},
			ByOutcome: map[schemas.Outcome]int{schemas.OutcomeCompleted: 1, schemas.OutcomeBusy: 1}}}
	ended := now.Add(-30 * time.Second)
	contacts := []schemas.ContactState{
		{Contact: schemas.Contact{ContactID: "a", To: "+15550100001", Row: 2}, Status: schemas.ContactDone, Outcome: schemas.OutcomeCompleted,
			Attempts: []schemas.ContactAttempt{{Attempt: 1, CallID: schemas.CampaignCallID(id, "a", 1), ReleasedAt: started, Outcome: schemas.OutcomeCompleted, EndedAt: &ended}}},
		{Contact: schemas.Contact{ContactID: "b", To: "+15550100002", Row: 3}, Status: schemas.ContactDone, Outcome: schemas.OutcomeBusy,
			Attempts: []schemas.ContactAttempt{{Attempt: 1, CallID: schemas.CampaignCallID(id, "b", 1), ReleasedAt: started, Outcome: schemas.OutcomeBusy, EndedAt: &ended}}},
		{Contact: schemas.Contact{ContactID: "c", To: "+15550100003", Row: 4}, Status: schemas.ContactQueued, Attempts: []schemas.ContactAttempt{}},
	}
	ctx := context.Background()
	err := env.st.Write(ctx, func(w *callrecords.Writer) error {
		b, _ := json.Marshal(st)
		if _, err := w.PutCampaign(ctx, &st, b); err != nil {
			return err
		}
		for i := range contacts {
			c := &contacts[i]
			c.Kind, c.CampaignID, c.WorkspaceID, c.UpdatedAt = schemas.StateKindContact, id, "ws_demo", now
			b, _ := json.Marshal(c)
			if _, err := w.PutContact(ctx, c, b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	code, body := env.get(t, "/v1/api/campaigns/"+id)
	var got CampaignEnvelope
	mustUnmarshal(t, []byte(body), &got)
	if code != 200 || got.Campaign.Status != schemas.CampaignRunning || got.Campaign.Counters.ByOutcome[schemas.OutcomeBusy] != 1 ||
		got.Campaign.EstimatedFinishAt == nil || got.Campaign.EstimatedFinishAt.Before(now) {
		t.Fatalf("GET campaign: %d %s", code, body)
	}
	code, body = env.get(t, "/v1/api/campaigns/"+id+"/contacts?limit=2")
	var page ContactList
	mustUnmarshal(t, []byte(body), &page)
	if code != 200 || len(page.Contacts) != 2 || page.Contacts[0].ContactID != "a" || len(page.Contacts[0].Attempts) != 1 || page.NextCursor == "" {
		t.Fatalf("contacts page 1: %d %s", code, body)
	}
	code, body = env.get(t, "/v1/api/campaigns/"+id+"/contacts?limit=2&cursor="+page.NextCursor)
	page = ContactList{}
	mustUnmarshal(t, []byte(body), &page)
	if code != 200 || len(page.Contacts) != 1 || page.Contacts[0].ContactID != "c" || page.NextCursor != "" {
		t.Fatalf("contacts page 2: %d %s", code, body)
	}
	code, body = env.get(t, "/v1/api/campaigns/"+id+"/contacts?status=done")
	page = ContactList{}
	mustUnmarshal(t, []byte(body), &page)
	if code != 200 || len(page.Contacts) != 2 {
		t.Fatalf("done contacts: %d %s", code, body)
	}
	code, body = env.get(t, "/v1/api/campaigns/"+id+"/export")
	want := "contact_id,to,status,outcome,attempts,last_call_id,row\n" +
		"a,+15550100001,done,completed,1," + schemas.CampaignCallID(id, "a", 1) + ",2\n" +
		"b,+15550100002,done,busy,1," + schemas.CampaignCallID(id, "b", 1) + ",3\n" +
		"c,+15550100003,queued,,0,,4\n"
	if code != 200 || body != want {
		t.Fatalf("export: %d\n%s\nwant\n%s", code, body, want)
	}
	code, body = env.get(t, "/v1/api/campaigns?status=running")
	if code != 200 || !strings.Contains(body, id) {
		t.Fatalf("list: %d %s", code, body)
	}
	for _, p := range []string{"/v1/api/campaigns/" + id, "/v1/api/campaigns/" + id + "/contacts", "/v1/api/campaigns/" + id + "/export"} {
		if w := env.do(t, req{method: "GET", path: p, key: otherKey, workspace: "ws_other"}); w.Code != 404 {
			t.Fatalf("%s as ws_other: %d %s", p, w.Code, w.Body)
		}
	}
	if w := env.do(t, req{method: "GET", path: "/v1/api/campaigns", key: otherKey, workspace: "ws_other"}); w.Code != 200 || strings.Contains(w.Body.String(), id) {
		t.Fatalf("list as ws_other: %d %s", w.Code, w.Body)
	}
}
