package callrecords

import (
	"context"
	"fmt"
	"time"

	"github.com/dialstream/dialstream/schemas"
)

// The campaign tables are a copy of the scheduler's compacted state topic
// (dialstream.campaigns.state): a row per key, replaced by the key's next
// record and deleted by its tombstone. Only the scheduler writes that
// topic, and the recorder reads a partition in log order, so the last
// record read is the scheduler's latest word: no rule beyond "replace" is
// needed, unlike the calls, which several writers feed. The row keeps the
// record's value as written, for the reads to return; the columns beside
// it exist to find, filter and order.

var (
	sqlPutCampaign = `INSERT INTO campaigns (campaign_id, workspace_id, name, status, created_at, updated_at, finished_at, state)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (campaign_id) DO UPDATE SET name = excluded.name, status = excluded.status,
			created_at = excluded.created_at, updated_at = excluded.updated_at, finished_at = excluded.finished_at,
			state = excluded.state
		WHERE campaigns.workspace_id = excluded.workspace_id`
	sqlPutContact = `INSERT INTO campaign_contacts (campaign_id, contact_id, workspace_id, number, status, outcome, attempts,
			csv_row, next_due_at, updated_at, state)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
		ON CONFLICT (campaign_id, contact_id) DO UPDATE SET number = excluded.number, status = excluded.status,
			outcome = excluded.outcome, attempts = excluded.attempts, csv_row = excluded.csv_row,
			next_due_at = excluded.next_due_at, updated_at = excluded.updated_at, state = excluded.state
		WHERE campaign_contacts.workspace_id = excluded.workspace_id`
)

// PutCampaign replaces the row of st's campaign with st; data is the
// state record's value as written. The first record of a campaign id
// fixes its workspace. A campaign that finished before the retention
// bound is not created (a replay of old records must not bring back what
// the retention deleted). It reports whether the store changed.
func (w *Writer) PutCampaign(ctx context.Context, st *schemas.CampaignState, data []byte) (bool, error) {
	c := &st.Campaign
	if st.FinishedAt != nil && !w.fresh(st.FinishedAt.UnixNano()) {
		return false, nil
	}
	n, err := w.exec(ctx, sqlPutCampaign, text(c.CampaignID), text(c.WorkspaceID), text(c.Name), text(string(st.Status)),
		c.CreatedAt.UnixNano(), st.UpdatedAt.UnixNano(), nullTime(st.FinishedAt), data)
	if err != nil {
		return false, fmt.Errorf("callrecords: put campaign %s: %w", c.CampaignID, err)
	}
	return n > 0, nil
}

// PutContact replaces the row of st's contact with st; data is the state
// record's value as written. The first record of a contact fixes its
// workspace; a final contact last changed before the retention bound is
// not created. It reports whether the store changed.
func (w *Writer) PutContact(ctx context.Context, st *schemas.ContactState, data []byte) (bool, error) {
	if st.Status.Final() && !w.fresh(st.UpdatedAt.UnixNano()) {
		return false, nil
	}
	n, err := w.exec(ctx, sqlPutContact, text(st.CampaignID), text(st.Contact.ContactID), text(st.WorkspaceID),
		text(st.Contact.To), text(string(st.Status)), text(string(st.Outcome)), len(st.Attempts), st.Contact.Row,
		nullTime(st.NextDueAt), st.UpdatedAt.UnixNano(), data)
	if err != nil {
		return false, fmt.Errorf("callrecords: put contact %s of campaign %s: %w", st.Contact.ContactID, st.CampaignID, err)
	}
	return n > 0, nil
}

// DeleteCampaign applies the tombstone of a campaign's state: its row
// goes (its contacts have tombstones of their own). It reports whether
// there was a row.
func (w *Writer) DeleteCampaign(ctx context.Context, campaignID string) (bool, error) {
	n, err := w.exec(ctx, `DELETE FROM campaigns WHERE campaign_id = $1`, text(campaignID))
	if err != nil {
		return false, fmt.Errorf("callrecords: delete campaign %s: %w", campaignID, err)
	}
	return n > 0, nil
}

// DeleteContact applies the tombstone of a contact's state.
func (w *Writer) DeleteContact(ctx context.Context, campaignID, contactID string) (bool, error) {
	n, err := w.exec(ctx, `DELETE FROM campaign_contacts WHERE campaign_id = $1 AND contact_id = $2`, text(campaignID), text(contactID))
	if err != nil {
		return false, fmt.Errorf("callrecords: delete contact %s of campaign %s: %w", contactID, campaignID, err)
	}
	return n > 0, nil
}

func nullTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixNano()
}
