package scheduler

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/dialstream/dialstream/schemas"
)

const uploadID = "0123456789abcdef01234567"

// A campaign through the service, with the test playing ingest and the
// dialer: every contact is called, the busy one twice, each attempt under
// its derived call id; no one-second window holds more releases than
// calls_per_second and no more calls than max_concurrent are in progress;
// the campaign's webhooks say started, then completed with the counters.
func TestCampaignThroughTheService(t *testing.T) {
	b := startBroker(t)
	p := newPipeline(t, b)
	startScheduler(t, b, nil)

	id := campaignID(1)
	cmd := schemas.Campaign{CampaignID: id, WorkspaceID: "ws_a", Name: "renewals", CallAgentID: "agent_a",
		CallbackURL: "https://example.com/hooks", Schedule: schemas.CampaignSchedule{Windows: allWeek},
		Pacing: schemas.Pacing{CallsPerSecond: 5, MaxConcurrent: 3},
		Retry:  schemas.RetryPolicy{Busy: &schemas.RetryRule{DelaySeconds: 1, MaxAttempts: 2}},
		Start:  true, CreatedAt: time.Now().UTC()}
	p.send(schemas.TypeCampaignCreated, id, cmd)
	var ks []schemas.Contact
	for i := range 8 {
		ks = append(ks, schemas.Contact{ContactID: fmt.Sprintf("c%d", i), To: fmt.Sprintf("+1555010%04d", 200+i), Row: i + 1,
			DynamicVariables: map[string]string{"firstName": fmt.Sprintf("P%d", i)}})
	}
	p.send(schemas.TypeCampaignContacts, id, schemas.CampaignContacts{CampaignID: id, WorkspaceID: "ws_a", UploadID: uploadID,
		Contacts: ks, AddedAt: time.Now().UTC()})

	// The dialer's part: each call ends 150 ms after it was seen, c0's
	// first attempt busy, every other completed.
	ended := map[string]bool{}
	maxLive := 0
	busyEnded := time.Time{}
	testutil.EventuallyWhy(t, 30*time.Second, "the campaign to complete", func() (bool, string) {
		reqs, seenAt := p.seen()
		live := 0
		for _, r := range reqs {
			if !ended[r.CallID] {
				live++
			}
		}
		maxLive = max(maxLive, live)
		for i, r := range reqs {
			if ended[r.CallID] || time.Since(seenAt[i]) < 150*time.Millisecond {
				continue
			}
			o := schemas.OutcomeCompleted
			if r.Campaign.ContactID == "c0" && r.Campaign.Attempt == 1 {
				o, busyEnded = schemas.OutcomeBusy, time.Now()
			}
			p.end(r, o)
			ended[r.CallID] = true
		}
		evs := p.campaignEvents()
		return len(evs) > 0 && evs[len(evs)-1].Event == schemas.CampaignEventCompleted, fmt.Sprintf("%d requests, %d events", len(reqs), len(evs))
	})

	reqs := p.requests()
	if maxLive > 3 {
		t.Errorf("%d calls in progress at once, max_concurrent is 3", maxLive)
	}
	seen := map[string]bool{}
	var at []time.Time
	for _, r := range reqs {
		want := schemas.CampaignCallID(id, r.Campaign.ContactID, r.Campaign.Attempt)
		if r.CallID != want || seen[r.CallID] {
			t.Errorf("request %s for %s attempt %d: want id %s, once", r.CallID, r.Campaign.ContactID, r.Campaign.Attempt, want)
		}
		seen[r.CallID] = true
		if r.To != ks[slices.IndexFunc(ks, func(k schemas.Contact) bool { return k.ContactID == r.Campaign.ContactID })].To ||
			r.DynamicVariables["firstName"] == "" || r.CallAgentID != "agent_a" || r.CallbackURL != cmd.CallbackURL {
			t.Errorf("request %s does not carry its contact and campaign: %+v", r.CallID, r)
		}
		if r.Campaign.ContactID == "c0" && r.Campaign.Attempt == 2 && r.RequestedAt.Before(busyEnded.Add(time.Second-50*time.Millisecond)) {
			t.Errorf("retry released at %s, under 1 s after the busy end at %s", r.RequestedAt, busyEnded)
		}
		at = append(at, r.RequestedAt)
	}
	if len(reqs) != 9 {
		t.Errorf("%d requests, want 9 (8 contacts, c0 twice)", len(reqs))
	}
	assertPaced(t, at, 5)

	evs := p.campaignEvents()
	last := evs[len(evs)-1]
	if len(evs) != 2 || evs[0].Event != schemas.CampaignEventStarted || evs[0].Sequence != 1 || last.Sequence != 2 {
		t.Errorf("campaign events %+v, want started then completed", evs)
	}
	n := last.Counters
	if n.Contacts != 8 || n.Attempts != 9 || n.ByState[schemas.ContactDone] != 8 || n.ByOutcome[schemas.OutcomeCompleted] != 8 || n.InProgress != 0 {
		t.Errorf("completed counters %+v, want 8 contacts done and completed, 9 attempts", n)
	}
}

// assertPaced checks that no one-second window holds more than cps release
// instants.
func assertPaced(t *testing.T, at []time.Time, cps int) {
	t.Helper()
	at = slices.Clone(at)
	slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })
	for i := range at {
		n := 0
		for j := i; j < len(at) && at[j].Sub(at[i]) < time.Second; j++ {
			n++
		}
		if n > cps {
			t.Errorf("%d releases in the second from %s, calls_per_second is %d", n, at[i].Format(time.StampMilli), cps)
		}
	}
}

// With a clock the test moves: contacts in New York and Berlin are released
// only inside their own windows (Mon-Fri 10:00-19:00 local); a pause holds
// releases, resume continues, cancel ends the contact still queued while
// the call in progress finishes and is counted.
func TestWindowsPauseResumeCancel(t *testing.T) {
	b := startBroker(t)
	p := newPipeline(t, b)
	clock := &testClock{}
	// Wednesday 2026-12-09 12:00 UTC: 13:00 in Berlin, 07:00 in New York.
	clock.set(time.Date(2026, 12, 9, 12, 0, 0, 0, time.UTC))
	startScheduler(t, b, clock.now)

	id := campaignID(2)
	p.send(schemas.TypeCampaignCreated, id, schemas.Campaign{CampaignID: id, WorkspaceID: "ws_a", Name: "windows", CallAgentID: "agent_a",
		Schedule: schemas.CampaignSchedule{Windows: []schemas.Window{{Days: []string{"mon", "tue", "wed", "thu", "fri"}, Start: "10:00", End: "19:00"}}},
		Pacing:   schemas.Pacing{CallsPerSecond: 10, MaxConcurrent: 2}, Start: true, CreatedAt: clock.now().UTC()})
	p.send(schemas.TypeCampaignContacts, id, schemas.CampaignContacts{CampaignID: id, WorkspaceID: "ws_a", UploadID: uploadID, AddedAt: clock.now().UTC(),
		Contacts: []schemas.Contact{
			{ContactID: "berlin", To: "+15550100201", Timezone: "Europe/Berlin"},
			{ContactID: "ny1", To: "+15550100202", Timezone: "America/New_York"},
			{ContactID: "ny2", To: "+15550100203", Timezone: "America/New_York"},
			{ContactID: "ny3", To: "+15550100204", Timezone: "America/New_York"},
		}})
	released := func() []string {
		var ids []string
		for _, r := range p.requests() {
			ids = append(ids, r.Campaign.ContactID)
		}
		return ids
	}
	testutil.Eventually(t, 10*time.Second, "berlin to be released", func() bool { return slices.Contains(released(), "berlin") })
	testutil.Consistently(t, time.Second, "no New York contact before 10:00 New York", func() bool { return len(released()) == 1 })

	ctl := func(a schemas.CampaignAction) {
		p.send(schemas.TypeCampaignControl, id, schemas.CampaignControl{CampaignID: id, WorkspaceID: "ws_a", Action: a, RequestedAt: clock.now().UTC()})
	}
	ctl(schemas.ActionPause)
	testutil.Eventually(t, 10*time.Second, "the paused event", func() bool { return len(p.campaignEvents()) == 2 })
	clock.set(time.Date(2026, 12, 9, 15, 0, 1, 0, time.UTC)) // 10:00:01 in New York
	testutil.Consistently(t, time.Second, "a paused campaign to release nothing", func() bool { return len(released()) == 1 })

	ctl(schemas.ActionResume)
	// max_concurrent 2: berlin's call is still in progress, so one New York
	// contact goes and two wait.
	testutil.Eventually(t, 10*time.Second, "one New York contact after resume", func() bool { return len(released()) == 2 })
	testutil.Consistently(t, 500*time.Millisecond, "max_concurrent 2 to hold", func() bool { return len(released()) == 2 })

	ctl(schemas.ActionCancel)
	testutil.Eventually(t, 10*time.Second, "the canceled event", func() bool {
		evs := p.campaignEvents()
		return len(evs) > 0 && evs[len(evs)-1].Event == schemas.CampaignEventCanceled
	})
	// The calls in progress finish after the cancel; nothing more is released.
	for _, r := range p.requests() {
		p.end(r, schemas.OutcomeCompleted)
	}
	testutil.Consistently(t, time.Second, "nothing released after cancel", func() bool { return len(released()) == 2 })

	evs := p.campaignEvents()
	var kinds []schemas.CampaignEvent
	for _, e := range evs {
		kinds = append(kinds, e.Event)
	}
	want := []schemas.CampaignEvent{schemas.CampaignEventStarted, schemas.CampaignEventPaused, schemas.CampaignEventResumed, schemas.CampaignEventCanceled}
	if !slices.Equal(kinds, want) {
		t.Fatalf("campaign events %v, want %v", kinds, want)
	}
	if n := evs[3].Counters; n.ByState[schemas.ContactCanceled] != 2 || n.ByState[schemas.ContactCalling] != 2 {
		t.Errorf("canceled event counters %+v, want 2 canceled (the queued New York contacts) and 2 calling", n)
	}
}

// Scheduled single calls: released at start_at and not before, with
// requested_at the release time; a cancel before the release releases the
// call already canceled (the dialer ends it without ringing); a cancel
// after it is forwarded to the requested topic behind the request.
func TestScheduledCalls(t *testing.T) {
	b := startBroker(t)
	p := newPipeline(t, b)
	startScheduler(t, b, nil)

	sched := func(id string, startAt time.Time) {
		req := schemas.CallRequested{CallID: id, WorkspaceID: "ws_a", To: "+15550100201", CallAgentID: "agent_a", RequestedAt: time.Now().UTC()}
		p.send(schemas.TypeCallScheduled, id, schemas.CallScheduled{Request: req, StartAt: startAt, ScheduledAt: time.Now().UTC()})
	}
	cancel := func(id string) {
		p.send(schemas.TypeCallCancel, id, schemas.CallCancel{CallID: id, WorkspaceID: "ws_a", RequestedAt: time.Now().UTC()})
	}
	later, soon, never := campaignID(10), campaignID(11), campaignID(12)
	startAt := time.Now().Add(1500 * time.Millisecond).UTC()
	sched(later, startAt)
	sched(soon, time.Now().Add(200*time.Millisecond).UTC())
	sched(never, time.Now().Add(time.Hour).UTC())
	cancel(never)

	byID := func() map[string]schemas.CallRequested {
		m := map[string]schemas.CallRequested{}
		for _, r := range p.requests() {
			m[r.CallID] = r
		}
		return m
	}
	testutil.Eventually(t, 10*time.Second, "the canceled call released canceled, and the soon one", func() bool {
		m := byID()
		_, ok := m[soon]
		return ok && m[never].CanceledAt != nil
	})
	cancel(soon)
	testutil.Eventually(t, 10*time.Second, "the late cancel forwarded", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.can) == 1 && p.can[0].CallID == soon
	})
	testutil.Eventually(t, 10*time.Second, "the later call released", func() bool { _, ok := byID()[later]; return ok })
	p.mu.Lock()
	for i, r := range p.req {
		if r.CallID == later && (p.reqAt[i].Before(startAt) || r.RequestedAt.Before(startAt)) {
			t.Errorf("released at %s (requested_at %s), before start_at %s", p.reqAt[i], r.RequestedAt, startAt)
		}
	}
	p.mu.Unlock()
	if n := len(p.requests()); n != 3 {
		t.Errorf("%d requests, want 3 (one per call)", n)
	}
}
