package containers

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dialstream/dialstream/schemas"
	"github.com/dialstream/dialstream/tests/invariants"
)

// The campaign of TestSchedulerKilled: 80 callees who answer and 40 who are
// busy, each a number of its own (+1 555 01x xSSS plays +1 555 010 0SSS),
// interleaved so both kinds are released before and after the kill. Busy is
// retried once after 1 s, so a busy number is rung exactly twice.
const (
	campaignAnswering = 80
	campaignBusy      = 40
	campaignContacts  = campaignAnswering + campaignBusy
	campaignDials     = campaignAnswering + 2*campaignBusy
	// killAfterReleases is how many releases the scheduler has written
	// when it is killed: about 8 s of the campaign's 4 calls/s, a quarter
	// of its 160 dials.
	killAfterReleases = 40
)

// campaignBody creates the campaign: 4 calls/s, 10 at once, all week round
// the clock, webhooks to the suite's receiver.
const campaignBody = `{"name": "scheduler killed", "call_agent_id": "` + agentID + `",
	"callback_url": "` + callbackURL + `",
	"schedule": {"windows": [{"days": ["mon","tue","wed","thu","fri","sat","sun"], "start": "00:00", "end": "24:00"}],
	             "default_timezone": "America/New_York"},
	"pacing": {"calls_per_second": 4, "max_concurrent": 10},
	"retry": {"busy": {"delay_seconds": 1, "max_attempts": 2}}}`

// contactPlan is what one contact of the campaign must come to.
type contactPlan struct {
	to      string
	outcome schemas.Outcome
	dials   int
}

func campaignPlan() (csv string, plan map[string]contactPlan) {
	var b strings.Builder
	b.WriteString("to,contact_id\n")
	plan = map[string]contactPlan{}
	answering, busy := 0, 0
	for i := range campaignContacts {
		var p contactPlan
		if i%3 == 2 {
			p = contactPlan{fmt.Sprintf("+155501%02d486", 10+busy), schemas.OutcomeBusy, 2}
			busy++
		} else {
			p = contactPlan{fmt.Sprintf("+155501%02d001", 10+answering), schemas.OutcomeCompleted, 1}
			answering++
		}
		id := fmt.Sprintf("c%03d", i+1)
		plan[id] = p
		fmt.Fprintf(&b, "%s,%s\n", p.to, id)
	}
	return b.String(), plan
}

// SIGKILL the scheduler while it releases a 120-contact campaign, then
// start it again: it reloads its campaigns from the state topic and goes
// on. The campaign must complete with every contact done on its outcome;
// the phone network must have rung each number exactly as the retry policy
// says (answering once, busy twice), never twice for one attempt; every
// attempt's call (its id derived from campaign, contact and attempt) must
// end exactly once, and every call and campaign event reach the receiver.
func TestSchedulerKilled(t *testing.T) {
	start := time.Now()
	tp := newTopology(t, topoOptions{dialers: 2, notifiers: 2, schedulers: 1})
	rec, err := invariants.NewRecorder(tp.kafkaOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rec.Close)
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	api := tp.client()

	csv, plan := campaignPlan()
	var created struct {
		CampaignID string `json:"campaign_id"`
	}
	tp.must("create the campaign", api.Do(ctx, http.MethodPost, "/campaigns", "application/json", campaignBody, &created))
	campaign := "/campaigns/" + created.CampaignID
	var up struct {
		Accepted, Skipped int
	}
	tp.must("upload the contacts", api.Do(ctx, http.MethodPost, campaign+"/contacts", "text/csv", csv, &up))
	if up.Accepted != campaignContacts || up.Skipped != 0 {
		t.Fatalf("upload: %d accepted, %d skipped; want %d, 0", up.Accepted, up.Skipped, campaignContacts)
	}
	tp.t0 = time.Now()
	tp.must("start the campaign", api.Do(ctx, http.MethodPost, campaign+"/start", "", "", nil))
	tp.logf("campaign %s started: %d contacts", created.CampaignID, campaignContacts)

	// The fault: SIGKILL while releases are being written and contacts
	// are still waiting for theirs.
	sched := "scheduler-1"
	releases := func() float64 {
		return tp.metric(ctx, sched, "dialstream_scheduler_releases_total", "kind", "campaign")
	}
	contacts := func(state schemas.ContactStatus) float64 {
		return tp.metric(ctx, sched, "dialstream_scheduler_contacts", "state", string(state))
	}
	tp.waitUntil(ctx, 60*time.Second, fmt.Sprintf("%d releases", killAfterReleases), func() (bool, string) {
		n := releases()
		return n >= killAfterReleases, fmt.Sprintf("%v released", n)
	})
	before, queued, waiting, calling := releases(), contacts(schemas.ContactQueued), contacts(schemas.ContactWaiting),
		contacts(schemas.ContactCalling)
	tp.kill(ctx, sched)
	tp.logf("%s had released %v attempts; %v contacts queued, %v waiting for a retry, %v calling", sched, before, queued, waiting, calling)
	tp.at(ctx, time.Since(tp.t0)+3*time.Second)
	tp.restart(ctx, sched)

	var view invariants.CampaignView
	tp.waitUntil(ctx, 4*time.Minute, "the campaign to complete", func() (bool, string) {
		v, err := api.Campaign(ctx, created.CampaignID)
		if err != nil {
			return false, err.Error()
		}
		view = v
		return v.Status == string(schemas.CampaignCompleted),
			fmt.Sprintf("%s: %d attempts, by state %v", v.Status, v.Counters.Attempts, v.Counters.ByState)
	})
	tp.logf("campaign completed")
	o := tp.settle(ctx, rec, 90*time.Second)
	after := releases()
	list, err := api.CampaignContacts(ctx, created.CampaignID)
	tp.must("list the contacts", err)

	rep := checkCampaign(created.CampaignID, plan, view, list, o)
	t.Logf("CHECKER %s:\n%s", t.Name(), rep.table())
	tp.judge([]evidence{
		{what: "attempts the scheduler had released before the SIGKILL (dialstream_scheduler_releases_total{kind=campaign})", n: int(before)},
		{what: "contacts it still held queued or waiting for a retry at the SIGKILL (dialstream_scheduler_contacts)", n: int(queued + waiting)},
		{what: "attempts the restarted scheduler released (its dialstream_scheduler_releases_total)", n: int(after)},
		{what: "contacts it held calling at the SIGKILL (a call released, its outcome not back)", n: int(calling), info: true},
		{what: "call requests the dialers took as duplicates (dialstream_dialer_duplicate_requests_total)", info: true,
			n: int(tp.metricOf(ctx, []string{"dialer-1", "dialer-2"}, "dialstream_dialer_duplicate_requests_total"))},
	})
	t.Logf("RUNTIME %s: topology up in %s, campaign with fault %s, whole test %s", t.Name(),
		tp.started.Round(time.Second), time.Since(tp.t0).Round(time.Second), time.Since(start).Round(time.Second))
	for _, p := range rep.problems {
		t.Errorf("campaign invariant violated: %s", p)
	}
}

// campaignReport is the verdict on a campaign run, from the sides a user
// sees: the API (campaign and contacts), the phone network's dials, the
// events topic and the webhooks the receiver got.
type campaignReport struct {
	rows     [][2]string
	problems []string
}

func (r campaignReport) table() string {
	var b strings.Builder
	for _, row := range r.rows {
		fmt.Fprintf(&b, "  %-9s %s\n", row[0], row[1])
	}
	return strings.TrimRight(b.String(), "\n")
}

// checkCampaign compares the campaign's plan with what every side saw.
func checkCampaign(campaignID string, plan map[string]contactPlan, view invariants.CampaignView, list []invariants.ContactView,
	o invariants.Observed) campaignReport {
	var r campaignReport
	problem := func(kind string, items []string) {
		if len(items) > 0 {
			slices.Sort(items)
			r.problems = append(r.problems, fmt.Sprintf("%s: %d: %s", kind, len(items), examples(items)))
		}
	}

	// The campaign, as GET shows it.
	c := view.Counters
	if view.Status != string(schemas.CampaignCompleted) || c.Contacts != campaignContacts || c.Attempts != campaignDials ||
		c.ByState[string(schemas.ContactDone)] != campaignContacts || len(c.ByState) != 1 ||
		c.ByOutcome[string(schemas.OutcomeCompleted)] != campaignAnswering || c.ByOutcome[string(schemas.OutcomeBusy)] != campaignBusy {
		problem("campaign counters", []string{fmt.Sprintf("%s with %d contacts, %d attempts, by state %v, by outcome %v; want completed, "+
			"%d, %d, all done, %d completed and %d busy", view.Status, c.Contacts, c.Attempts, c.ByState, c.ByOutcome,
			campaignContacts, campaignDials, campaignAnswering, campaignBusy)})
	}

	// Each contact and its attempts, as GET .../contacts lists them.
	attemptOf := map[string]string{} // call id -> contact id
	outcomeOf := map[string]schemas.Outcome{}
	var forgotten, wrong, underived []string
	listed := map[string]bool{}
	attempts := 0
	for _, ct := range list {
		listed[ct.ContactID] = true
		p, ok := plan[ct.ContactID]
		if !ok {
			wrong = append(wrong, fmt.Sprintf("contact %s is not in the upload", ct.ContactID))
			continue
		}
		if ct.Status != string(schemas.ContactDone) || ct.Outcome != string(p.outcome) || len(ct.Attempts) != p.dials {
			wrong = append(wrong, fmt.Sprintf("contact %s: %s/%s after %d attempts, want done/%s after %d",
				ct.ContactID, ct.Status, ct.Outcome, len(ct.Attempts), p.outcome, p.dials))
		}
		for i, a := range ct.Attempts {
			attempts++
			if want := schemas.CampaignCallID(campaignID, ct.ContactID, a.Attempt); a.Attempt != i+1 || a.CallID != want {
				underived = append(underived, fmt.Sprintf("contact %s attempt %d (listed %d) has call %s, want %s",
					ct.ContactID, i+1, a.Attempt, a.CallID, want))
			}
			attemptOf[a.CallID] = ct.ContactID
			outcomeOf[a.CallID] = p.outcome
		}
	}
	for id := range plan {
		if !listed[id] {
			forgotten = append(forgotten, id)
		}
	}
	problem("contacts uploaded and not listed", forgotten)
	problem("contacts not done on their number's outcome and policy", wrong)
	problem("attempts whose call id is not derived from (campaign, contact, attempt)", underived)

	// The phone network: each number rung as often as the policy says, each
	// room (one per call) once.
	byNumber, byRoom := map[string]int{}, map[string]int{}
	for _, d := range o.Dials {
		byNumber["+"+strings.TrimPrefix(strings.TrimPrefix(d.To, "tel:"), "+")]++
		byRoom[d.Room]++
	}
	var misdialed, twice []string
	asPolicy := 0
	for id, p := range plan {
		if n := byNumber[p.to]; n != p.dials {
			misdialed = append(misdialed, fmt.Sprintf("contact %s (%s) dialed %d times, want %d", id, p.outcome, n, p.dials))
		} else {
			asPolicy++
		}
	}
	for room, n := range byRoom {
		if n > 1 {
			twice = append(twice, fmt.Sprintf("room %s dialed %d times", room, n))
		}
	}
	problem("numbers dialed other than the policy says", misdialed)
	problem("calls dialed more than once", twice)

	// The events topic: every attempt's call ends exactly once, as its
	// number's script says; no call other than an attempt is placed.
	type callSeen struct {
		ended  map[string]schemas.Outcome // ce_id -> outcome
		room   string
		events map[string]bool
	}
	calls := map[string]*callSeen{}
	for _, e := range o.Events {
		cs := calls[e.CallID]
		if cs == nil {
			cs = &callSeen{ended: map[string]schemas.Outcome{}, events: map[string]bool{}}
			calls[e.CallID] = cs
		}
		cs.events[e.CEID] = true
		if e.RoomName != "" {
			cs.room = e.RoomName
		}
		if e.Status == string(schemas.StatusEnded) {
			cs.ended[e.CEID] = schemas.Outcome(e.Outcome)
		}
	}
	var unasked, notEnded, endedTwice, contrary, undialed []string
	outcomes := map[string]int{}
	endedOnce := 0
	for id, cs := range calls {
		if _, ok := attemptOf[id]; !ok {
			unasked = append(unasked, fmt.Sprintf("call %s (room %s)", id, cs.room))
		}
	}
	for id, contact := range attemptOf {
		cs := calls[id]
		switch {
		case cs == nil || len(cs.ended) == 0:
			notEnded = append(notEnded, fmt.Sprintf("call %s of contact %s", id, contact))
			continue
		case len(cs.ended) > 1:
			endedTwice = append(endedTwice, fmt.Sprintf("call %s of contact %s ended %d times", id, contact, len(cs.ended)))
			continue
		}
		endedOnce++
		for _, out := range cs.ended {
			outcomes[string(out)]++
			if out != outcomeOf[id] {
				contrary = append(contrary, fmt.Sprintf("call %s of contact %s ended %s, want %s", id, contact, out, outcomeOf[id]))
			}
		}
		if byRoom[cs.room] != 1 {
			undialed = append(undialed, fmt.Sprintf("call %s of contact %s: room %q dialed %d times", id, contact, cs.room, byRoom[cs.room]))
		}
	}
	problem("invalid records on the events topic", o.BadEvents)
	problem("calls no contact's attempt explains", unasked)
	problem("attempts without an ended event", notEnded)
	problem("attempts ended more than once", endedTwice)
	problem("attempts ended other than their number's script", contrary)
	problem("attempts whose room was not dialed exactly once", undialed)

	// The receiver: every event of every attempt's call, and every campaign
	// event, delivered and verified; one campaign.started and one
	// campaign.completed.
	delivered := map[string]bool{}
	distinct := map[string]bool{}
	for _, d := range o.Deliveries {
		distinct[d.WebhookID] = true
		if d.Verified && d.AnsweredWith/100 == 2 {
			delivered[d.WebhookID] = true
		}
	}
	var undelivered []string
	events, callsDelivered, campaignDelivered := 0, 0, 0
	for _, cs := range calls {
		for ceid := range cs.events {
			events++
			if delivered[ceid] {
				callsDelivered++
			} else {
				undelivered = append(undelivered, ceid)
			}
		}
	}
	campaignTypes := map[string]int{}
	campaignEvents := map[string]bool{}
	for _, e := range o.CampaignEvents {
		if e.CampaignID != campaignID || campaignEvents[e.CEID] {
			continue
		}
		campaignEvents[e.CEID] = true
		campaignTypes[strings.TrimSuffix(strings.TrimPrefix(e.Type, "dialstream."), ".v1")]++
		if delivered[e.CEID] {
			campaignDelivered++
		} else {
			undelivered = append(undelivered, e.CEID)
		}
	}
	problem("events never delivered", undelivered)
	if campaignTypes["campaign.started"] != 1 || campaignTypes["campaign.completed"] != 1 {
		problem("campaign events", []string{fmt.Sprintf("%v, want one started and one completed", campaignTypes)})
	}
	if o.DeliveriesDropped > 0 || o.WebhookDLQ > 0 || o.RequestDLQ > 0 {
		problem("dropped or dead-lettered", []string{fmt.Sprintf("receiver dropped %d, webhooks DLQ %d, requests DLQ %d",
			o.DeliveriesDropped, o.WebhookDLQ, o.RequestDLQ)})
	}

	counts := func(m map[string]int) string {
		var out []string
		for _, k := range slices.Sorted(maps.Keys(m)) {
			out = append(out, fmt.Sprintf("%s=%d", k, m[k]))
		}
		return strings.Join(out, " ")
	}
	r.rows = [][2]string{
		{"campaign", fmt.Sprintf("%s: %d contacts, %d attempts; by state [%s]; by outcome [%s]",
			view.Status, c.Contacts, c.Attempts, counts(c.ByState), counts(c.ByOutcome))},
		{"contacts", fmt.Sprintf("%d uploaded, %d listed, %d attempts (want %d), %d call ids not derived",
			len(plan), len(list), attempts, campaignDials, len(underived))},
		{"calls", fmt.Sprintf("%d on the events topic, %d attempts ended exactly once [%s]", len(calls), endedOnce, counts(outcomes))},
		{"dials", fmt.Sprintf("%d dial requests to %d numbers in %d rooms; %d of %d numbers dialed as the policy says",
			len(o.Dials), len(byNumber), len(byRoom), asPolicy, len(plan))},
		{"webhooks", fmt.Sprintf("%d POSTs; delivered %d of %d call events, %d of %d campaign events [%s]; %d duplicates",
			len(o.Deliveries), callsDelivered, events, campaignDelivered, len(campaignEvents), counts(campaignTypes),
			len(o.Deliveries)-len(distinct))},
		{"verdict", fmt.Sprintf("contacts forgotten %d, contacts wrong %d, numbers misdialed %d, double dials %d, unasked calls %d, "+
			"missing ended %d, multiple ended %d, contrary %d, undelivered %d",
			len(forgotten), len(wrong), len(misdialed), len(twice), len(unasked), len(notEnded), len(endedTwice), len(contrary), len(undelivered))},
	}
	return r
}
