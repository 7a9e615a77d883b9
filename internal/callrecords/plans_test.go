package callrecords_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/dialstream/dialstream/internal/callrecords"
	"github.com/dialstream/dialstream/internal/callrecords/dbtest"
	"github.com/dialstream/dialstream/schemas"
)

// Each read and delete walks the index made for it, on both engines, and
// the list and export read in index order (no sort of a workspace's
// calls). PostgreSQL is told to avoid sequential scans, which it would
// rightly prefer on these near-empty tables.
func TestQueriesUseTheirIndexes(t *testing.T) {
	k := callrecords.Key{At: 5, ID: "abc"}
	now := time.Now()
	type query struct {
		name, q string
		args    []any
		index   string
	}
	list := func(name string, f callrecords.Filter, index string) query {
		q, args := callrecords.ListQuery("ws", f, 51)
		return query{name, q, args, index}
	}
	exp, expArgs := callrecords.ExportQuery("ws", now, now.Add(time.Hour), &k)
	camps := func(name string, status schemas.CampaignStatus, after *callrecords.CampaignKey, index string) query {
		q, args := callrecords.CampaignsQuery("ws", status, after, 51)
		return query{name, q, args, index}
	}
	contacts := func(name string, status schemas.ContactStatus, after string, index string) query {
		q, args := callrecords.ContactsQuery("ws", "c", status, after, 51)
		return query{name, q, args, index}
	}
	expContacts, expContactsArgs := callrecords.ExportContactsQuery("ws", "c", 3, "k")
	ck := &callrecords.CampaignKey{CreatedAt: now, CampaignID: "c"}
	queries := []query{
		camps("campaigns", "", nil, "campaigns_list"),
		camps("campaigns cursor", "", ck, "campaigns_list"),
		camps("campaigns status", schemas.CampaignRunning, ck, "campaigns_by_status"),
		contacts("contacts", "", "", "campaign_contacts_pkey|sqlite_autoindex_campaign_contacts_1"),
		contacts("contacts cursor", "", "k", "campaign_contacts_pkey|sqlite_autoindex_campaign_contacts_1"),
		contacts("contacts status", schemas.ContactDone, "k", "campaign_contacts_by_status"),
		{"export contacts", expContacts, expContactsArgs, "campaign_contacts_by_row"},
		{"campaign numbers", `SELECT number, contact_id FROM campaign_contacts WHERE campaign_id = $1 AND workspace_id = $2 AND number IN ($3, $4) ORDER BY number, contact_id`,
			[]any{"c", "ws", "+1", "+2"}, "campaign_contacts_by_number"},
		{"campaign retention", `SELECT workspace_id, campaign_id FROM campaigns WHERE finished_at < $1 ORDER BY finished_at LIMIT 1`, []any{1}, "campaigns_by_finish"},
		{"campaign purge", `SELECT campaign_id FROM campaign_contacts WHERE workspace_id = $1 LIMIT 1`, []any{"ws"}, "campaign_contacts_by_workspace"},
		{"scheduled", `SELECT call_id, start_at FROM scheduled_calls WHERE call_id IN ($1, $2)`, []any{"a", "b"}, "scheduled_calls_pkey|sqlite_autoindex_scheduled_calls_1"},

		list("list", callrecords.Filter{}, "calls_list"),
		list("list status=ended", callrecords.Filter{Status: schemas.StatusEnded}, "calls_list"),
		list("list status=ringing", callrecords.Filter{Status: schemas.StatusRinging}, "calls_live"),
		list("list outcome", callrecords.Filter{Outcome: schemas.OutcomeBusy}, "calls_by_outcome"),
		list("list agent", callrecords.Filter{Agent: "a"}, "calls_by_agent"),
		list("list from/to", callrecords.Filter{From: now, To: now.Add(time.Hour)}, "calls_list"),
		list("list cursor", callrecords.Filter{After: &k}, "calls_list"),
		{"export", exp, expArgs, "calls_list"},
		{"retention", `SELECT call_id FROM calls WHERE sort_at < $1 ORDER BY sort_at LIMIT $2`, []any{1, 2}, "calls_by_age"},
		{"get", `SELECT ` + callrecords.CallColumns + ` FROM calls WHERE call_id = $1 AND workspace_id = $2 AND visible = 1`, []any{"a", "b"}, "calls_pkey|sqlite_autoindex_calls_1|calls_by_agent|calls_list"},
		{"events", `SELECT call_id, sequence FROM call_events WHERE call_id IN ($1, $2) ORDER BY call_id, sequence`, []any{"a", "b"}, "call_events_pkey|sqlite_autoindex_call_events_1"},
		{"deliveries", `SELECT data FROM webhook_deliveries WHERE call_id = $1 ORDER BY kafka_partition DESC, kafka_offset DESC LIMIT $2`, []any{"a", 2}, "webhook_deliveries_pkey|sqlite_autoindex_webhook_deliveries_1"},
	}
	for _, e := range dbtest.Engines {
		t.Run(string(e), func(t *testing.T) {
			s := dbtest.Open(t, e, callrecords.Options{})
			ctx := context.Background()
			conn, err := s.DB().Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			explain := "EXPLAIN QUERY PLAN "
			if e == callrecords.Postgres {
				explain = "EXPLAIN "
				// Bitmap scans too: on these near-empty tables it may
				// rightly prefer one and a sort (the campaign list does).
				for _, set := range []string{"SET enable_seqscan = off", "SET enable_bitmapscan = off"} {
					if _, err := conn.ExecContext(ctx, set); err != nil {
						t.Fatal(err)
					}
				}
			}
			for _, q := range queries {
				rows, err := conn.QueryContext(ctx, explain+q.q, q.args...)
				if err != nil {
					t.Fatalf("%s: %v", q.name, err)
				}
				cols, _ := rows.Columns()
				var plan []string
				for rows.Next() {
					vals := make([]any, len(cols))
					ptrs := make([]any, len(cols))
					for i := range vals {
						ptrs[i] = &vals[i]
					}
					if err := rows.Scan(ptrs...); err != nil {
						t.Fatal(err)
					}
					switch v := vals[len(vals)-1].(type) {
					case string:
						plan = append(plan, v)
					case []byte:
						plan = append(plan, string(v))
					}
				}
				rows.Close()
				text := strings.Join(plan, "\n")
				used := false
				for _, ix := range strings.Split(q.index, "|") {
					used = used || strings.Contains(text, " "+ix)
				}
				if !used || strings.Contains(text, "TEMP B-TREE") || (strings.Contains(text, "Sort") && (strings.HasPrefix(q.name, "list") || strings.HasPrefix(q.name, "campaigns") || strings.HasPrefix(q.name, "contacts"))) {
					t.Errorf("%s does not walk %s in order:\n%s", q.name, q.index, text)
				}
			}
		})
	}
}
