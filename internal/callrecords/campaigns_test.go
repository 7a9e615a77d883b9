package callrecords_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/dialstream/dialstream/internal/callrecords"
	"github.com/dialstream/dialstream/internal/callrecords/dbtest"
	"github.com/dialstream/dialstream/schemas"
)

func campaignState(id, ws string, status schemas.CampaignStatus, created time.Time) *schemas.CampaignState {
	return &schemas.CampaignState{Kind: schemas.StateKindCampaign, Status: status, UpdatedAt: created.Add(time.Minute),
		Campaign: schemas.Campaign{CampaignID: id, WorkspaceID: ws, Name: "renewals " + id[20:], CallAgentID: "agent_a",
			Schedule: schemas.CampaignSchedule{Windows: []schemas.Window{{Days: []string{"mon"}, Start: "10:00", End: "19:00"}}},
			Pacing:   schemas.Pacing{CallsPerSecond: 2, MaxConcurrent: 5}, CreatedAt: created},
		Counters: schemas.CampaignCounters{Contacts: 3, Attempts: 4, InProgress: 1,
			ByState:   map[schemas.ContactStatus]int{schemas.ContactDone: 2, schemas.ContactCalling: 1},
			ByOutcome: map[schemas.Outcome]int{schemas.OutcomeCompleted: 1, schemas.OutcomeBusy: 1}}}
}

func contactState(campaign, ws, id, number string, row int, status schemas.ContactStatus) *schemas.ContactState {
	st := &schemas.ContactState{Kind: schemas.StateKindContact, CampaignID: campaign, WorkspaceID: ws, Status: status,
		Contact: schemas.Contact{ContactID: id, To: number, Row: row, DynamicVariables: map[string]string{"firstName": "Ada"},
			Metadata: json.RawMessage(`{"crm":"x-1"}`)},
		Attempts: []schemas.ContactAttempt{}, UpdatedAt: t0}
	if status == schemas.ContactDone {
		ended := t0.Add(time.Minute)
		st.Outcome = schemas.OutcomeBusy
		st.Attempts = append(st.Attempts, schemas.ContactAttempt{Attempt: 1, CallID: schemas.CampaignCallID(campaign, id, 1),
			ReleasedAt: t0, Outcome: schemas.OutcomeBusy, EndedAt: &ended})
	}
	return st
}

// putStates writes state records with put (a Writer method), each with
// its JSON as the record's value, in one transaction.
func putStates[S any](t *testing.T, s *callrecords.Store, put func(*callrecords.Writer, context.Context, S, []byte) (bool, error), sts ...S) {
	t.Helper()
	write(t, s, func(ctx context.Context, w *callrecords.Writer) (bool, error) {
		for _, st := range sts {
			b, _ := json.Marshal(st)
			if _, err := put(w, ctx, st, b); err != nil {
				return false, err
			}
		}
		return true, nil
	})
}

func putCampaigns(t *testing.T, s *callrecords.Store, sts ...*schemas.CampaignState) {
	t.Helper()
	putStates(t, s, (*callrecords.Writer).PutCampaign, sts...)
}

func putContacts(t *testing.T, s *callrecords.Store, sts ...*schemas.ContactState) {
	t.Helper()
	putStates(t, s, (*callrecords.Writer).PutContact, sts...)
}

// brief describes a call for a failure message (its events' bytes aside).
func brief(c *callrecords.Call) string {
	if c == nil {
		return "<none>"
	}
	out := fmt.Sprintf("status %s, key %d, %d events", c.Status, c.Key.At, len(c.Events))
	if c.StartAt != nil {
		out += ", start_at " + c.StartAt.Format(time.RFC3339)
	}
	if r := c.Request; r != nil {
		out += fmt.Sprintf(", request %d/%d scheduled=%v %s", r.Partition, r.Offset, r.Scheduled, r.Data)
	}
	return out
}

func campaignIDs(sts []schemas.CampaignState) []string {
	out := make([]string, len(sts))
	for i, st := range sts {
		out[i] = st.Campaign.CampaignID
	}
	return out
}

func contactIDs(sts []schemas.ContactState) []string {
	out := make([]string, len(sts))
	for i, st := range sts {
		out[i] = st.Contact.ContactID
	}
	return out
}

// A campaign comes back as the scheduler wrote it, counters included, to
// its own workspace only; the list pages newest first, by status or
// not, without repeating or skipping one when a campaign arrives or
// changes mid-paging; a later record replaces the campaign and a
// tombstone removes it.
func TestCampaignReads(t *testing.T) {
	dbtest.ForEach(t, callrecords.Options{}, func(t *testing.T, s *callrecords.Store) {
		ctx := context.Background()
		var all []*schemas.CampaignState
		for i := range 9 {
			status := schemas.CampaignRunning
			if i%3 == 0 {
				status = schemas.CampaignCompleted
			}
			// Equal creation times for some: the id breaks the tie.
			all = append(all, campaignState(callID(10+i), "ws_a", status, t0.Add(time.Duration(i/2)*time.Hour)))
		}
		putCampaigns(t, s, all...)
		putCampaigns(t, s, campaignState(callID(99), "ws_b", schemas.CampaignRunning, t0))

		got, ok, err := s.Campaign(ctx, "ws_a", callID(10))
		if err != nil || !ok {
			t.Fatalf("campaign: %v %v", ok, err)
		}
		if got.Campaign.Name != all[0].Campaign.Name || got.Status != schemas.CampaignCompleted ||
			got.Counters.Contacts != 3 || got.Counters.InProgress != 1 || got.Counters.ByState[schemas.ContactDone] != 2 ||
			got.Counters.ByOutcome[schemas.OutcomeBusy] != 1 || !got.Campaign.CreatedAt.Equal(t0) {
			t.Fatalf("campaign as read: %+v", got)
		}
		if _, ok, err := s.Campaign(ctx, "ws_b", callID(10)); ok || err != nil {
			t.Fatalf("ws_b sees ws_a's campaign (%v)", err)
		}
		if _, ok, err := s.Campaign(ctx, "ws_a", callID(99)); ok || err != nil {
			t.Fatalf("ws_a sees ws_b's campaign (%v)", err)
		}
		// A record naming ws_b for ws_a's campaign id changes nothing.
		putCampaigns(t, s, campaignState(callID(10), "ws_b", schemas.CampaignCanceled, t0))
		if got, _, _ := s.Campaign(ctx, "ws_a", callID(10)); got == nil || got.Status != schemas.CampaignCompleted {
			t.Fatalf("a foreign record changed the campaign: %+v", got)
		}

		newestFirst := func(status schemas.CampaignStatus) []string {
			var want []*schemas.CampaignState
			for _, c := range all {
				if status == "" || c.Status == status {
					want = append(want, c)
				}
			}
			sort.Slice(want, func(i, j int) bool {
				a, b := want[i].Campaign, want[j].Campaign
				if !a.CreatedAt.Equal(b.CreatedAt) {
					return a.CreatedAt.After(b.CreatedAt)
				}
				return a.CampaignID > b.CampaignID
			})
			ids := make([]string, len(want))
			for i, c := range want {
				ids[i] = c.Campaign.CampaignID
			}
			return ids
		}
		for _, status := range []schemas.CampaignStatus{"", schemas.CampaignRunning, schemas.CampaignCompleted, schemas.CampaignPaused} {
			want := newestFirst(status)
			var ids []string
			var after *callrecords.CampaignKey
			for pages := 0; ; pages++ {
				if pages > 20 {
					t.Fatal("the cursor does not end")
				}
				page, next, err := s.Campaigns(ctx, "ws_a", status, after, 2)
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, campaignIDs(page)...)
				if pages == 0 && next != nil {
					// Mid-paging: a newer campaign arrives and a listed
					// one changes; neither moves the pages that follow.
					fresh := campaignState(callID(200+len(all)), "ws_a", status, t0.Add(24*time.Hour))
					if status == "" {
						fresh.Status = schemas.CampaignDraft
					}
					changed := *all[len(all)-1]
					changed.Counters.Attempts++
					putCampaigns(t, s, fresh, &changed)
					all = append(all, fresh)
				}
				if next == nil {
					break
				}
				after = next
			}
			if !slices.Equal(ids, want) {
				t.Fatalf("status %q: paged %v, want %v", status, ids, want)
			}
		}
		if page, next, err := s.Campaigns(ctx, "ws_b", "", nil, 50); err != nil || len(page) != 1 || next != nil ||
			page[0].Campaign.CampaignID != callID(99) {
			t.Fatalf("ws_b lists %v %v %v", campaignIDs(page), next, err)
		}
		if _, _, err := s.Campaigns(ctx, "ws_a", "", nil, 0); err == nil {
			t.Fatal("limit 0 taken")
		}

		// A later record replaces; a tombstone deletes.
		paused := *all[1]
		paused.Status = schemas.CampaignPaused
		putCampaigns(t, s, &paused)
		if page, _, _ := s.Campaigns(ctx, "ws_a", schemas.CampaignPaused, nil, 50); !slices.Equal(campaignIDs(page), []string{callID(11)}) {
			t.Fatalf("paused campaigns %v", campaignIDs(page))
		}
		write(t, s, func(ctx context.Context, w *callrecords.Writer) (bool, error) {
			return w.DeleteCampaign(ctx, callID(11))
		})
		if _, ok, _ := s.Campaign(ctx, "ws_a", callID(11)); ok {
			t.Fatal("a tombstoned campaign is still there")
		}
		if page, _, _ := s.Campaigns(ctx, "ws_a", schemas.CampaignPaused, nil, 50); len(page) != 0 {
			t.Fatalf("a tombstoned campaign is still listed: %v", campaignIDs(page))
		}
	})
}

// A campaign's contacts page by contact id, by status or not, with a
// cursor that neither repeats nor skips one while contacts change; the
// export streams them all in CSV row order across its batches; the
// numbers check finds the numbers the campaign has; another workspace
// sees none of it; a tombstone removes a contact.
func TestCampaignContacts(t *testing.T) {
	dbtest.ForEach(t, callrecords.Options{}, func(t *testing.T, s *callrecords.Store) {
		ctx := context.Background()
		camp := callID(1)
		const n = callrecords.ExportBatch + 23
		var all []*schemas.ContactState
		for i := range n {
			status := schemas.ContactQueued
			if i%4 == 0 {
				status = schemas.ContactDone
			}
			// Ids out of row order; two contacts share a row (an array
			// upload and a CSV one), and some have none.
			row := (n - i) % (n - 3)
			all = append(all, contactState(camp, "ws_a", fmt.Sprintf("c-%04d", (i*7919)%n), fmt.Sprintf("+1555%07d", i), row, status))
		}
		putContacts(t, s, all...)
		putCampaigns(t, s, campaignState(camp, "ws_a", schemas.CampaignRunning, t0))
		putContacts(t, s, contactState(callID(2), "ws_b", "c-0001", "+15550000000", 1, schemas.ContactQueued))

		for _, status := range []schemas.ContactStatus{"", schemas.ContactQueued, schemas.ContactDone, schemas.ContactCalling} {
			var want []string
			for _, c := range all {
				if status == "" || c.Status == status {
					want = append(want, c.Contact.ContactID)
				}
			}
			slices.Sort(want)
			var got []string
			after := ""
			for pages := 0; ; pages++ {
				if pages > 200 {
					t.Fatal("the cursor does not end")
				}
				page, next, err := s.CampaignContacts(ctx, "ws_a", camp, status, after, 50)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, contactIDs(page)...)
				if pages == 1 { // a contact on a later page changes; it is listed once, as it is now
					c := *all[len(all)-1]
					c.UpdatedAt = t0.Add(time.Hour)
					putContacts(t, s, &c)
				}
				if next == "" {
					break
				}
				after = next
			}
			if !slices.Equal(got, want) {
				t.Fatalf("status %q: %d contacts paged, want %d (first %v)", status, len(got), len(want), got[:min(5, len(got))])
			}
		}
		page, _, err := s.CampaignContacts(ctx, "ws_a", camp, "", "", 1)
		if err != nil || len(page) != 1 {
			t.Fatal(page, err)
		}
		if c := page[0]; c.Contact.ContactID != "c-0000" || c.Contact.To != "+15550000000" || c.Status != schemas.ContactDone ||
			c.Outcome != schemas.OutcomeBusy || len(c.Attempts) != 1 || string(c.Contact.Metadata) != `{"crm":"x-1"}` ||
			c.Contact.DynamicVariables["firstName"] != "Ada" {
			t.Fatalf("contact as read: %+v", c)
		}
		if page, next, err := s.CampaignContacts(ctx, "ws_b", camp, "", "", 50); err != nil || len(page) != 0 || next != "" {
			t.Fatalf("ws_b sees %d of ws_a's contacts (%v)", len(page), err)
		}

		type rowID struct {
			row int
			id  string
		}
		var wantExport []rowID
		for _, c := range all {
			wantExport = append(wantExport, rowID{c.Contact.Row, c.Contact.ContactID})
		}
		slices.SortFunc(wantExport, func(a, b rowID) int {
			if a.row != b.row {
				return a.row - b.row
			}
			if a.id < b.id {
				return -1
			}
			return 1
		})
		var gotExport []rowID
		if err := s.ExportCampaignContacts(ctx, "ws_a", camp, func(c *schemas.ContactState) error {
			gotExport = append(gotExport, rowID{c.Contact.Row, c.Contact.ContactID})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(gotExport, wantExport) {
			t.Fatalf("export: %d contacts, want %d; first %v, want %v", len(gotExport), len(wantExport), gotExport[:3], wantExport[:3])
		}
		stop := fmt.Errorf("client gone")
		seen := 0
		if err := s.ExportCampaignContacts(ctx, "ws_a", camp, func(*schemas.ContactState) error { seen++; return stop }); err != stop || seen != 1 {
			t.Fatalf("export after fn's error: %v, %d calls", err, seen)
		}
		if err := s.ExportCampaignContacts(ctx, "ws_b", camp, func(*schemas.ContactState) error { return fmt.Errorf("ws_b exported a contact") }); err != nil {
			t.Fatal(err)
		}

		// More numbers than one query takes: the campaign's are found,
		// with their contact, the others not.
		var ask []string
		want := map[string]string{}
		for i := range 600 {
			num := fmt.Sprintf("+1555%07d", i*2)
			ask = append(ask, num)
			if i*2 < n {
				want[num] = all[i*2].Contact.ContactID
			}
		}
		got, err := s.CampaignNumbers(ctx, "ws_a", camp, ask)
		if err != nil || len(got) != len(want) {
			t.Fatalf("numbers: %d found (%v), want %d", len(got), err, len(want))
		}
		for num, id := range want {
			if got[num] != id {
				t.Fatalf("number %s: contact %q, want %q", num, got[num], id)
			}
		}
		if got, err := s.CampaignNumbers(ctx, "ws_b", camp, ask); err != nil || len(got) != 0 {
			t.Fatalf("ws_b finds %d of ws_a's numbers (%v)", len(got), err)
		}

		write(t, s, func(ctx context.Context, w *callrecords.Writer) (bool, error) {
			return w.DeleteContact(ctx, camp, "c-0000")
		})
		if page, _, _ := s.CampaignContacts(ctx, "ws_a", camp, "", "", 1); len(page) != 1 || page[0].Contact.ContactID != "c-0001" {
			t.Fatalf("after the tombstone the first contact is %v", contactIDs(page))
		}
		if got, _ := s.CampaignNumbers(ctx, "ws_a", camp, []string{"+15550000000"}); len(got) != 0 {
			t.Fatalf("a tombstoned contact's number is still found: %v", got)
		}
	})
}

// A scheduled call exists from its call.scheduled record, status
// "scheduled", with the request as the client sent it and StartAt; its
// release and the dialer's events make it an ordinary call, in whichever
// order they are read, and StartAt stays.
func TestScheduledCalls(t *testing.T) {
	dbtest.ForEach(t, callrecords.Options{}, func(t *testing.T, s *callrecords.Store) {
		ctx := context.Background()
		startAt := t0.Add(3 * time.Hour)
		schedule := func(id, ws string) (*schemas.CallScheduled, []byte) {
			r, data := request(id, ws, t0)
			sc := &schemas.CallScheduled{Request: *r, StartAt: startAt, ScheduledAt: t0}
			// The request's bytes inside, as the client sent them.
			b := fmt.Appendf(nil, `{"request":%s,"start_at":%q,"scheduled_at":%q}`, data, startAt.Format(time.RFC3339Nano), t0.Format(time.RFC3339Nano))
			return sc, b
		}
		putSchedule := func(id, ws string, part int32, off int64) bool {
			sc, b := schedule(id, ws)
			return write(t, s, func(ctx context.Context, w *callrecords.Writer) (bool, error) {
				return w.PutScheduled(ctx, sc, b, part, off)
			})
		}
		release := func(id string) {
			write(t, s, func(ctx context.Context, w *callrecords.Writer) (bool, error) {
				r, data := request(id, "ws_a", startAt)
				r.RoomName = "released"
				return w.PutRequest(ctx, r, data, 2, 9, false)
			})
		}
		events := func(id string, seqs ...int) {
			write(t, s, func(ctx context.Context, w *callrecords.Writer) (bool, error) {
				for _, seq := range seqs {
					ev, v, hs := event(id, "ws_a", seq, lifecycle[seq-1], startAt)
					if _, err := w.PutEvent(ctx, ev, schemas.EventID(id, seq), v, hs); err != nil {
						return false, err
					}
				}
				return true, nil
			})
		}

		id := callID(1)
		if !putSchedule(id, "ws_a", 1, 40) {
			t.Fatal("the schedule was not taken")
		}
		if putSchedule(id, "ws_a", 1, 41) { // a later copy in its partition
			t.Fatal("a later copy of the schedule was taken")
		}
		c := get(t, s, "ws_a", id)
		_, wantData := request(id, "ws_a", t0)
		if c == nil || c.Status != "scheduled" || c.Agent != "agent_a" || c.StartAt == nil || !c.StartAt.Equal(startAt) ||
			c.Request == nil || !c.Request.Scheduled || string(c.Request.Data) != string(bytes.TrimSpace(wantData)) ||
			c.Request.Partition != 1 || c.Request.Offset != 40 || c.Key.At != t0.UnixNano() || len(c.Events) != 0 {
			t.Fatalf("scheduled call as read: %s", brief(c))
		}
		for _, f := range []callrecords.Filter{{}, {Status: "scheduled"}} {
			if calls, _, err := s.List(ctx, "ws_a", f, 10); err != nil || len(calls) != 1 || calls[0].StartAt == nil {
				t.Fatalf("list %+v: %d calls (%v)", f, len(calls), err)
			}
		}
		if get(t, s, "ws_b", id) != nil {
			t.Fatal("ws_b sees ws_a's scheduled call")
		}
		if putSchedule(id, "ws_b", 1, 1) {
			t.Fatal("ws_b's schedule of ws_a's call id was taken")
		}

		release(id)
		c = get(t, s, "ws_a", id)
		if c.Status != schemas.StatusQueued || c.Request == nil || c.Request.Scheduled || c.Request.Partition != 2 ||
			c.StartAt == nil || !c.StartAt.Equal(startAt) || c.Key.At != startAt.UnixNano() {
			t.Fatalf("released call as read: %s", brief(c))
		}
		events(id, 1, 2, 3, 4, 5)
		if c = get(t, s, "ws_a", id); c.Status != schemas.StatusEnded || c.StartAt == nil {
			t.Fatalf("ended call as read: %s", brief(c))
		}
		if calls, _, _ := s.List(ctx, "ws_a", callrecords.Filter{Status: "scheduled"}, 10); len(calls) != 0 {
			t.Fatalf("an ended call is listed as scheduled")
		}

		// The schedule read after the events, or after the release: the
		// call stays what they made it, and gets its StartAt.
		late := callID(2)
		events(late, 1, 2)
		putSchedule(late, "ws_a", 1, 50)
		if c := get(t, s, "ws_a", late); c.Status != schemas.StatusDialing || c.StartAt == nil || c.Request == nil || !c.Request.Scheduled {
			t.Fatalf("call scheduled after its events: %s", brief(c))
		}
		release(late)
		if c := get(t, s, "ws_a", late); c.Status != schemas.StatusDialing || c.Request.Scheduled {
			t.Fatalf("call released after its events: %s", brief(c))
		}
		released := callID(3)
		release(released)
		putSchedule(released, "ws_a", 1, 60)
		if c := get(t, s, "ws_a", released); c.Status != schemas.StatusQueued || c.Request.Scheduled || c.StartAt == nil {
			t.Fatalf("call scheduled after its release: %s", brief(c))
		}

		if n, err := s.PurgeWorkspace(ctx, "ws_a", 2); err != nil || n != 3 {
			t.Fatalf("purged %d calls (%v)", n, err)
		}
		var left int
		if err := s.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM scheduled_calls`).Scan(&left); err != nil || left != 0 {
			t.Fatalf("%d schedules left after the purge (%v)", left, err)
		}
	})
}

// Retention deletes the campaigns that finished before the bound with
// all their contacts, across batches, and nothing else; a replay of such
// a campaign's records brings nothing back; a purge removes every
// campaign and contact of its workspace, a contact without a campaign
// row included, and nothing of another workspace.
func TestCampaignRetentionAndPurge(t *testing.T) {
	var now time.Time
	opts := callrecords.Options{Retention: 30 * 24 * time.Hour, Now: func() time.Time { return now }}
	dbtest.ForEach(t, opts, func(t *testing.T, s *callrecords.Store) {
		ctx := context.Background()
		now = t0.Add(40 * 24 * time.Hour)
		bound := now.Add(-opts.Retention)
		finished := func(id, ws string, at time.Time) *schemas.CampaignState {
			c := campaignState(id, ws, schemas.CampaignCompleted, t0)
			c.FinishedAt = &at
			return c
		}
		old1, old2 := finished(callID(1), "ws_a", bound.Add(-time.Hour)), finished(callID(2), "ws_b", bound.Add(-time.Minute))
		recent := finished(callID(3), "ws_a", bound.Add(time.Hour))
		running := campaignState(callID(4), "ws_a", schemas.CampaignRunning, t0)
		now = t0 // written while they were fresh
		putCampaigns(t, s, old1, old2, recent, running)
		for _, c := range []*schemas.CampaignState{old1, old2, recent, running} {
			var ks []*schemas.ContactState
			for i := range 7 {
				ks = append(ks, contactState(c.Campaign.CampaignID, c.Campaign.WorkspaceID, fmt.Sprintf("k%d", i), fmt.Sprintf("+1555000000%d", i), i+1, schemas.ContactDone))
			}
			putContacts(t, s, ks...)
		}
		putContacts(t, s, contactState(callID(5), "ws_a", "orphan", "+15550000009", 1, schemas.ContactQueued))
		now = t0.Add(40 * 24 * time.Hour)

		n, err := s.DeleteCampaignsFinishedBefore(ctx, bound, 3)
		if err != nil || n != 2 {
			t.Fatalf("deleted %d campaigns (%v), want 2", n, err)
		}
		contacts := func(ws, id string) int {
			var k int
			if err := s.ExportCampaignContacts(ctx, ws, id, func(*schemas.ContactState) error { k++; return nil }); err != nil {
				t.Fatal(err)
			}
			return k
		}
		for _, c := range []struct {
			ws, id   string
			contacts int
			found    bool
		}{{"ws_a", callID(1), 0, false}, {"ws_b", callID(2), 0, false}, {"ws_a", callID(3), 7, true}, {"ws_a", callID(4), 7, true}} {
			_, ok, err := s.Campaign(ctx, c.ws, c.id)
			if err != nil || ok != c.found || contacts(c.ws, c.id) != c.contacts {
				t.Fatalf("campaign %s after the retention: found %v, %d contacts", c.id, ok, contacts(c.ws, c.id))
			}
		}
		// A replay of the deleted campaign's records takes nothing in.
		putCampaigns(t, s, old1)
		putContacts(t, s, contactState(old1.Campaign.CampaignID, "ws_a", "k0", "+15550000000", 1, schemas.ContactDone))
		if _, ok, _ := s.Campaign(ctx, "ws_a", callID(1)); ok || contacts("ws_a", callID(1)) != 0 {
			t.Fatal("a replay past the retention brought a deleted campaign back")
		}

		keep := campaignState(callID(6), "ws_b", schemas.CampaignRunning, t0)
		putCampaigns(t, s, keep)
		putContacts(t, s, contactState(keep.Campaign.CampaignID, "ws_b", "k0", "+15550000000", 1, schemas.ContactQueued))
		if _, err := s.PurgeWorkspace(ctx, "ws_a", 3); err != nil {
			t.Fatal(err)
		}
		var left int
		if err := s.DB().QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM campaigns WHERE workspace_id = 'ws_a')
			+ (SELECT COUNT(*) FROM campaign_contacts WHERE workspace_id = 'ws_a')`).Scan(&left); err != nil || left != 0 {
			t.Fatalf("%d campaign rows of ws_a left after the purge (%v)", left, err)
		}
		if _, ok, _ := s.Campaign(ctx, "ws_b", keep.Campaign.CampaignID); !ok || contacts("ws_b", keep.Campaign.CampaignID) != 1 {
			t.Fatal("purging ws_a touched ws_b's campaign")
		}
	})
}
