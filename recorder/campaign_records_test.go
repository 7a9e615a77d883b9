package recorder

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/callrecords"
	"github.com/dialstream/dialstream/internal/callrecords/dbtest"
	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/dialstream/dialstream/schemas"
)

// createCampaignTopics creates the scheduler's two topics as the
// scheduler is to create them (not in kafkax's spec yet).
func createCampaignTopics(t testing.TB, cl *kgo.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	compact := "compact"
	adm := kadm.NewClient(cl)
	for topic, cfg := range map[string]map[string]*string{
		schemas.TopicCampaignState:    {"cleanup.policy": &compact},
		schemas.TopicCampaignCommands: nil,
	} {
		resp, err := adm.CreateTopic(ctx, 3, 1, cfg, topic)
		if err == nil {
			err = resp.Err
		}
		if err != nil {
			t.Fatalf("create %s: %v", topic, err)
		}
	}
}

func testCampaign(id, ws string, status schemas.CampaignStatus, at time.Time) *schemas.CampaignState {
	return &schemas.CampaignState{Kind: schemas.StateKindCampaign, Status: status, EventSequence: 1, UpdatedAt: at,
		Campaign: schemas.Campaign{CampaignID: id, WorkspaceID: ws, Name: "renewals", CallAgentID: "agent_a",
			Schedule: schemas.CampaignSchedule{Windows: []schemas.Window{{Days: []string{"mon", "tue"}, Start: "10:00", End: "19:00"}}},
			Pacing:   schemas.Pacing{CallsPerSecond: 1, MaxConcurrent: 2}, CreatedAt: at},
		Counters: schemas.CampaignCounters{Contacts: 3, ByState: map[schemas.ContactStatus]int{schemas.ContactQueued: 3},
			ByOutcome: map[schemas.Outcome]int{}}}
}

func testContact(campaign, ws, id string, row int, status schemas.ContactStatus, at time.Time) *schemas.ContactState {
	return &schemas.ContactState{Kind: schemas.StateKindContact, CampaignID: campaign, WorkspaceID: ws, Status: status,
		Contact:  schemas.Contact{ContactID: id, To: fmt.Sprintf("+1555000%04d", row), Row: row},
		Attempts: []schemas.ContactAttempt{}, UpdatedAt: at}
}

func stateRecord(t testing.TB, key, typ string, v any) *kgo.Record {
	t.Helper()
	r, err := schemas.NewRecord(schemas.TopicCampaignState, key, schemas.Meta{Type: typ, Source: "/dialstream/scheduler"}, v)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func tombstone(key string) *kgo.Record {
	return &kgo.Record{Topic: schemas.TopicCampaignState, Key: []byte(key)}
}

// scheduledRecord is a call.scheduled for call id, to start at startAt.
func scheduledRecord(t testing.TB, id, ws string, at, startAt time.Time) *kgo.Record {
	t.Helper()
	req := schemas.CallRequested{CallID: id, WorkspaceID: ws, To: "+15550001234", CallAgentID: "agent_a",
		RequestedAt: at, Metadata: json.RawMessage(`{"crm":"x-1"}`)}
	r, err := schemas.NewRecord(schemas.TopicCampaignCommands, id, schemas.Meta{Type: schemas.TypeCallScheduled, Source: "/test", Subject: id},
		schemas.CallScheduled{Request: req, StartAt: startAt, ScheduledAt: at})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// State records and a call.scheduled in, rows out: the campaign and its
// contacts as the scheduler last wrote them (a later record replaces, a
// tombstone deletes), a scheduled call visible as "scheduled" until its
// release and events make it an ordinary call; the scheduler's other
// commands and its scheduled-call state are skipped, not invalid; the
// positions on both topics are stored with the rows.
func TestRecordsCampaignsAndScheduledCalls(t *testing.T) {
	for _, engine := range dbtest.Engines {
		t.Run(string(engine), func(t *testing.T) {
			b := startBroker(t)
			cl := producer(t, b)
			createCampaignTopics(t, cl)
			st := dbtest.Open(t, engine, callrecords.Options{Retention: callrecords.DefaultRetention})
			r := start(t, Config{Store: st, Registry: testRegistry(t), Kafka: kafkaConfig(b), RetentionInterval: time.Hour, GroupID: "g-campaigns"})
			ctx := context.Background()

			now := time.Now().UTC().Truncate(time.Millisecond)
			camp := callID(0xc1)
			ck := schemas.CampaignStateKey(camp)
			kk := func(id string) string { return schemas.ContactStateKey(camp, id) }
			control, err := schemas.NewRecord(schemas.TopicCampaignCommands, camp, schemas.Meta{Type: schemas.TypeCampaignControl, Source: "/test"},
				schemas.CampaignControl{CampaignID: camp, WorkspaceID: "ws_a", Action: schemas.ActionStart, RequestedAt: now})
			if err != nil {
				t.Fatal(err)
			}
			running := testCampaign(camp, "ws_a", schemas.CampaignRunning, now)
			running.Counters.InProgress = 1
			produce(t, cl,
				stateRecord(t, ck, schemas.TypeCampaignState, testCampaign(camp, "ws_a", schemas.CampaignDraft, now)),
				stateRecord(t, kk("a"), schemas.TypeContactState, testContact(camp, "ws_a", "a", 1, schemas.ContactQueued, now)),
				stateRecord(t, kk("b"), schemas.TypeContactState, testContact(camp, "ws_a", "b", 2, schemas.ContactQueued, now)),
				stateRecord(t, kk("c"), schemas.TypeContactState, testContact(camp, "ws_a", "c", 3, schemas.ContactQueued, now)),
				control,
				stateRecord(t, ck, schemas.TypeCampaignState, running),
				stateRecord(t, kk("a"), schemas.TypeContactState, testContact(camp, "ws_a", "a", 1, schemas.ContactCalling, now.Add(time.Second))),
				tombstone(kk("c")),
				// Another workspace, not in the registry; a record whose
				// key does not name its campaign.
				stateRecord(t, schemas.CampaignStateKey(callID(0xc2)), schemas.TypeCampaignState, testCampaign(callID(0xc2), "ws_unknown", schemas.CampaignRunning, now)),
				stateRecord(t, schemas.CampaignStateKey(callID(0xc3)), schemas.TypeCampaignState, testCampaign(camp, "ws_a", schemas.CampaignCanceled, now)),
			)

			sched := callID(0x5c)
			startAt := now.Add(time.Hour)
			produce(t, cl, scheduledRecord(t, sched, "ws_a", now, startAt),
				stateRecord(t, schemas.ScheduledCallStateKey(sched), schemas.TypeScheduledCallState, schemas.ScheduledCallState{
					Kind: schemas.StateKindCall, Status: schemas.ScheduledCallWaiting, DueAt: &startAt, UpdatedAt: now,
					Scheduled: schemas.CallScheduled{Request: schemas.CallRequested{CallID: sched, WorkspaceID: "ws_a", To: "+15550001234",
						CallAgentID: "agent_a", RequestedAt: now}, StartAt: startAt, ScheduledAt: now}}))

			testutil.EventuallyWhy(t, 30*time.Second, "the campaign, its contacts and the scheduled call recorded", func() (bool, string) {
				c, _, err := st.Campaign(ctx, "ws_a", camp)
				ks, _, err2 := st.CampaignContacts(ctx, "ws_a", camp, "", "", 10)
				call, _, err3 := st.Get(ctx, "ws_a", sched)
				var status schemas.CampaignStatus
				if c != nil {
					status = c.Status
				}
				var cs schemas.Status
				if call != nil {
					cs = call.Status
				}
				return status == schemas.CampaignRunning && len(ks) == 2 && ks[0].Status == schemas.ContactCalling && cs == "scheduled",
					fmt.Sprintf("campaign %q, %d contacts, call %q (%v %v %v)", status, len(ks), cs, err, err2, err3)
			})
			c, _, _ := st.Campaign(ctx, "ws_a", camp)
			if c.Counters.InProgress != 1 || c.Counters.ByState[schemas.ContactQueued] != 3 || c.Campaign.Name != "renewals" {
				t.Fatalf("campaign as recorded: %+v", c)
			}
			ks, _, _ := st.CampaignContacts(ctx, "ws_a", camp, "", "", 10)
			if ids := []string{ks[0].Contact.ContactID, ks[1].Contact.ContactID}; !slices.Equal(ids, []string{"a", "b"}) {
				t.Fatalf("contacts %v, want a, b (c tombstoned)", ids)
			}
			if got, _ := st.CampaignNumbers(ctx, "ws_a", camp, []string{"+15550000002", "+15550000003"}); len(got) != 1 || got["+15550000002"] != "b" {
				t.Fatalf("numbers in the campaign: %v", got)
			}
			if _, ok, _ := st.Campaign(ctx, "ws_unknown", callID(0xc2)); ok {
				t.Fatal("a campaign of a workspace not in the registry was recorded")
			}
			if _, ok, _ := st.Campaign(ctx, "ws_a", callID(0xc3)); ok {
				t.Fatal("a state record whose key names another campaign was recorded")
			}
			call, _, _ := st.Get(ctx, "ws_a", sched)
			if call.StartAt == nil || !call.StartAt.Equal(startAt) || call.Request == nil || !call.Request.Scheduled || call.Agent != "agent_a" {
				t.Fatalf("scheduled call as recorded: start_at %v, request %+v", call.StartAt, call.Request)
			}

			// The release and the dialer's events, the scheduler's state of
			// the released call in between: an ordinary ended call.
			recs := callRecords(t, sched, "ws_a", startAt)
			produce(t, cl, recs[0])
			produce(t, cl, stateRecord(t, schemas.ScheduledCallStateKey(sched), schemas.TypeScheduledCallState, schemas.ScheduledCallState{
				Kind: schemas.StateKindCall, Status: schemas.ScheduledCallReleased, ReleasedAt: &startAt, UpdatedAt: startAt,
				Scheduled: schemas.CallScheduled{Request: schemas.CallRequested{CallID: sched, WorkspaceID: "ws_a", To: "+15550001234",
					CallAgentID: "agent_a", RequestedAt: now}, StartAt: startAt, ScheduledAt: now}}))
			produce(t, cl, recs[1:]...)
			testutil.EventuallyWhy(t, 30*time.Second, "the released call ended", func() (bool, string) {
				call, _, err := st.Get(ctx, "ws_a", sched)
				if call == nil {
					return false, fmt.Sprint(err)
				}
				return call.Status == schemas.StatusEnded && len(call.Events) == 5, fmt.Sprintf("%s, %d events", call.Status, len(call.Events))
			})
			call, _, _ = st.Get(ctx, "ws_a", sched)
			if call.StartAt == nil || !call.StartAt.Equal(startAt) || call.Request.Scheduled || call.Key.At != startAt.UnixNano() {
				t.Fatalf("released call: start_at %v, request scheduled %v, key %d", call.StartAt, call.Request.Scheduled, call.Key.At)
			}

			// Positions: the end of every partition of both topics, stored
			// with the rows.
			testutil.EventuallyWhy(t, 10*time.Second, "the stored offsets at the end of the campaign topics", func() (bool, string) {
				ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, campaignTopics...)
				if err != nil {
					return false, err.Error()
				}
				stored, err := st.Offsets(ctx, "g-campaigns")
				if err != nil {
					return false, err.Error()
				}
				ok, why := true, ""
				ends.Each(func(o kadm.ListedOffset) {
					if got := stored[o.Topic][o.Partition]; o.Offset > 0 && got != o.Offset {
						ok, why = false, fmt.Sprintf("%s/%d: stored %d, end %d", o.Topic, o.Partition, got, o.Offset)
					}
				})
				return ok, why
			})
			for _, c := range []struct {
				topic, result string
				want          int
			}{
				{"campaign_state", "written", 7}, {"campaign_state", "skipped", 3}, {"campaign_state", "invalid", 1},
				{"campaign_commands", "written", 1}, {"campaign_commands", "skipped", 1}, {"campaign_commands", "invalid", 0},
			} {
				if got := counter(t, r.metrics, "dialstream_recorder_records_total", map[string]string{"topic": c.topic, "result": c.result}); got != float64(c.want) {
					t.Errorf("records_total{%s,%s} = %v, want %d", c.topic, c.result, got, c.want)
				}
			}
		})
	}
}

// The scheduler's state of a call canceled before its release (s/<call>,
// canceled) says nothing the call's own records do not: read before or
// after the released request and the dialer's ended/canceled event, the
// call is ended canceled, with its start_at.
func TestCanceledScheduledCallInAnyOrder(t *testing.T) {
	reg := testRegistry(t)
	ctx := context.Background()
	at := time.Now().UTC().Truncate(time.Millisecond)
	startAt := at.Add(time.Hour)
	for _, stateFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("state first %v", stateFirst), func(t *testing.T) {
			st := dbtest.Open(t, callrecords.SQLite, callrecords.Options{})
			id := callID(0x5d)
			sc := scheduledRecord(t, id, "ws_a", at, startAt)
			state := stateRecord(t, schemas.ScheduledCallStateKey(id), schemas.TypeScheduledCallState, schemas.ScheduledCallState{
				Kind: schemas.StateKindCall, Status: schemas.ScheduledCallCanceled, ReleasedAt: &at, UpdatedAt: at,
				Scheduled: schemas.CallScheduled{Request: schemas.CallRequested{CallID: id, WorkspaceID: "ws_a", To: "+15550001234",
					CallAgentID: "agent_a", RequestedAt: at}, StartAt: startAt, ScheduledAt: at}})
			req := schemas.CallRequested{CallID: id, WorkspaceID: "ws_a", To: "+15550001234", CallAgentID: "agent_a", RequestedAt: at, CanceledAt: &at}
			rr, err := schemas.NewRecord(schemas.TopicRequested, id, schemas.Meta{Type: schemas.TypeCallRequested, Source: "/dialstream/scheduler"}, req)
			if err != nil {
				t.Fatal(err)
			}
			queued := eventRecord(t, id, "ws_a", 1, schemas.StatusQueued, at)
			ended := endedCanceled(t, id, at)
			order := []*kgo.Record{sc, rr, queued, ended, state}
			if stateFirst {
				order = []*kgo.Record{state, sc, rr, queued, ended}
			}
			for i, r := range order {
				r.Offset = int64(i)
				if err := st.Write(ctx, func(w *callrecords.Writer) error { _, err := apply(ctx, w, reg, r); return err }); err != nil {
					t.Fatal(err)
				}
			}
			c, ok, err := st.Get(ctx, "ws_a", id)
			if err != nil || !ok {
				t.Fatalf("call not found (%v)", err)
			}
			if c.Status != schemas.StatusEnded || c.Outcome != schemas.OutcomeCanceled || c.StartAt == nil || !c.StartAt.Equal(startAt) {
				t.Fatalf("canceled scheduled call: %s %s start_at %v", c.Status, c.Outcome, c.StartAt)
			}
		})
	}
}

func endedCanceled(t testing.TB, id string, at time.Time) *kgo.Record {
	t.Helper()
	ev := schemas.CallEvent{CallID: id, WorkspaceID: "ws_a", Sequence: 2, Status: schemas.StatusEnded, RequestedAt: &at,
		OccurredAt: at, To: "+15550001234", CallAgentID: "agent_a", Outcome: schemas.OutcomeCanceled, EndedBy: schemas.EndedByClient}
	r, err := schemas.NewRecord(schemas.TopicEvents, id, schemas.Meta{ID: schemas.EventID(id, 2), Type: schemas.StatusEnded.Type(), Source: "/test", Subject: id}, ev)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Until the scheduler creates its topics the recorder records the calls
// as before (a missing topic neither fails nor stalls it), and it takes
// the campaign topics in once they exist, without a restart.
func TestCampaignTopicsCreatedLater(t *testing.T) {
	b := startBroker(t)
	cl := producer(t, b)
	st := dbtest.Open(t, callrecords.SQLite, callrecords.Options{})
	start(t, Config{Store: st, Registry: testRegistry(t), Kafka: kafkaConfig(b), RetentionInterval: time.Hour})
	ctx := context.Background()
	now := time.Now().UTC()
	produce(t, cl, callRecords(t, callID(1), "ws_a", now)...)
	testutil.Eventually(t, 30*time.Second, "a call recorded with the campaign topics missing", func() bool {
		return len(eventsOf(t, st, "ws_a", callID(1))) == 5
	})
	topics, err := kadm.NewClient(cl).ListTopics(ctx, campaignTopics...)
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range campaignTopics {
		if topics.Has(topic) {
			t.Fatalf("consuming %s created it", topic)
		}
	}

	createCampaignTopics(t, cl)
	camp := callID(0xc1)
	produce(t, cl, stateRecord(t, schemas.CampaignStateKey(camp), schemas.TypeCampaignState, testCampaign(camp, "ws_a", schemas.CampaignRunning, now)),
		scheduledRecord(t, callID(2), "ws_a", now, now.Add(time.Hour)))
	testutil.EventuallyWhy(t, 60*time.Second, "the campaign topics taken in once they exist", func() (bool, string) {
		_, okCamp, err := st.Campaign(ctx, "ws_a", camp)
		c, okCall, err2 := st.Get(ctx, "ws_a", callID(2))
		return okCamp && okCall && c.Status == "scheduled", fmt.Sprintf("campaign %v, call %v (%v %v)", okCamp, okCall, err, err2)
	})
	produce(t, cl, callRecords(t, callID(3), "ws_a", now)...)
	testutil.Eventually(t, 30*time.Second, "calls still recorded", func() bool {
		return len(eventsOf(t, st, "ws_a", callID(3))) == 5
	})
}
