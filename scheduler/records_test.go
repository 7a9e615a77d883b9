package scheduler

import (
	"testing"
	"time"

	"github.com/dialstream/dialstream/schemas"
)

// What a campaign's life writes decodes back as the contracts say: the
// state to the command's partition, the call request by call id, the
// campaign event with its stable id; and the relay turns the call's ended
// event into the campaign's outcome, which the campaign then applies.
func TestRecordsRoundTrip(t *testing.T) {
	c, created := applyCreated(nil, testCampaignCmd(true))
	add := c.applyContacts(contactsCmd(t0, schemas.Contact{ContactID: "a", To: "+15550100201"}))
	rec, err := campaignStateRecord(c, 3)
	if err != nil || rec.Partition != 3 || string(rec.Key) != "c/"+testCampaignID {
		t.Fatalf("campaign state: %v %+v", err, rec)
	}
	kr, err := contactStateRecord(add.contacts[0], 3)
	if err != nil || kr.Partition != 3 || string(kr.Key) != "k/"+testCampaignID+"/a" {
		t.Fatalf("contact state: %v %+v", err, kr)
	}
	er, err := campaignEventRecord(created.events[0])
	if err != nil {
		t.Fatal(err)
	}
	ev, err := schemas.Decode(er)
	if err != nil || ev.ID != testCampaignID+"-c1" || ev.Type != "dialstream.campaign.started.v1" || string(er.Key) != testCampaignID {
		t.Fatalf("campaign event: %v %+v", err, ev)
	}

	at := t0.Add(time.Hour)
	req := c.release(c.contacts["a"], at)
	rr, err := callRequestRecord(req)
	if err != nil || rr.Topic != schemas.TopicRequested || string(rr.Key) != req.CallID {
		t.Fatalf("request: %v %+v", err, rr)
	}

	ended := schemas.CallEvent{CallID: req.CallID, WorkspaceID: "ws_a", Sequence: 4, Status: schemas.StatusEnded, OccurredAt: at.Add(time.Minute),
		Outcome: schemas.OutcomeCompleted, EndedBy: schemas.EndedByCallee, CampaignID: testCampaignID, ContactID: "a", Attempt: 1}
	endRec, err := schemas.NewRecord(schemas.TopicEvents, req.CallID, schemas.Meta{Type: schemas.TypeCallEnded, Source: "/dialstream/dialer", Time: ended.OccurredAt}, ended)
	if err != nil {
		t.Fatal(err)
	}
	endEv, err := schemas.Decode(endRec)
	if err != nil {
		t.Fatal(err)
	}
	o, ok, err := outcomeOf(endEv)
	if err != nil || !ok || o.CallID != req.CallID || o.Outcome != schemas.OutcomeCompleted || o.Attempt != 1 {
		t.Fatalf("relay: %v %v %+v", ok, err, o)
	}
	or, err := outcomeRecord(o)
	if err != nil || string(or.Key) != testCampaignID {
		t.Fatalf("outcome record: %v %+v", err, or)
	}
	if tr := c.applyOutcome(o); c.state.Status != schemas.CampaignCompleted || len(tr.events) != 1 {
		t.Fatalf("the relayed outcome did not complete the campaign: %+v", c.state)
	}

	// A plain call's ended event, and a campaign call's answered event, are
	// not relayed.
	plain := ended
	plain.CampaignID, plain.ContactID, plain.Attempt = "", "", 0
	pr, _ := schemas.NewRecord(schemas.TopicEvents, req.CallID, schemas.Meta{Type: schemas.TypeCallEnded, Source: "/x", Time: at}, plain)
	pev, _ := schemas.Decode(pr)
	if _, ok, _ := outcomeOf(pev); ok {
		t.Fatal("a plain call's outcome was relayed")
	}
	ans := schemas.CallEvent{CallID: req.CallID, WorkspaceID: "ws_a", Sequence: 3, Status: schemas.StatusAnswered, OccurredAt: at, CampaignID: testCampaignID, ContactID: "a", Attempt: 1}
	ar, _ := schemas.NewRecord(schemas.TopicEvents, req.CallID, schemas.Meta{Type: schemas.TypeCallAnswered, Source: "/x", Time: at}, ans)
	aev, _ := schemas.Decode(ar)
	if _, ok, _ := outcomeOf(aev); ok {
		t.Fatal("an answered event was relayed")
	}
}
